"""HTTP API and web page: ``aerialseg serve``.

The model is loaded once; each request is decode -> validate -> predict -> encode, where
predict is ``inference.run.predict_one``, the code behind ``aerialseg predict``, so the API
and the CLI give the same files. Predictions run on a bounded thread pool: requests beyond
it wait in a queue of bounded length, and past that get 503 rather than memory pressure.
Uploads are stored under a name the server picks; nothing a client sends becomes a path.
Each upload's folder is named after the server's PID, so a server started after one was
killed removes what the dead one left. With a token, every ``/v1`` request must carry it
as ``Authorization: Bearer TOKEN``; ``/healthz`` and the page itself stay open.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from aerialseg.data.raster import (
    InputError,
    TooLargeInputError,
    UnreadableInputError,
    check_band_count,
    parse_bands,
)
from aerialseg.evaluation.metrics import headline_keys
from aerialseg.files import UPLOAD_DIR, sweep, upload_dir_prefix, write_failure
from aerialseg.inference.engine import engine_precision, with_precision
from aerialseg.inference.run import PredictOptions, predict_one
from aerialseg.models.io import load_model

log = logging.getLogger("aerialseg.api")
READ_CHUNK = 1 << 20
MEDIA = {".png": "image/png", ".tif": "image/tiff"}


@dataclass
class ServeLimits:
    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 40_000_000
    workers: int = 1  # predictions at once
    max_queue: int = 8  # requests waiting beyond the workers before 503


@dataclass
class LoadedEngine:
    engine: Any
    config: Any
    classes: Any
    meta: dict
    device: str = "cpu"


def load_engine(path: Path, device: str = "cpu", precision: str = "auto") -> LoadedEngine:
    """Load a model file once; test metrics come from the file or, failing that, from the
    ``eval-test/metrics.json`` that ``aerialseg evaluate`` writes beside it. ``precision``
    as ``aerialseg predict --precision``."""
    model = load_model(path, device=device, for_inference=True)
    meta = dict(model.meta)
    report = path.parent / "eval-test" / "metrics.json"
    if "test_metrics" not in meta and report.is_file():
        metrics = json.loads(report.read_text())
        meta["test_metrics"] = {k: metrics.get(k) for k in headline_keys(model.classes)}
    engine = with_precision(model.net, precision, device)
    return LoadedEngine(engine, model.config, model.classes, meta, device)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _client_message(err: Exception, upload: Path) -> str:
    """The error without the server's temporary path."""
    return str(err).replace(str(upload), "upload")


async def _save_upload(file: UploadFile, dest: Path, limit: int) -> None:
    size = 0
    with dest.open("wb") as out:
        while chunk := await file.read(READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"upload larger than the limit of {limit // 2**20} MiB")
            out.write(chunk)


def _segment(
    loaded: LoadedEngine,
    upload: Path,
    out: Path,
    limits: ServeLimits,
    fmt: str,
    overlay: bool,
    polygons: bool,
    bands_text: str | None = None,
    confidence: bool = False,
) -> dict[str, Path]:
    """Runs on a worker thread: the CLI's predict_one, which checks the image's size from
    its header before decoding it."""
    chosen = parse_bands(bands_text, "bands=")
    check_band_count(chosen, loaded.config.in_channels, "bands=")
    bands = chosen or loaded.config.band_tuple
    # The upload has no suffix: "auto" is GeoTIFF for a georeferenced image, else PNG.
    class_format = fmt if fmt in ("png", "tif") else "auto"
    outputs = {"classes", "areas"} | ({"color", "overlay"} if overlay else set())
    outputs |= {"confidence"} if confidence else set()
    opts = PredictOptions(
        outputs=frozenset(outputs),
        class_format=class_format,
        vector="geojson" if polygons else None,
        bands=bands,
        progress=False,
        max_pixels=limits.max_pixels,
        band_flag="?bands=",  # hints in the query's form: ?bands=1,2,3
    )
    out.mkdir()
    return predict_one(
        loaded.engine, loaded.config, loaded.classes, upload, out, opts, loaded.device
    )


def _bands_text(bands: list[int] | None) -> str:
    if not bands:
        return "3-band RGB, or RGBA (alpha marks nodata); others with bands="
    listed = ",".join(map(str, bands))
    return f"bands {listed} as RGB" if len(bands) == 3 else f"bands {listed}, in this order"


def model_info(loaded: LoadedEngine, limits: ServeLimits) -> dict:
    return {
        "name": loaded.config.model,
        "precision": engine_precision(loaded.engine),
        "classes": [
            {
                "id": i,
                "name": c.name,
                "color": c.display_color,
                "mask_color": c.mask_color,
                "mask_value": c.mask_value,
                "scored": c.scored,
            }
            for i, c in enumerate(loaded.classes.classes)
        ],
        "input": {
            "formats": ["JPEG", "PNG", "TIFF", "GeoTIFF"],
            "bands": _bands_text(loaded.config.bands),
            "values": "8-bit as is; 16-bit and float stretched per band (2nd-98th percentile)",
            # georeferenced uploads are resampled to this pixel size (CRS units); None: not
            "pixel_size": loaded.config.pixel_size,
            "max_upload_bytes": limits.max_upload_bytes,
            "max_pixels": limits.max_pixels,
        },
        "metrics": loaded.meta.get("test_metrics") or {"val_miou": loaded.meta.get("val_miou")},
        # confidence=true reports probabilities at this temperature (fitted by training)
        "confidence_temperature": loaded.config.confidence_temperature or 1.0,
    }


