"""HTTP API and web page: ``aerialseg serve``.

The model is loaded once; each request is decode -> validate -> predict -> encode, where
predict is ``inference.run.predict_one``, the code behind ``aerialseg predict``, so the API
and the CLI give the same files. Predictions run on a bounded thread pool: requests beyond
it wait in a queue of bounded length, and past that get 503 rather than memory pressure.
Uploads are stored under a name the server picks; nothing a client sends becomes a path.
Each upload's folder is named after the server's PID, so a server started after one was
killed removes what the dead one left. With a token, every ``/v1`` request must carry it
as ``Authorization: Bearer TOKEN``; ``/healthz`` and the page itself stay open.

What is checked before a request's body is read (token, length, a free place, Host,
Origin) is in ``guard``; the query is checked here, before the body too (``_options``);
how an upload is identified and read, with no network, in ``uploads``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import inspect
import io
import json
import logging
import re
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import rasterio
import rasterio.shutil
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles

from aerialseg.api import guard
from aerialseg.api.uploads import (
    NETWORK_OFF,
    SUFFIXES,
    UPLOAD_BODY,
    check_crs_reads_no_file,
    receive_upload,
    upload_driver,
)
from aerialseg.data.raster import (
    TooLargeInputError,
    UnreadableInputError,
    check_band_count,
    no_georeference_warning,
    parse_bands,
)
from aerialseg.errors import AerialsegError
from aerialseg.evaluation.metrics import headline_keys
from aerialseg.files import UPLOAD_DIR, sweep, upload_dir_prefix, write_failure
from aerialseg.inference.load import load_predictor
from aerialseg.inference.predict import Predictor
from aerialseg.inference.run import PredictOptions, predict_one
from aerialseg.inference.writers import aux_path
from aerialseg.options import options, plain

log = logging.getLogger("aerialseg.api")
MEDIA = {".png": "image/png", ".tif": "image/tiff"}


@dataclass
class ServeLimits:
    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 40_000_000
    workers: int = 1  # predictions at once
    max_queue: int = 8  # requests waiting beyond the workers before 503
    max_side: int = 20_000  # pixels, either side (no PNG mask is wider than about 1e6)
    max_aspect: float = 50.0  # the long side at most this many times the short one
    body_timeout_s: float = 120.0  # an upload still arriving after this gets 408


def load_for_serving(
    path: Path | None = None, device: str = "cpu", precision: str = "auto"
) -> Predictor:
    """Load a model once (None: the bundled one); test metrics come from the file or,
    failing that, from the ``eval-test/metrics.json`` that ``aerialseg evaluate`` writes
    beside it. ``device`` and ``precision`` as ``aerialseg predict``'s."""
    predictor = load_predictor(path, device=device, precision=precision)
    meta = predictor.meta
    report = Path(predictor.path or ".").parent / "eval-test" / "metrics.json"
    if "test_metrics" not in meta and report.is_file():
        metrics = json.loads(report.read_text(encoding="utf-8"))
        meta["test_metrics"] = {k: metrics.get(k) for k in headline_keys(predictor.classes)}
    return predictor


UPLOAD_NAME = "upload"  # the upload's file on the server, whose stem its outputs take


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _client_message(err: Exception, upload: Path) -> str:
    """The error without the server's temporary paths (the upload's, with the suffix of
    its kind too)."""
    text = re.sub(re.escape(str(upload)) + r"(\.(tif|png|jpg))?", "upload", str(err))
    return text.replace(str(upload.parent), "(server)")


def _options(
    loaded: Predictor, limits: ServeLimits, asked: dict[str, Any], polygons: bool, preview: bool
) -> PredictOptions:
    """The run's options from the query (``asked``: predict_query's) and the model alone,
    so that wrong ones are refused before the body arrives; the upload's driver is set
    when its bytes are read."""
    chosen = parse_bands(asked["bands"], "bands=")
    check_band_count(chosen, loaded.spec.in_channels, "bands=")
    outputs = {"classes", "areas"} | ({"color", "overlay"} if asked["overlay"] else set())
    outputs |= {"confidence"} if asked["confidence"] else set()
    outputs |= {"image", "color", "confidence"} if preview else set()
    return PredictOptions(
        outputs=frozenset(outputs),
        class_format=asked["format"] if asked["format"] in ("png", "tif") else "auto",
        vector="geojson" if polygons else None,
        simplify=asked["simplify"],
        min_area=asked["min_area"],
        bands=chosen or loaded.spec.band_tuple,
        tta=asked["tta"],
        progress=False,
        max_pixels=limits.max_pixels,
        band_flag="?bands=",  # hints in the query's form: ?bands=1,2,3
        vector_flag="polygons=true" + ("" if asked["format"] == "json" else " and format=json"),
        pixel_flag=None,  # the model's pixel size: the API has no setting for it
        max_side=limits.max_side,  # from the header: a 125 KB TIFF may be 2,000,000 px wide
        max_aspect=limits.max_aspect,
    )


