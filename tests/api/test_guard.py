"""What the server refuses before it reads a body, and while it reads one: against a real
uvicorn on 127.0.0.1, with raw sockets where the point is what is (not) sent."""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from aerialseg.api import app as app_module
from aerialseg.api.app import ServeLimits, create_app
from aerialseg.api.connections import REQUEST_TIMEOUT, server_config
from aerialseg.api.guard import default_allowed_hosts
from aerialseg.cli import main
from tests.helpers.http_files import free_port
from tests.helpers.images import jpeg_bytes

PART = (
    b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
    b"Content-Type: image/jpeg\r\n\r\n"
)  # the start of an upload's body
LIMITS = ServeLimits(max_upload_bytes=2_000_000, max_pixels=1_000_000, body_timeout_s=2)


@pytest.fixture
def temp(tmp_path, monkeypatch):
    """The server's temporary folder, empty at the start."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@contextmanager
def running(app, header_timeout_s: float = 20):
    """``app`` under uvicorn as ``aerialseg serve`` runs it, on a free loopback port, in a
    thread: the port."""
    port = free_port()
    server = uvicorn.Server(server_config(app, "127.0.0.1", port, header_timeout_s, "error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def head(port: int, length: int | None = None, query: str = "", **headers: str) -> bytes:
    """The request line and headers of an upload to /v1/segment, no body."""
    lines = [
        f"POST /v1/segment{query} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: multipart/form-data; boundary=b0undary",
    ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(sock: socket.socket) -> int:
    """The status code of the reply on ``sock`` (socket.timeout if none comes)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return int(data.split()[1])