# Module level: the annotations below are strings (postponed), resolved in these globals.
BEARER = HTTPBearer(auto_error=False, description="the token given to aerialseg serve")


def bearer_check(token: str | None):
    """A dependency that lets a request through when it carries ``token`` (any request
    when there is none); 401 otherwise. Compared in constant time."""

    def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        if token is None:
            return
        given = credentials.credentials if credentials else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401,
                "a valid token is needed: Authorization: Bearer TOKEN",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def create_app(
    loaded: LoadedEngine, limits: ServeLimits | None = None, token: str | None = None
) -> FastAPI:
    """The app; ``token``: required of every /v1 request (None: open to all who reach it)."""
    limits = limits or ServeLimits()
    sweep(Path(tempfile.gettempdir()), UPLOAD_DIR)  # what killed servers left
    authorized = [Depends(bearer_check(token))]
    pool = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="predict")
    slots = asyncio.Semaphore(limits.workers + limits.max_queue)
    app = FastAPI(
        title="aerialseg", version="1", description="Semantic segmentation of aerial imagery."
    )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)  # the trace stays here
        return JSONResponse({"detail": "internal error; the server log has the details"}, 500)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/v1/model", dependencies=authorized)
    def get_model() -> dict:
        return model_info(loaded, limits)

    @app.post(
        "/v1/segment",
        dependencies=authorized,
        responses={
            200: {
                "content": {"image/png": {}, "image/tiff": {}, "application/json": {}},
                "description": "class mask, or JSON with areas (and overlay / polygons /"
                " confidence)",
            },
            401: {"description": "token missing or wrong (a server started with --token)"},
            413: {"description": "upload or image too large"},
            415: {"description": "not an image"},
            422: {"description": "damaged image or wrong parameters"},
            503: {"description": "too many requests queued"},
            507: {"description": "the server's disk is full"},
        },
    )
    async def segment(
        file: Annotated[UploadFile, File(description="JPEG, PNG, TIFF or GeoTIFF")],
        format: Annotated[
            Literal["auto", "png", "tif", "json"],
            Query(description="mask format, or json for areas"),
        ] = "auto",
        overlay: Annotated[
            bool, Query(description="json: include colour mask and overlay PNG")
        ] = False,
        polygons: Annotated[bool, Query(description="json: include GeoJSON polygons")] = False,
        confidence: Annotated[
            bool,
            Query(
                description="json: include the confidence raster (each pixel's probability"
                " of its class in percent, 255 where the image has no data), in the mask's"
                " format"
            ),
        ] = False,
        bands: Annotated[
            str | None,
            Query(
                description="1-based band numbers to read, as many as the model takes, e.g."
                " 4,3,2 (default: the model's bands, else 1-3 of an RGB or RGBA image)",
                pattern=r"^\d+(,\d+)*$",
            ),
        ] = None,
    ) -> Response:
        if slots.locked():
            raise HTTPException(503, "server busy: too many requests queued; retry shortly")
        async with slots:
            with tempfile.TemporaryDirectory(prefix=upload_dir_prefix()) as tmp:
                upload, out = Path(tmp) / "upload", Path(tmp) / "out"
                loop = asyncio.get_running_loop()
                try:
                    await _save_upload(file, upload, limits.max_upload_bytes)
                    written = await loop.run_in_executor(
                        pool,
                        _segment,
                        loaded,
                        upload,
                        out,
                        limits,
                        format,
                        overlay,
                        polygons,
                        bands,
                        confidence,
                    )
                except TooLargeInputError as err:
                    raise HTTPException(413, _client_message(err, upload)) from None
                except UnreadableInputError as err:
                    raise HTTPException(415, _client_message(err, upload)) from None
                except InputError as err:
                    raise HTTPException(422, _client_message(err, upload)) from None
                except HTTPException:
                    raise
                except Exception as err:
                    reason = write_failure(err, Path(tmp))
                    if reason is None:
                        raise
                    log.error("%s", reason)
                    raise HTTPException(507, "the server's disk is full; try again later") from None
                mask = written["classes"]
                if format != "json":
                    return Response(mask.read_bytes(), media_type=MEDIA[mask.suffix])
                body: dict[str, Any] = {
                    "areas": json.loads(written["areas_json"].read_text()),
                    "mask": {"media_type": MEDIA[mask.suffix], "base64": _b64(mask)},
                }
                if overlay:
                    body["color_png"] = (
                        _b64(written["color"]) if written["color"].suffix == ".png" else None
                    )
                    body["overlay_png"] = _b64(written["overlay"])
                if polygons:
                    body["geojson"] = json.loads(written["polygons"].read_text())
                if confidence:
                    path = written["confidence"]
                    body["confidence"] = {"media_type": MEDIA[path.suffix], "base64": _b64(path)}
                return JSONResponse(body)

    static = files("aerialseg") / "api" / "static"

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(static / "index.html"))

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app