def _segment(loaded: Predictor, upload: Path, out: Path, opts: PredictOptions) -> dict[str, Path]:
    """Runs on a worker thread, with GDAL's network access off: the upload's kind from its
    first bytes, then the CLI's predict_one, which reads it with that kind's driver only
    and checks its pixel count, sides and their ratio from its header before decoding."""
    driver = upload_driver(upload)
    # named by its kind, so that "auto" is what predict writes for such a file: GeoTIFF
    # for a TIFF (one placed by GCPs, or by a transform alone, keeps them) or a
    # georeferenced image, else PNG
    upload = upload.rename(upload.with_suffix(SUFFIXES[driver]))
    check_crs_reads_no_file(upload)  # before GDAL, whose opening reads the CRS's grids
    out.mkdir()
    with rasterio.Env(**NETWORK_OFF):
        return predict_one(loaded, upload, out, replace(opts, driver=driver))


class ClientGone(Exception):
    """The client left before its job's turn."""


async def _watch_for_leaving(request: Request, gone: threading.Event) -> None:
    """Sets ``gone`` when the client disconnects: the body is all in, so what receive
    gives next is the disconnect."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    gone.set()


def _unless_gone(gone: threading.Event, work: Callable[[], Any]) -> Any:
    """``work`` on a worker, unless its client left while it waited for one (a review:
    two requests abandoned in the queue were still predicted, 16 s each, and a small one
    waited 33 s behind them). One that leaves while its job runs lets it end."""
    if gone.is_set():
        raise ClientGone
    return work()


def _answered(segment: Callable[[], dict[str, Path]], stem: str, *extras: bool) -> bytes:
    """The JSON answer of a prediction, encoded as JSONResponse would, in the prediction's
    job: made in a job of its own, it queued behind every prediction asked for meanwhile,
    and each answer waited for the whole queue (a review: five uploads all answered at
    18 s); encoded on the event loop, a 200 MB answer held every connection, /healthz's
    too, for 5 to 23 s (a review)."""
    body = _json_answer(segment(), stem, *extras)
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _json_answer(
    written: dict[str, Path],
    stem: str,
    overlay: bool,
    polygons: bool,
    confidence: bool,
    preview: bool,
) -> dict[str, Any]:
    """The JSON answer's body; on a worker thread, as its PNG encodes of a large upload
    would hold every other connection on the event loop."""
    mask = written["classes"]
    body: dict[str, Any] = {
        "areas": json.loads(written["areas_json"].read_text(encoding="utf-8")),
        "mask": {"media_type": MEDIA[mask.suffix], "base64": _b64(mask)},
    }
    if overlay:
        body["color_png"] = _png_b64(written["color"])  # a GeoTIFF's as PNG too
        body["overlay_png"] = _b64(written["overlay"])
    if polygons:
        body["geojson"] = json.loads(written["polygons"].read_text(encoding="utf-8"))
    if confidence:
        path = written["confidence"]
        body["confidence"] = {"media_type": MEDIA[path.suffix], "base64": _b64(path)}
    if preview:
        body["preview"] = {key: _png_b64(written[key]) for key in ("image", "color", "confidence")}
        zipped = [mask, aux_path(mask), written["classes_style"]]
        body["mask_zip"] = _zip_b64(zipped, stem)
    return body


def _validation_text(err: RequestValidationError) -> str:
    """FastAPI's list of query errors as one line: ``format='xyz': input should be ...``."""
    parts = []
    for problem in err.errors():
        name = problem.get("loc", ("request",))[-1]
        said = problem.get("msg", "invalid")
        if problem.get("type") == "string_pattern_mismatch":
            said = "give band numbers separated by commas, e.g. 4,3,2"
        given = f"={problem['input']!r}"[:80] if "input" in problem else ""  # a value echoed, cut
        parts.append(f"{name}{given}: {said[:1].lower()}{said[1:]}")
    return "; ".join(parts)


# The query parameters that are predict_files' own options: their names, types, defaults
# and descriptions come from its definition, as the CLI's flags do (aerialseg.options).
# format adds json (the areas and more as JSON); bands is text, ?bands=4,3,2.
PREDICT_QUERY = ("format", "overlay", "confidence", "bands", "tta", "simplify", "min_area")


