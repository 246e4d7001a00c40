"""A local HTTP server of a folder's files with range requests (Starlette's StaticFiles
under uvicorn, in a thread), started and stopped by a test: what a COG on a web server or
an object store's HTTPS endpoint looks like to GDAL."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.staticfiles import StaticFiles


class RequestLog(BaseHTTPMiddleware):
    """Notes each request's method, path and Range header."""

    def __init__(self, app, log: list):
        super().__init__(app)
        self.log = log

    async def dispatch(self, request, call_next):
        self.log.append((request.method, request.url.path, request.headers.get("range")))
        return await call_next(request)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_folder(folder: Path):
    """Yield (base URL, request log) of a server of ``folder``'s files."""
    log: list = []
    app = Starlette(middleware=[Middleware(RequestLog, log=log)])
    app.mount("/", StaticFiles(directory=folder))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test HTTP server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        server.should_exit = True
        thread.join(10)
