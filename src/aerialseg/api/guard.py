"""What the server checks of a request before it reads the body, and while it does.

``Guard`` is a pure ASGI middleware (``BaseHTTPMiddleware`` would hand the app a request
whose body it may already have buffered), so every refusal below is sent before a byte of
the body is read, with ``Connection: close`` so that the server reads none of it either:

- a POST (or other unsafe method) whose ``Origin`` is another site than the one it was
  sent to gets 403, unless that origin was allowed (``--cors-origin``): a web page the
  local user visits cannot post forms to a local server;
- a ``/v1`` request without the token gets 401;
- ``POST /v1/segment`` without a length gets 411, with one over the limit 413, and when
  every worker and queue place is taken 503;
- every body is counted as it arrives: past the limit (chunked bodies too) the request
  gets 413 and the app reads no more; one still arriving after ``body_timeout_s`` gets 408,
  and so does one that, past its first UPLOAD_GRACE_S, has sent less than
  MIN_UPLOAD_RATE a second on average: an upload that stalls or trickles holds a
  prediction place for seconds, not for the whole timeout (a review: nine uploads that
  sent 100 bytes each kept everyone else at 503 for two minutes, again and again; as
  Apache's mod_reqtimeout MinRate).

Host checks (``allowed_hosts``) are Starlette's ``TrustedHostMiddleware``; cross-origin
reads of allowed origins are Starlette's ``CORSMiddleware``; ``install`` puts the three
in order.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SEGMENT = "/v1/segment"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# A multipart body is the file plus its envelope (boundaries, part headers, the name).
ENVELOPE_BYTES = 64 * 1024
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}  # noqa: S104 - names, not a bind
UPLOAD_GRACE_S = 10.0  # how long an upload may take before MIN_UPLOAD_RATE counts
MIN_UPLOAD_RATE = 16 * 1024  # bytes a second, on average since the upload began
LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"]


def default_allowed_hosts(bind_host: str) -> list[str]:
    """The Host header values a server bound to ``bind_host`` answers: that address, and
    this machine's loopback names when it is a loopback address; any host when it listens
    on every address (where names cannot be known; pass ``--allowed-host`` there)."""
    if bind_host in WILDCARD_HOSTS:
        return ["*"]
    try:
        address = ipaddress.ip_address(bind_host)
    except ValueError:  # a name
        return LOOPBACK_NAMES if bind_host == "localhost" else [bind_host.lower()]
    own = f"[{address.compressed}]" if address.version == 6 else address.compressed
    return list(dict.fromkeys([own, *LOOPBACK_NAMES])) if address.is_loopback else [own]


def mib(size: int) -> str:
    """A byte limit in MiB as the messages and the page say it: 0.5, 2, 100 (not a 0 for a
    limit under 1 MiB)."""
    text = f"{size / 2**20:,.2f}".rstrip("0")
    return text.removesuffix(".")


class Refusal(Exception):
    """A request the guard answers itself: HTTP ``status`` with ``detail``."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}

    async def send(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {"connection": "close", **self.headers}
        await JSONResponse({"detail": self.detail}, self.status, headers)(scope, receive, send)


class Guard:
    """See the module docstring. ``max_active``: requests to ``/v1/segment`` at once
    (predicting, waiting for a worker, or uploading), beyond which 503."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        max_upload_bytes: int,
        max_active: int,
        body_timeout_s: float,
        cors_origins: Iterable[str] = (),
    ):
        self.app, self.token = app, token
        self.max_upload_bytes = max_upload_bytes
        self.max_body = max_upload_bytes + ENVELOPE_BYTES
        self.max_active, self.active = max_active, 0
        self.body_timeout_s = body_timeout_s
        self.cors_origins = set(cors_origins)

    def check(self, scope: Scope, headers: Headers) -> None:
        """Raise Refusal for a request refused from its headers alone."""
        origin = headers.get("origin")
        if scope["method"] not in SAFE_METHODS and origin is not None:
            own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
            if origin != own and origin not in self.cors_origins:
                raise Refusal(
                    403,
                    f"a request from the web page at {origin[:100]} is refused; start the"
                    " server with --cors-origin ORIGIN to allow that origin",
                )
        path = scope["path"]
        if self.token is not None and (path == "/v1" or path.startswith("/v1/")):
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                raise Refusal(
                    401,
                    "a valid token is needed: Authorization: Bearer TOKEN",
                    {"www-authenticate": "Bearer"},
                )
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise Refusal(400, "Content-Length is not a number")
            if int(length) > self.max_body:
                raise self.too_large()
        elif (
            scope["method"] == "POST"
            and path == SEGMENT
            and "chunked" not in headers.get("transfer-encoding", "").lower()
        ):
            raise Refusal(411, "a Content-Length (or a chunked body) is needed")

    def too_large(self) -> Refusal:
        return Refusal(413, f"upload larger than the limit of {mib(self.max_upload_bytes)} MiB")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self.check(scope, Headers(scope=scope))
            segment = scope["method"] == "POST" and scope["path"] == SEGMENT
            if segment and self.active >= self.max_active:
                raise Refusal(503, "server busy: too many requests queued; retry shortly")
        except Refusal as refusal:
            await refusal.send(scope, receive, send)
            return
        self.active += segment
        try:
            await self._counted(scope, receive, send)
        finally:
            self.active -= segment

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, with a receive that counts the body and a deadline for all of it."""
        loop = asyncio.get_running_loop()
        begun = loop.time()
        received, body_done, refused, started = 0, False, False, False

        def due() -> tuple[float, str]:
            """When the next part of the body must have come, and what was too slow."""
            slow = begun + UPLOAD_GRACE_S + received / MIN_UPLOAD_RATE
            if slow < begun + self.body_timeout_s:
                return slow, f"the upload came slower than {MIN_UPLOAD_RATE // 1024} KiB/s"
            return begun + self.body_timeout_s, (
                f"the upload took longer than {self.body_timeout_s:g} s"
            )

        async def counted_receive() -> Message:
            nonlocal received, body_done, refused
            if refused:
                return {"type": "http.disconnect"}
            if body_done:  # later reads wait for a disconnect: no deadline on those
                return await receive()
            deadline, why = due()
            try:
                message = await asyncio.wait_for(receive(), deadline - loop.time())
            except TimeoutError:
                return await refuse(Refusal(408, why))
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    return await refuse(self.too_large())
                body_done = not message.get("more_body", False)
            return message

        async def refuse(refusal: Refusal) -> Message:
            nonlocal refused
            refused = True
            if not started:
                await refusal.send(scope, receive, send)
            return {"type": "http.disconnect"}  # the app stops reading and answering

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the guard has answered; what the app says of the cut body is moot
            started = True
            await send(message)

        await self.app(scope, counted_receive, guarded_send)


# Headers every response carries (a review found none): no type sniffing of a returned
# file, no framing of the page by another site (clickjacking), no referrer sent on.
SAFE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
]


class SafeHeaders:
    """The outermost middleware: SAFE_HEADERS on every response, refusals included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SAFE_HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


def install(
    app,
    *,
    token: str | None,
    max_upload_bytes: int,
    max_active: int,
    body_timeout_s: float,
    allowed_hosts: Iterable[str] | None = None,
    cors_origins: Iterable[str] = (),
) -> None:
    """Add the guard, CORS for ``cors_origins`` and the Host check to a Starlette app,
    outermost last: the safe headers, Host, then CORS (which answers preflight
    requests), then the guard.
    ``allowed_hosts``: None or ``["*"]`` for any."""
    origins = list(cors_origins)
    app.add_middleware(
        Guard,
        token=token,
        max_upload_bytes=max_upload_bytes,
        max_active=max_active,
        body_timeout_s=body_timeout_s,
        cors_origins=origins,
    )
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts or ["*"]))
    app.add_middleware(SafeHeaders)
