"""HTTP API and web page (``aerialseg serve``); needs the ``serve`` extra.

This module itself needs only the standard library: what ``aerialseg.serve`` does before
the web libraries are imported.
"""

from __future__ import annotations


def one_malloc_arena() -> None:
    """Let every thread of the server allocate from one glibc malloc arena.

    glibc gives each thread that allocates its own arena, and memory freed in one is not
    returned to the others: predicting on the server's worker threads peaked 61 MB (10 MP
    upload) to 86 MB (40 MP) above ``aerialseg predict`` for the same image, and stayed
    there. With one arena the server's peak fell below the CLI's (1079 against 1091 MB
    at 10 MP; bench/serve_memory.py). The threads spend their time in convolutions, not
    in malloc, so the shared lock costs nothing measurable. Elsewhere than glibc: nothing.
    """
    import ctypes
    import ctypes.util

    m_arena_max = -8  # glibc's malloc.h
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(m_arena_max, 1)
    except (OSError, AttributeError):
        pass


def loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only reaches this machine."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to any network