def predict_query() -> Any:
    """A FastAPI dependency taking PREDICT_QUERY from the query, as a dict."""
    from aerialseg.public import predict_files

    parameters = []
    for option in options(predict_files):
        if option.name not in PREDICT_QUERY:
            continue
        kind: Any = option.kind
        query: dict[str, Any] = {"description": plain(option.help)}
        if option.name == "format":
            kind = Literal[(*option.choices, "json")]  # type: ignore[misc]
            query["description"] += "; json: the areas, and what else is asked for, as JSON"
        elif option.choices:
            kind = Literal[option.choices]  # type: ignore[misc]
        if option.many:
            kind, query["pattern"] = str, r"^[0-9]+(,[0-9]+)*$"
        if option.default is None:
            kind = kind | None
        parameters.append(
            inspect.Parameter(
                option.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=option.default,
                annotation=Annotated[kind, Query(**query)],
            )
        )

    def read(**values: Any) -> dict[str, Any]:
        return values

    read.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return read


def _png_b64(path: Path) -> str:
    """A raster output as PNG for a browser, whatever its format (GDAL converts a GeoTIFF;
    its georeference goes to a sidecar that is not sent)."""
    if path.suffix != ".png":
        png = path.with_suffix(".preview.png")
        with no_georeference_warning():
            rasterio.shutil.copy(path, png, driver="PNG")
        path = png
    return _b64(path)


