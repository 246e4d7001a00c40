"""How the server's connections are run: uvicorn, with a deadline for a request's headers.

uvicorn sets none: its keep-alive timer starts only after a response, so a client that
connects and sends nothing, or sends its request line a byte a minute (slowloris), holds
a connection and its socket for as long as it likes, and enough of them use up the
server's file descriptors. ``HeaderDeadline`` is uvicorn's own h11 protocol plus that
deadline; it is written here because neither uvicorn nor Starlette has one (an ASGI
middleware only runs once the headers are in). The body's deadline is the guard's
(``body_timeout_s``), as its refusals are. After a response that did not wait for the
request's body, the rest is dropped for LINGER_S and LINGER_BYTES at most, then the
connection closes (uvicorn read it for as long as the client sent).
"""

from __future__ import annotations

import asyncio
import functools

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
# After a response to a request whose body has not all arrived (a 404 or 405 to a POST,
# the 422 of a body that is no upload), the rest is read and dropped for this long and this much
# at most, then the connection is closed. uvicorn read it for as long as the client sent
# (a review: 4-7 GB in 10 s a connection, past every limit and deadline); closing at once
# would reset the connection under a response the client has not read yet.
LINGER_S = 2.0
LINGER_BYTES = 1 << 20


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing a connection with 408 when a request's line and
    headers have not all arrived ``header_timeout_s`` after the connection opened, or
    after the response before."""

    def __init__(self, *args, header_timeout_s: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.header_timer: asyncio.TimerHandle | None = None
        self.linger: int | None = None  # bytes still to drop after the response, if any

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.start_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            self.linger = LINGER_BYTES  # the body the response did not wait for: LINGER_S
            self.header_timer = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.start_header_timer()  # the next request on a kept-alive connection

    def data_received(self, data: bytes) -> None:
        if self.linger is None:
            super().data_received(data)
            return
        self.linger -= len(data)  # dropped, unparsed: the connection ends with it
        if self.linger < 0:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
        super().connection_lost(exc)

    def start_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
        self.header_timer = self.loop.call_later(self.header_timeout_s, self.headers_late)

    def headers_late(self) -> None:
        # IDLE: the client has not finished a request's headers since the timer started
        # (once they are in, h11 has it sending the body, or done)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.write(REQUEST_TIMEOUT)
            self.transport.close()


def server_config(
    app, host: str, port: int, header_timeout_s: float, log_level: str = "info"
) -> uvicorn.Config:
    """The uvicorn configuration ``aerialseg serve`` runs ``app`` with."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=functools.partial(HeaderDeadline, header_timeout_s=header_timeout_s),  # type: ignore[arg-type]
        timeout_keep_alive=5,  # an idle kept-alive connection is closed after 5 s
    )