def reply_to_headers(port: int, request: bytes, wait: float = 5) -> int:
    """Send a request's headers only, and the status that comes back without a body."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(request)
        return status_of(sock)


def test_token_length_and_missing_length_are_answered_before_the_body(pointwise, temp):
    """401, 413 and 411 come back while the client has sent headers only: the server
    waited for no byte of the body (before, it waited for all of it), and wrote nothing."""
    app = create_app(pointwise, LIMITS, token="s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    with running(app) as port:
        assert reply_to_headers(port, head(port, 300 * 2**20)) == 401
        assert reply_to_headers(port, head(port, 300 * 2**20, Authorization="Bearer x")) == 401
        assert reply_to_headers(port, head(port, 3_000_000, **auth)) == 413
        # h11 itself refuses a length past 2**63 (400); httptools would leave it to the guard
        assert reply_to_headers(port, head(port, 10**20, **auth)) in (400, 413)
        assert reply_to_headers(port, head(port, None, **auth)) == 411
        assert reply_to_headers(port, head(port, 1 << 40, **auth), wait=5) == 413
    assert list(temp.iterdir()) == []


def test_wrong_query_values_are_answered_before_the_body(pointwise, temp):
    """A review: values the query and the model decide (a negative simplify, too few
    bands) were refused once the whole body had arrived and a worker was free, and
    FastAPI's own checks (a format of none of its values) read the whole body to discard
    it. Each is a 422 now from the headers alone, and the connection closes."""
    with running(create_app(pointwise, LIMITS)) as port:
        for query in ("?simplify=-1", "?min_area=nan", "?bands=1,2", "?bands=0,1,2", "?format=xyz"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(head(port, 1_500_000, query=query) + PART)
                assert status_of(sock) == 422, query
                while sock.recv(4096):  # until the server closes (else socket.timeout)
                    pass
    assert list(temp.iterdir()) == []


def test_a_busy_server_says_503_before_the_body(pointwise, temp):
    """With every place taken (1 worker, no queue) by an upload still arriving, the next
    upload gets 503 from its headers; once that upload ends its place is free again."""
    limits = ServeLimits(max_upload_bytes=2_000_000, workers=1, max_queue=0, body_timeout_s=30)
    with running(create_app(pointwise, limits)) as port:
        holder = socket.create_connection(("127.0.0.1", port), timeout=5)
        holder.sendall(head(port, 100_000) + PART)
        time.sleep(0.3)
        assert reply_to_headers(port, head(port, 100_000)) == 503
        holder.close()
        time.sleep(0.3)
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/segment",
            files={"file": ("a.jpg", jpeg_bytes(40, 40))},
            timeout=30,
        )
        assert response.status_code == 200


def test_a_chunked_body_is_cut_at_the_limit(pointwise, temp):
    """A chunked upload (no length to refuse it by) that goes past the limit gets 413 as
    it crosses it, and the connection closes: the client cannot send its 20 MiB."""
    with running(create_app(pointwise, LIMITS)) as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(head(port, None, Transfer_Encoding="chunked"))
        statuses: list[int] = []
        reader = threading.Thread(target=lambda: statuses.append(status_of(sock)))
        reader.start()
        sock.sendall(b"%x\r\n%b\r\n" % (len(PART), PART))
        chunk = b"x" * 65536
        sent = 0
        try:
            while sent < 20 * 2**20:
                sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:
            pass
        reader.join(10)
        sock.close()
    assert statuses == [413]
    assert sent < 20 * 2**20
    assert list(temp.iterdir()) == []


def test_an_upload_that_stalls_frees_its_place_past_the_grace(pointwise, temp, monkeypatch):
    """A review: uploads that sent 100 bytes and stopped each held a place until the body
    timeout (120 s), so nine of them kept every other upload at 503, again and again.
    Past UPLOAD_GRACE_S an upload must have come at MIN_UPLOAD_RATE on average."""
    from aerialseg.api import guard

    monkeypatch.setattr(guard, "UPLOAD_GRACE_S", 0.5, raising=False)  # none before
    limits = ServeLimits(max_upload_bytes=2_000_000, workers=1, max_queue=0, body_timeout_s=30)
    with running(create_app(pointwise, limits)) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
            start = time.monotonic()
            stalled.sendall(head(port, 100_000) + PART)  # then nothing
            time.sleep(0.1)
            assert reply_to_headers(port, head(port, 100_000)) == 503  # its place is taken
            assert status_of(stalled) == 408
            assert time.monotonic() - start < 3  # 0.5 s and PART's bytes at 16 KiB/s
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/segment",
            files={"file": ("a.jpg", jpeg_bytes(40, 40))},
            timeout=30,
        )
        assert response.status_code == 200  # the place is free again
    assert list(temp.iterdir()) == []


def test_a_body_that_trickles_gets_408(pointwise, temp):
    with (
        running(create_app(pointwise, LIMITS)) as port,  # body_timeout_s=2
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        start = time.monotonic()
        sock.sendall(head(port, 100_000) + PART)
        for _ in range(3):
            time.sleep(0.5)
            sock.sendall(b"x")
        assert status_of(sock) == 408
        assert time.monotonic() - start < 5
    assert list(temp.iterdir()) == []


def test_headers_that_trickle_get_408_and_the_connection_closes(pointwise):
    """A review: uvicorn sets no deadline on a request's headers, so a client that sent
    them a byte at a time (or nothing) held its connection for ever. Now the line and
    headers must be in ``header_timeout`` after the connection opens, or after the
    response before on a kept-alive connection; a body may take longer (its deadline is
    the guard's)."""
    app = create_app(pointwise, LIMITS)  # body_timeout_s=2
    with running(app, header_timeout_s=1) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            start = time.monotonic()
            for byte in b"GET /heal":  # 0.9 s of the 1 s
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
            assert status_of(sock) == 408
            assert 0.9 < time.monotonic() - start < 4
            assert sock.recv(4096) == b""  # closed
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            assert status_of(sock) == 408  # sent nothing at all
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            assert status_of(sock) == 200
            time.sleep(0.6)
            sock.sendall(b"GET /hea")  # the next request on the kept-alive connection
            start = time.monotonic()
            rest = b""
            while chunk := sock.recv(4096):  # the 200's rest, then a 408, then closed
                rest += chunk
            assert rest.endswith(REQUEST_TIMEOUT) and time.monotonic() - start < 1
        body = jpeg_bytes(40, 40)
        upload = PART + body + b"\r\n--b0undary--\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(head(port, len(upload)))
            for start in range(0, len(upload), len(upload) // 3 + 1):  # over 1.5 s
                time.sleep(0.5)
                sock.sendall(upload[start : start + len(upload) // 3 + 1])
            assert status_of(sock) == 200


CHUNK = b"10000\r\n" + b"x" * 65536 + b"\r\n"  # 64 KiB of a chunked body


@pytest.mark.parametrize(
    "request_line, headers, chunk, pause",
    [
        ("POST /healthz", "Transfer-Encoding: chunked", CHUNK, 0),  # 405, a body streaming on
        ("POST /nowhere", "Transfer-Encoding: chunked", CHUNK, 0),  # 404
        ("GET /healthz", "Content-Length: 1000000", b"x", 0.2),  # 200, a body trickling
        ("POST /v1/segment", "Content-Type: text/plain\r\nTransfer-Encoding: chunked", CHUNK, 0),
    ],
)
def test_a_body_left_unread_by_a_response_is_not_read_for_ever(
    pointwise, request_line, headers, chunk, pause
):
    """A review: after answering a request whose body it did not read (a 404 or 405 to a
    POST, the 422 of a body that is no upload), uvicorn went on reading and dropping what
    the client sent, 4-7 GB in 10 s a connection, and a body trickling a byte at a time
    held its connection past every deadline. The rest is read for LINGER_S at most, up to
    LINGER_BYTES, then the connection closes; the response arrives whole first."""
    from aerialseg.api.connections import LINGER_BYTES, LINGER_S

    with (
        running(create_app(pointwise, LIMITS)) as port,
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.sendall(
            f"{request_line} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n\r\n".encode()
        )
        assert status_of(sock) in (200, 404, 405, 422)
        start = time.monotonic()
        closed, sent = _sent_until_closed(sock, chunk, pause, LINGER_S + 5)
        assert closed and time.monotonic() - start < LINGER_S + 2
        assert sent < LINGER_BYTES + 32 * 2**20  # past that, what the sockets' buffers hold


def _sent_until_closed(sock: socket.socket, chunk: bytes, pause: float, seconds: float):
    """Send ``chunk`` (every ``pause`` s) until the server closes the connection, for
    ``seconds`` at most: whether it closed, and how many bytes went."""
    import select

    sent, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sock.sendall(chunk)
        except TimeoutError:  # the server stopped reading, and kept the connection
            return False, sent
        except OSError:  # reset, or a broken pipe
            return True, sent
        sent += len(chunk)
        if select.select([sock], [], [], pause)[0]:
            try:
                if sock.recv(65536) == b"":  # the response's rest, then the end
                    return True, sent
            except OSError:
                return True, sent
    return False, sent


def test_the_host_header_must_name_this_server(pointwise):
    app = create_app(pointwise, LIMITS, allowed_hosts=default_allowed_hosts("127.0.0.1"))
    client = TestClient(app)
    for host in ("127.0.0.1:8000", "localhost:8000", "127.0.0.1", "[::1]:8000"):
        assert client.get("/healthz", headers={"host": host}).status_code == 200, host
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example"):
        assert client.get("/healthz", headers={"host": host}).status_code == 400, host
    assert default_allowed_hosts("10.1.2.3") == ["10.1.2.3"]
    assert default_allowed_hosts("::1")[0] == "[::1]"
    assert default_allowed_hosts("0.0.0.0") == ["*"]
    assert "localhost" in default_allowed_hosts("localhost")


def test_cross_origin_posts_are_refused_unless_allowed(pointwise):
    files = {"file": ("a.jpg", jpeg_bytes(40, 40))}
    client = TestClient(create_app(pointwise, LIMITS))
    other = client.post("/v1/segment", files=files, headers={"origin": "http://evil.example"})
    assert other.status_code == 403 and "--cors-origin" in other.json()["detail"]
    assert "access-control-allow-origin" not in other.headers
    null = client.post("/v1/segment", files=files, headers={"origin": "null"})
    assert null.status_code == 403
    same = client.post("/v1/segment", files=files, headers={"origin": "http://testserver"})
    assert same.status_code == 200  # the page's own requests
    assert client.get("/v1/model", headers={"origin": "http://evil.example"}).status_code == 200
    allowed = "https://app.example"
    client = TestClient(create_app(pointwise, LIMITS, cors_origins=[allowed]))
    ok = client.post("/v1/segment", files=files, headers={"origin": allowed})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == allowed
    preflight = client.options(
        "/v1/segment",
        headers={
            "origin": allowed,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == allowed
    evil = client.post("/v1/segment", files=files, headers={"origin": "http://evil.example"})
    assert evil.status_code == 403


def test_docs_load_nothing_from_a_cdn(pointwise, monkeypatch):
    """/docs and /redoc use fastapi-offline's local copies of their scripts; without that
    package there are no docs pages (the schema stays at /openapi.json)."""
    client = TestClient(create_app(pointwise))
    try:
        import fastapi_offline  # noqa: F401
    except ImportError:
        assert client.get("/docs").status_code == 404
    else:
        for page in ("/docs", "/redoc"):
            html = client.get(page).text
            assert "cdn" not in html and "https://" not in html, page
            for src in html.split('src="')[1:]:
                assert client.get(src.split('"')[0]).status_code == 200
    monkeypatch.setitem(sys.modules, "fastapi_offline", None)  # not installed
    bare = TestClient(create_app(pointwise))
    assert bare.get("/docs").status_code == 404 and bare.get("/redoc").status_code == 404
    assert bare.get("/openapi.json").status_code == 200


def test_serve_passes_hosts_origins_limits_and_timeouts(tiny_model, monkeypatch):
    started: list[tuple[dict, dict]] = []
    built: list[dict] = []
    real = app_module.create_app

    def recording(*args, **kwargs):
        built.append({"limits": args[1], **kwargs})
        return real(*args, **kwargs)

    monkeypatch.setattr(app_module, "create_app", recording)
    monkeypatch.setattr(uvicorn.Server, "run", lambda server: started.append(server.config))
    base = ["serve", "--model", str(tiny_model), "--device", "cpu"]
    assert main(base) == 0
    assert main([*base, "--host", "10.0.0.5", "--allowed-host", "seg.example"]) == 0
    flags = ["--cors-origin", "https://a.example", "--max-side", "9000", "--body-timeout", "7"]
    assert main([*base, *flags, "--max-aspect", "20"]) == 0
    assert built[0]["allowed_hosts"] == ["127.0.0.1", "localhost", "[::1]"]
    assert built[1]["allowed_hosts"] == ["seg.example"]
    assert built[2]["cors_origins"] == ["https://a.example"]
    limits = built[2]["limits"]
    assert (limits.max_side, limits.max_aspect, limits.body_timeout_s) == (9000, 20, 7)
    assert started[0].timeout_keep_alive == 5
    assert [config.http.keywords["header_timeout_s"] for config in started] == [20] * 3
    assert main([*base, "--header-timeout", "3"]) == 0
    assert started[3].http.keywords["header_timeout_s"] == 3
    # a token no client could send (a review: 401 for every request, said nowhere)
    for token in (" tok ", "p\u00e4ssword", "tab\there"):
        assert main([*base, "--token", token]) == 2
    assert len(started) == 4


def test_a_request_whose_client_left_while_it_waited_is_not_predicted(pointwise, monkeypatch):
    """A review: two requests abandoned while queued (curl's timeout) were still predicted,
    16 s each, and a small request waited 33 s behind them. A job whose client has gone
    by its turn is dropped; the one running when its client left ends as it is."""
    predicted, release = [], threading.Event()
    real = app_module.predict_one

    def held(predictor, upload, out, opts):
        predicted.append(upload.name)
        release.wait(10)  # the first holds the one worker until released
        return real(predictor, upload, out, opts)

    monkeypatch.setattr(app_module, "predict_one", held)
    upload = PART + jpeg_bytes(40, 40) + b"\r\n--b0undary--\r\n"
    with running(create_app(pointwise, ServeLimits(workers=1, max_queue=4))) as port:
        first = socket.create_connection(("127.0.0.1", port), timeout=15)
        first.sendall(head(port, len(upload)) + upload)
        deadline = time.monotonic() + 5
        while not predicted:
            assert time.monotonic() < deadline, "the first request was not predicted"
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as left:
            left.sendall(head(port, len(upload)) + upload)  # queued, then its client goes
            time.sleep(0.3)
        time.sleep(0.3)
        release.set()
        assert status_of(first) == 200
        first.close()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as last:
            last.sendall(head(port, len(upload)) + upload)
            assert status_of(last) == 200
    assert len(predicted) == 2  # the first and the last, not the one whose client left


def test_every_response_forbids_sniffing_and_framing(pointwise):
    """A review: no response said nosniff, and the page could be framed by another site.
    The page, the API, its refusals and the Host check's 400 all carry the headers."""
    app = create_app(pointwise, LIMITS, allowed_hosts=default_allowed_hosts("127.0.0.1"))
    client = TestClient(app)
    answers = [
        client.get("/", headers={"host": "127.0.0.1"}),
        client.get("/healthz", headers={"host": "127.0.0.1"}),
        client.get("/healthz", headers={"host": "evil.example"}),  # 400
        client.post("/v1/segment", headers={"host": "127.0.0.1"}, content=b"x"),  # 422
        client.get("/nowhere", headers={"host": "127.0.0.1"}),  # 404
    ]
    assert [a.status_code for a in answers] == [200, 200, 400, 422, 404]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["content-security-policy"] == "frame-ancestors 'none'"
