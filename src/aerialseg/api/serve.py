"""``aerialseg serve`` as a Python function: the HTTP API and web page, until stopped.

It lives with the server rather than in ``aerialseg.public``: the server reads
``predict_files``' options from the Python API, so the Python API must not import it.
``aerialseg.serve`` is this function.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from aerialseg.errors import AerialsegError
from aerialseg.options import PositiveFloat, check_arguments
from aerialseg.public import Device, Precision, model_path


def serve(
    model: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    device: Device = "auto",
    precision: Precision = "auto",
    workers: int = 1,
    max_queue: int = 8,
    max_upload_mb: PositiveFloat = 50,
    max_megapixels: PositiveFloat = 40,
    max_side: int = 20_000,
    max_aspect: PositiveFloat = 50,
    header_timeout: PositiveFloat = 20,
    body_timeout: PositiveFloat = 120,
    allowed_hosts: Sequence[str] | None = None,
    cors_origins: Sequence[str] = (),
) -> None:
    """HTTP API and web page: ``aerialseg serve``, until stopped.

    Serves the model: a web page at /, the API under /v1 (OpenAPI schema at /openapi.json,
    docs at /docs). Predictions run on ``workers`` threads; up to ``max_queue`` more
    requests wait, further ones get 503. Uploads are read as JPEG, PNG or TIFF only, with
    GDAL's network access off. Needs the serve extra (pip install 'aerialseg[serve]').

    Args:
        model: model.pt, a .ckpt from a run folder, or an .onnx from aerialseg export
            (default: the bundled model).
        host: address to listen on (127.0.0.1: this machine only; 0.0.0.0 is every
            network: set a token then).
        port: port to listen on.
        token: require 'Authorization: Bearer TOKEN' on every /v1 request (default: the
            AERIALSEG_TOKEN environment variable; none: no access control).
        device: where the network runs; auto: a CUDA GPU if there is one, else the CPU.
        precision: PyTorch arithmetic; auto: bf16 on a CPU that computes it natively, else
            fp32.
        workers: predictions at once.
        max_queue: waiting requests.
        max_upload_mb: upload limit in MB.
        max_megapixels: pixel limit in megapixels.
        max_side: longest side in pixels.
        max_aspect: the long side at most this many times the short one.
        header_timeout: seconds a request's line and headers may take to arrive, from
            the connection's start or the response before, then 408 and the connection
            closes.
        body_timeout: seconds an upload may take to arrive, then 408.
        allowed_hosts: Host headers to answer (default: the ``host`` address, plus
            localhost, 127.0.0.1 and [::1] when that is a loopback address; any when it is
            0.0.0.0).
        cors_origins: web page origins (https://example.org) allowed to call the API
            (default: none; same-origin requests only).
    """
    check_arguments(serve, locals())
    # before the model loads: a limit that refuses every request, or a port or pool that
    # fails only once the server starts, is a typo
    for name, value, least, most in (
        ("--port", port, 0, 65535),
        ("--workers", workers, 1, None),
        ("--max-queue", max_queue, 0, None),
        ("--max-side", max_side, 1, None),
        ("--max-aspect", max_aspect, 1, None),
    ):
        if value < least or (most is not None and value > most):
            span = f"{least} to {most}" if most is not None else f"{least} or more"
            raise AerialsegError(f"{name} {value}: give {span}")
    try:
        import uvicorn

        from aerialseg.api.app import ServeLimits, create_app, load_for_serving
        from aerialseg.api.connections import server_config
        from aerialseg.api.guard import default_allowed_hosts
    except ImportError as err:
        raise AerialsegError(
            f"serve needs the web extra ({err.name} is missing): pip install 'aerialseg[serve]'"
        ) from None
    from aerialseg.api import loopback, one_malloc_arena

    one_malloc_arena()
    token = os.environ.get("AERIALSEG_TOKEN") if token is None else token
    # A header carries visible ASCII, and the guard strips what it is sent: a token of other
    # characters, or with spaces around it, could never be given (a review).
    if token and not (token.isascii() and token.isprintable() and token == token.strip()):
        raise AerialsegError(
            "--token (or AERIALSEG_TOKEN): use letters, digits and ASCII punctuation, without"
            " spaces around it: a client sends it in an HTTP header"
        )
    loaded = load_for_serving(model_path(model), device, precision)
    limits = ServeLimits(
        max_upload_bytes=int(max_upload_mb * 2**20),
        max_pixels=int(max_megapixels * 1e6),
        workers=workers,
        max_queue=max_queue,
        max_side=max_side,
        max_aspect=max_aspect,
        body_timeout_s=body_timeout,
    )
    if not token and not loopback(host):
        print(
            f"aerialseg: warning: listening on {host} without a token: anyone who reaches"
            " this port can use the API; set --token (or AERIALSEG_TOKEN) to require one",
            file=sys.stderr,
        )
    print(f"aerialseg: serving {loaded.spec.model} on http://{host}:{port}/")
    app = create_app(
        loaded,
        limits,
        token=token or None,
        allowed_hosts=list(allowed_hosts or default_allowed_hosts(host)),
        cors_origins=list(cors_origins),
    )
    uvicorn.Server(server_config(app, host, port, header_timeout)).run()