def _zip_b64(paths: list[Path], stem: str) -> str:
    """The files that belong together (a raster and the sidecars holding its class names
    and style) as one zip, so a download keeps them together; named by the upload's
    ``stem`` (upload_classes.png -> NAME_classes.png)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in paths:
            if path.is_file():
                archive.write(path, stem + path.name.removeprefix(UPLOAD_NAME))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bands_text(bands: tuple[int, ...] | None) -> str:
    if not bands:
        return "3-band RGB, or RGBA (alpha marks nodata); others with bands="
    listed = ",".join(map(str, bands))
    return f"bands {listed} as RGB" if len(bands) == 3 else f"bands {listed}, in this order"


def model_info(loaded: Predictor, limits: ServeLimits) -> dict:
    return {
        "name": loaded.spec.model,
        "precision": loaded.precision,
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
            "bands": _bands_text(loaded.spec.bands),
            "values": "8-bit as is; 16-bit and float stretched per band (2nd-98th percentile)",
            # georeferenced uploads are resampled to this pixel size (CRS units); None: not
            "pixel_size": loaded.spec.pixel_size,
            "max_upload_bytes": limits.max_upload_bytes,
            "max_pixels": limits.max_pixels,
            "max_side": limits.max_side,
            "max_aspect": limits.max_aspect,
        },
        "metrics": loaded.meta.get("test_metrics") or {"val_miou": loaded.meta.get("val_miou")},
        # confidence=true reports probabilities at this temperature (fitted by training)
        "confidence_temperature": loaded.spec.confidence_temperature or 1.0,
    }


# Declares the token in the OpenAPI schema (and the docs' Authorize button); the check
# itself is guard.Guard's, made before the body is read.
BEARER = HTTPBearer(auto_error=False, description="the token given to aerialseg serve")


def _fastapi(**kwargs: Any) -> FastAPI:
    """FastAPI whose /docs and /redoc load their scripts from this server (the copy that
    fastapi-offline ships), never from a public CDN; without that package, no docs pages
    (the schema stays at /openapi.json)."""
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:
        return FastAPI(docs_url=None, redoc_url=None, **kwargs)
    return FastAPIOffline(**kwargs)


def create_app(
    loaded: Predictor,
    limits: ServeLimits | None = None,
    token: str | None = None,
    allowed_hosts: Iterable[str] | None = None,
    cors_origins: Iterable[str] = (),
) -> FastAPI:
    """The app; ``token``: required of every /v1 request (None: open to all who reach it).
    ``allowed_hosts``: the Host header values answered (None: any; ``aerialseg serve``
    passes the address it listens on, guard.default_allowed_hosts). ``cors_origins``: web
    pages of other origins that may call the API (none by default)."""
    limits = limits or ServeLimits()
    sweep(Path(tempfile.gettempdir()), UPLOAD_DIR)  # what killed servers left
    authorized = [Depends(BEARER)]
    pool = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="predict")
    app = _fastapi(
        title="aerialseg", version="1", description="Semantic segmentation of aerial imagery."
    )
    guard.install(
        app,
        token=token,
        max_upload_bytes=limits.max_upload_bytes,
        max_active=limits.workers + limits.max_queue,
        body_timeout_s=limits.body_timeout_s,
        allowed_hosts=allowed_hosts,
        cors_origins=cors_origins,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        # one line, and the connection closed: its body is not read only to be discarded
        return JSONResponse({"detail": _validation_text(err)}, 422, headers={"connection": "close"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)  # the trace stays here
        return JSONResponse({"detail": "internal error; the server log has the details"}, 500)

    # GET and HEAD: uptime checks and load balancers probe with either
    @app.api_route("/healthz", methods=["GET", "HEAD"])
    def healthz() -> dict:
        return {"status": "ok"}

    @app.api_route("/v1/model", methods=["GET", "HEAD"], dependencies=authorized)
    def get_model() -> dict:
        return model_info(loaded, limits)

    @app.post(
        "/v1/segment",
        dependencies=authorized,
        openapi_extra={"requestBody": UPLOAD_BODY},  # read by receive_upload, not FastAPI
        responses={
            200: {
                "content": {"image/png": {}, "image/tiff": {}, "application/json": {}},
                "description": "class mask, or JSON with areas (and overlay / polygons /"
                " confidence)",
            },
            400: {
                "description": "a Host header that names no address of this server, an"
                " upload cut short, or a Content-Length that is no number"
            },
            401: {"description": "token missing or wrong (a server started with --token)"},
            403: {"description": "sent by a web page of another origin (see --cors-origin)"},
            408: {"description": "the upload took too long to arrive"},
            411: {"description": "no Content-Length"},
            413: {"description": "upload or image too large, or too long on one side"},
            415: {"description": "not a JPEG, PNG or TIFF"},
            422: {"description": "an empty or damaged image, or wrong parameters"},
            503: {"description": "too many requests queued"},
            507: {"description": "the server's disk is full"},
        },
    )
    async def segment(
        request: Request,
        asked: Annotated[dict[str, Any], Depends(predict_query())],
        polygons: Annotated[bool, Query(description="json: include GeoJSON polygons")] = False,
        preview: Annotated[
            bool,
            Query(
                description="json: include PNGs a browser shows whatever the upload's format:"
                " the image as the model saw it (8-bit RGB), the colour mask (clear where"
                " there is no data) and the confidence; and the mask zipped with its class"
                " names and QGIS style (mask_zip)"
            ),
        ] = False,
    ) -> Response:
        format, overlay, confidence = asked["format"], asked["overlay"], asked["confidence"]
        extras = {"overlay": overlay, "confidence": confidence, "polygons": polygons}
        asked_for = [name for name, on in {**extras, "preview": preview}.items() if on]
        if asked_for and format != "json":  # said before the body is read, not ignored
            raise HTTPException(
                422,
                f"{' and '.join(asked_for)}: part of the JSON answer; add format=json",
                headers={"connection": "close"},
            )
        try:
            opts = _options(loaded, limits, asked, polygons, preview)
        except AerialsegError as err:  # said before the body is read
            raise HTTPException(422, str(err), headers={"connection": "close"}) from None
        with tempfile.TemporaryDirectory(prefix=upload_dir_prefix()) as tmp:
            upload, out = Path(tmp) / UPLOAD_NAME, Path(tmp) / "out"
            loop = asyncio.get_running_loop()
            try:
                stem = await receive_upload(request, upload, limits.max_upload_bytes)
                work: Callable[[], Any] = functools.partial(_segment, loaded, upload, out, opts)
                if format == "json":  # in the prediction's own job (_answered)
                    work = functools.partial(
                        _answered, work, stem, overlay, polygons, confidence, preview
                    )
                gone = threading.Event()  # set when the client leaves
                watch = asyncio.create_task(_watch_for_leaving(request, gone))
                try:
                    result = await loop.run_in_executor(pool, _unless_gone, gone, work)
                finally:
                    watch.cancel()
            except ClientGone:  # no one to answer: the connection is closed already
                return Response(status_code=499)
            except TooLargeInputError as err:
                raise HTTPException(413, _client_message(err, upload)) from None
            except UnreadableInputError as err:
                raise HTTPException(415, _client_message(err, upload)) from None
            except AerialsegError as err:  # the image, or a parameter
                raise HTTPException(422, _client_message(err, upload)) from None
            except HTTPException:
                raise
            except Exception as err:
                reason = write_failure(err, Path(tmp))
                if reason is None:
                    raise
                log.error("%s", reason)
                raise HTTPException(507, "the server's disk is full; try again later") from None
            if format == "json":
                return Response(result, media_type="application/json")
            mask = result["classes"]
            return Response(mask.read_bytes(), media_type=MEDIA[mask.suffix])

    static = files("aerialseg") / "api" / "static"

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(static / "index.html"))

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app
