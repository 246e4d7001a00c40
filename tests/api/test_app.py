"""The API in-process: endpoints, errors, the worker bound, parity with the CLI."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
from affine import Affine
from fastapi.testclient import TestClient
from PIL import Image
from rasterio.warp import transform_bounds

from aerialseg.api import app as app_module
from aerialseg.api.app import ServeLimits, create_app, load_for_serving
from aerialseg.cli import main
from aerialseg.data.raster import InputError, open_input
from aerialseg.inference.engine import Bf16Engine
from aerialseg.models.io import load_model, save_model
from tests.helpers.geotiff import TRANSFORM, UTM40N, write_geotiff
from tests.helpers.images import jpeg_bytes, rgb_scene
from tests.helpers.paths import REAL_DATA


@pytest.fixture
def client(app):
    return TestClient(app, raise_server_exceptions=False)


def test_health_and_model(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/v1/model").json()
    assert info["name"] == "seed-unet"
    assert [c["name"] for c in info["classes"]][:2] == ["Building", "Land"]
    assert info["classes"][0]["color"] == "#D0021B"
    assert info["input"]["max_pixels"] == 1_000_000
    assert "openapi" in client.get("/openapi.json").json()


def test_probes_may_ask_with_head(client):
    """Uptime checks and load balancers probe with HEAD: it was 405, a server down."""
    for path in ("/healthz", "/v1/model", "/"):
        answer = client.head(path)
        assert answer.status_code == 200, path
        assert answer.content == b""
    assert client.post("/healthz").status_code == 405


def test_model_reports_test_metrics_from_evaluate(tiny_model, tmp_path):
    import shutil

    shutil.copy(tiny_model, tmp_path / "model.pt")
    (tmp_path / "eval-test").mkdir()
    (tmp_path / "eval-test" / "metrics.json").write_text(
        '{"miou6": 0.61, "miou5": 0.7, "pixel_accuracy": 0.85, "mean_dice": 0.72}'
    )
    client = TestClient(create_app(load_for_serving(tmp_path / "model.pt")))
    assert client.get("/v1/model").json()["metrics"] == {
        "miou6": 0.61,
        "miou5": 0.7,
        "pixel_accuracy": 0.85,
        "mean_dice": 0.72,
    }


@pytest.mark.parametrize("tta", [False, True])
def test_png_mask_equals_cli_output(client, tiny_model, tmp_path, tta):
    """With tta=true too: a review found it ignored (the server's predict_one applied the
    batch size alone), its output the plain one's, byte for byte."""
    data = jpeg_bytes()
    (tmp_path / "photo.jpg").write_bytes(data)
    argv = ["predict", str(tmp_path / "photo.jpg"), "--model", str(tiny_model)]
    argv += ["--out", str(tmp_path / "cli"), "--device", "cpu"] + (["--tta"] if tta else [])
    assert main(argv) == 0
    files = {"file": ("photo.jpg", data, "image/jpeg")}
    response = client.post(f"/v1/segment?tta={str(tta).lower()}", files=files)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    api_ids = np.asarray(Image.open(io.BytesIO(response.content)))
    cli_ids = np.asarray(Image.open(tmp_path / "cli" / "photo_classes.png"))
    assert api_ids.shape == (90, 110) and np.array_equal(api_ids, cli_ids)
    if tta:  # the tiny model's flips differ somewhere: the comparison can tell them apart
        plain = client.post("/v1/segment", files=files).content
        assert not np.array_equal(np.asarray(Image.open(io.BytesIO(plain))), cli_ids)


def test_any_tiff_comes_back_as_the_tiff_predict_writes(client, tmp_path):
    """A review: the upload had no suffix, so a TIFF without a CRS came back as a PNG
    (its transform or GCPs dropped), where predict writes a TIFF; and a TIFF placed by
    GCPs of no CRS was a 500."""
    from tests.inference.test_georeference import gcps_without_crs

    placed = tmp_path / "placed.tif"  # a transform and no CRS: a GIS places it as it is
    profile = {"driver": "GTiff", "width": 80, "height": 64, "count": 3, "dtype": "uint8"}
    with rasterio.open(placed, "w", **profile, transform=TRANSFORM) as dst:
        dst.write(rgb_scene(64, 80))
    for path in (placed, gcps_without_crs(tmp_path)):
        response = client.post("/v1/segment", files={"file": ("x", path.read_bytes())})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/tiff", path.name
        with rasterio.MemoryFile(response.content) as mem, mem.open() as out:
            assert out.crs is None and out.shape == rasterio.open(path).shape
            if path == placed:
                assert out.transform == TRANSFORM


def test_polygons_of_a_scene_off_its_crs_are_422(client, tmp_path):
    """GeoJSON is WGS84: a UTM scene 1e9 m east had no place there, a 500 (a review)."""
    from rasterio.transform import from_origin

    far = write_geotiff(
        tmp_path / "far.tif", rgb_scene(64, 64), transform=from_origin(1e9, 2.8e6, 0.5, 0.5)
    )
    files = {"file": ("far.tif", far.read_bytes())}
    response = client.post("/v1/segment?format=json&polygons=true", files=files)
    assert response.status_code == 422
    assert "its georeference lies outside what its CRS places on Earth" in response.json()["detail"]
    assert client.post("/v1/segment?format=json", files=files).status_code == 200


# Posts an upload to a server of the tiny model in a process of its own: one blocked in a
# C call that holds the GIL (PROJ opening a FIFO) cannot be stopped from its own threads.
POST_IN_A_CHILD = """
import json, sys
from fastapi.testclient import TestClient
from aerialseg.api.app import ServeLimits, create_app, load_for_serving
app = create_app(load_for_serving(sys.argv[1]), ServeLimits())
upload = open(sys.argv[2], "rb").read()
answer = TestClient(app).post("/v1/segment", files={"file": ("g.tif", upload)})
detail = answer.json().get("detail") if answer.status_code != 200 else None
print(json.dumps([answer.status_code, detail]))
"""


def respelled(path: Path, grid: Path, how: str) -> None:
    """The ESRI PE string's grid in ``path`` written as PROJ also reads it, its length
    kept (a second review): unquoted, or in "(" for "[", or in doubled quotes; the datum
    citation's "using nadgrids=PATH" made no path."""
    data = path.read_bytes()
    at = str(grid).encode()
    data = data.replace(b"nadgrids=" + at, b"nadgrids_" + at.replace(b"/", b"_"))
    node = b'EXTENSION["PROJ4_GRIDS","' + at + b'"]'
    spelled = {
        "unquoted": b'EXTENSION["PROJ4_GRIDS",' + at + b"  ]",
        "paren": b'EXTENSION("PROJ4_GRIDS",' + at + b"  )",
        "doubled": b'EXTENSION["PROJ4_GRIDS",""' + at[2:] + b'""]',
        # a third review: a check that cut the keys' text at "|" read "@" alone
        "piped": b'EXTENSION["PROJ4_GRIDS","@|,' + at[3:] + b'"]',
    }[how]
    assert node in data and len(spelled) == len(node)
    path.write_bytes(data.replace(node, spelled))


@pytest.mark.parametrize("flavor", ["ESRI_PE", "STANDARD", "unquoted"])
def test_a_crs_naming_a_file_on_the_server_is_422_before_gdal_opens_it(
    tiny_model, tmp_path, flavor
):
    """A review: a GeoTIFF whose CRS named a datum grid by path (+nadgrids=/etc/passwd,
    kept as PROJ4_GRIDS in an ESRI PE string) made PROJ open that file on the server,
    already when GDAL opened the upload; one naming a FIFO froze every request. Here the
    grid is a FIFO: were it opened, the server would block, and its process be killed. A
    grid of PROJ's own, by name (Web Mercator's @null), stays allowed."""
    import subprocess
    import sys

    from rasterio.transform import from_origin

    fifo = tmp_path / "grid.gsb"
    proj = f"+proj=merc +ellps=WGS84 +nadgrids={fifo} +wktext +no_defs"
    path = tmp_path / "g.tif"
    keys = "STANDARD" if flavor == "STANDARD" else "ESRI_PE"
    profile = dict(driver="GTiff", width=64, height=64, count=3, dtype="uint8",
                   crs=rasterio.crs.CRS.from_proj4(proj), GEOTIFF_KEYS_FLAVOR=keys,
                   transform=from_origin(6e6, 2.9e6, 1, 1))  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rgb_scene(64, 64))
    assert str(fifo).encode() in path.read_bytes()
    if flavor == "unquoted":  # a second review: passed the first check's pattern
        respelled(path, fifo, flavor)
    os.mkfifo(fifo)
    mercator = write_geotiff(
        tmp_path / "m.tif",
        rgb_scene(64, 64),
        crs="EPSG:3857",
        transform=from_origin(6e6, 2.9e6, 1, 1),
    )
    answers = []
    for upload in (path, mercator):
        try:
            done = subprocess.run(
                [sys.executable, "-c", POST_IN_A_CHILD, str(tiny_model), str(upload)],
                capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server blocked on {upload.name}: it opened what its CRS names")
        answers.append(json.loads(done.stdout.splitlines()[-1]))
    assert answers == [
        [
            422,
            f"upload: its CRS names a file for PROJ to read ({fifo}); the server reads nothing"
            " but the upload: give the image its CRS by EPSG code (gdal_edit.py -a_srs"
            " EPSG:NNNN)",
        ],
        [200, None],
    ]


def grid_geotiff(path: Path, grid: str, bigtiff: bool = False) -> Path:
    """An 8 x 8 GeoTIFF whose CRS (an ESRI PE string) shifts its datum by ``grid``."""
    proj = f"+proj=merc +ellps=WGS84 +nadgrids={grid} +wktext +no_defs"
    crs = rasterio.crs.CRS.from_proj4(proj)
    profile = dict(driver="GTiff", width=8, height=8, count=1, dtype="uint8", crs=crs,
                   GEOTIFF_KEYS_FLAVOR="ESRI_PE", BIGTIFF="YES" if bigtiff else "NO")  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.zeros((1, 8, 8), np.uint8))
    return path


@pytest.mark.parametrize("how", ["unquoted", "paren", "doubled", "piped"])
def test_a_grid_named_in_any_spelling_proj_reads_is_refused(tmp_path, how):
    """The rule reads the GeoTIFF keys' text, not one spelling of it (a second review:
    the value unquoted, or in "(", opened the file; a third: a "|" inside the key)."""
    from aerialseg.api.uploads import check_crs_reads_no_file

    grid = tmp_path / "grid.gsb"
    path = grid_geotiff(tmp_path / "g.tif", str(grid))
    respelled(path, grid, how)
    with pytest.raises(InputError, match=r"its CRS names a file for PROJ to read \(.*grid.gsb\)"):
        check_crs_reads_no_file(path)


def test_geotiff_keys_are_read_as_libgeotiff_reads_them_or_refused(tmp_path):
    """A third review: text keys stored as SHORTs (libtiff hands GDAL their text) were not
    read as text, and passed. Such keys are refused; a BigTIFF's keys are read; PROJ's own
    grids by name (Web Mercator's @null) pass; a key's text is bounded."""
    from aerialseg.api.geokeys import GEO_ASCII_PARAMS
    from aerialseg.api.uploads import check_crs_reads_no_file
    from tests.helpers.hostile import tiff_tag_retyped

    grid = tmp_path / "grid.gsb"
    shorts = tiff_tag_retyped(grid_geotiff(tmp_path / "s.tif", str(grid)), GEO_ASCII_PARAMS, 3, 8)
    with pytest.raises(InputError, match=r"^upload: its TIFF tag 34737 is of type 3, not 2$"):
        check_crs_reads_no_file(shorts)
    big = grid_geotiff(tmp_path / "b.tif", str(grid), bigtiff=True)
    assert big.read_bytes()[2] == 43  # BigTIFF
    with pytest.raises(InputError, match=r"its CRS names a file for PROJ to read \(.*grid.gsb\)"):
        check_crs_reads_no_file(big)
    check_crs_reads_no_file(grid_geotiff(tmp_path / "m.tif", "@null"))  # passes


def test_geotiff_keeps_georeference(client, tmp_path):
    path = write_geotiff(tmp_path / "g.tif", rgb_scene(64, 80))
    response = client.post("/v1/segment", files={"file": ("g.tif", path.read_bytes())})
    assert response.headers["content-type"] == "image/tiff"
    with (
        rasterio.MemoryFile(response.content) as mem,
        mem.open() as out,
        rasterio.open(path) as src,
    ):
        assert out.crs == src.crs and out.transform == src.transform


def test_json_with_overlay_and_polygons(client):
    response = client.post(
        "/v1/segment?format=json&overlay=true&polygons=true",
        files={"file": ("p.jpg", jpeg_bytes(), "image/jpeg")},
    )
    body = response.json()
    assert sum(a["pixels"] for a in body["areas"]) == 90 * 110
    assert sum(a["share"] for a in body["areas"]) == pytest.approx(1)
    overlay = Image.open(io.BytesIO(base64.b64decode(body["overlay_png"])))
    assert overlay.size == (110, 90)
    assert body["geojson"]["type"] == "FeatureCollection" and body["geojson"]["features"]
    assert body["mask"]["media_type"] == "image/png"
    assert "confidence" not in body


def test_json_with_confidence_of_a_geotiff(client, loaded, tiny_model, tmp_path):
    data = rgb_scene(60, 80)
    data[:, :10, :20] = 0
    path = write_geotiff(tmp_path / "g.tif", data, nodata=0)
    response = client.post(
        "/v1/segment?format=json&confidence=true",
        files={"file": ("g.tif", path.read_bytes(), "image/tiff")},
    )
    body = response.json()
    assert body["confidence"]["media_type"] == "image/tiff"
    temperature = client.get("/v1/model").json()["confidence_temperature"]
    fitted = load_model(tiny_model).spec.confidence_temperature
    assert temperature == fitted and fitted != 1  # the one the model file carries
    with (
        rasterio.MemoryFile(base64.b64decode(body["confidence"]["base64"])) as mem,
        mem.open() as out,
    ):
        percent = out.read(1)
        assert out.nodata == 255 and out.crs == UTM40N and out.transform == TRANSFORM
    assert (percent[:10, :20] == 255).all()
    # the same percentages as the in-memory prediction at the model's temperature
    raster = open_input(path, loaded.spec.band_tuple)
    expected = np.concatenate([b.confidence for b in loaded.rows(raster, confidence=True)])
    raster.close()
    assert np.abs(percent.astype(int) - expected).max() <= 1
    assert (percent == expected).mean() > 0.99


@pytest.mark.parametrize(
    "payload, status, fragment",
    [
        (b"this is not an image", 415, "not an image"),
        (b"", 422, "empty (0 bytes)"),
    ],
)
def test_unreadable_uploads(client, payload, status, fragment):
    response = client.post("/v1/segment", files={"file": ("x.png", payload)})
    assert response.status_code == status and fragment in response.json()["detail"]
    assert "/tmp" not in response.json()["detail"]  # no server path in messages


def test_band_count_is_422_until_bands_are_chosen(client, tmp_path):
    path = write_geotiff(tmp_path / "gray.tif", rgb_scene(40, 40)[:1])
    files = {"file": ("gray.tif", path.read_bytes())}
    response = client.post("/v1/segment", files=files)
    assert response.status_code == 422
    assert "has 1 band(s)" in response.json()["detail"]
    assert "choose them with ?bands=, e.g. ?bands=1,1,1" in response.json()["detail"]
    assert client.post("/v1/segment?bands=1,1,1", files=files).status_code == 200
    # too few, not from 1, no band 2, Arabic-Indic digits (int() reads them; a review)
    for bad in ("1,1", "0,1,1", "1,1,2", "\u0661,\u0661,\u0661"):
        assert client.post(f"/v1/segment?bands={bad}", files=files).status_code == 422, bad


def test_size_limits_are_413(pointwise, tmp_path):
    limits = ServeLimits(max_upload_bytes=5_000, max_pixels=5_000)
    small = TestClient(create_app(pointwise, limits))
    big = small.post("/v1/segment", files={"file": ("a.jpg", jpeg_bytes(200, 200))})
    assert big.status_code == 413 and "MiB" in big.json()["detail"]
    many = small.post("/v1/segment", files={"file": ("a.jpg", jpeg_bytes(80, 80))})
    assert many.status_code == 413 and "pixels" in many.json()["detail"]


def test_byte_and_pixel_limits_are_told_apart_at_their_edges(pointwise):
    """An upload of n bytes and 60 x 100 px: each limit alone refuses it one unit below
    its size and lets it through at its size; the pixel count is width times height."""
    data = jpeg_bytes(60, 100)
    n = len(data)

    def post(max_upload_bytes: int, max_pixels: int) -> httpx.Response:
        limits = ServeLimits(max_upload_bytes=max_upload_bytes, max_pixels=max_pixels)
        client = TestClient(create_app(pointwise, limits), raise_server_exceptions=False)
        return client.post("/v1/segment", files={"file": ("a.jpg", data, "image/jpeg")})

    assert n < 6_000 < 10_000  # the byte and pixel counts, neither equal to the other
    assert post(n, 6_000).status_code == 200  # at both limits: accepted
    too_big = post(n - 1, 10**9)
    assert too_big.status_code == 413
    assert "upload larger" in too_big.json()["detail"]
    assert "pixels" not in too_big.json()["detail"]
    too_many = post(10**9, 5_999)
    assert too_many.status_code == 413
    detail = too_many.json()["detail"]
    assert "6,000 pixels" in detail and "5,999" in detail and "upload larger" not in detail
    # 60 x 100 px: neither 60 x 60 (3,600) nor 100 x 100 (10,000)
    assert post(10**9, 3_600).status_code == 413
    assert post(10**9, 9_999).status_code == 200


def test_the_upload_limit_is_told_in_mib_and_checked_before_decoding(pointwise):
    limits = ServeLimits(max_upload_bytes=3 * 2**20, max_pixels=10)
    client = TestClient(create_app(pointwise, limits))
    over = client.post("/v1/segment", files={"file": ("a.jpg", b"x" * (3 * 2**20 + 1))})
    assert over.status_code == 413
    assert over.json()["detail"] == "upload larger than the limit of 3 MiB"
    half = TestClient(create_app(pointwise, ServeLimits(max_upload_bytes=2**19, max_pixels=10)))
    over = half.post("/v1/segment", files={"file": ("a.jpg", b"x" * (2**19 + 1))})
    assert over.json()["detail"] == "upload larger than the limit of 0.5 MiB"  # was '0 MiB'


def test_default_limits_are_the_documented_ones(pointwise):
    # README: --max-upload-mb (50) and --max-megapixels (40); one prediction at a time
    assert ServeLimits() == ServeLimits(50 * 2**20, 40_000_000, 1, 8)
    info = TestClient(create_app(pointwise)).get("/v1/model").json()["input"]
    assert (info["max_upload_bytes"], info["max_pixels"]) == (50 * 2**20, 40_000_000)


def test_each_output_of_segment_with_a_pointwise_engine(pointwise, tmp_path):
    """The requests _segment turns into outputs, on an engine quick enough to run them
    all: the mask's format, the JSON parts, the bands."""
    client = TestClient(create_app(pointwise))
    photo = {"file": ("p.jpg", jpeg_bytes(40, 50), "image/jpeg")}
    scene = write_geotiff(tmp_path / "g.tif", rgb_scene(40, 50))
    geotiff = {"file": ("g.tif", scene.read_bytes(), "image/tiff")}
    assert client.post("/v1/segment", files=photo).headers["content-type"] == "image/png"
    assert client.post("/v1/segment", files=geotiff).headers["content-type"] == "image/tiff"
    as_tif = client.post("/v1/segment?format=tif", files=photo)
    assert as_tif.headers["content-type"] == "image/tiff"
    as_png = client.post("/v1/segment?format=png", files=geotiff)
    assert as_png.headers["content-type"] == "image/png"
    plain = client.post("/v1/segment?format=json", files=geotiff).json()
    assert set(plain) == {"areas", "mask"} and plain["mask"]["media_type"] == "image/tiff"
    assert sum(a["pixels"] for a in plain["areas"]) == 40 * 50
    assert plain["areas"][0]["area_m2"] == pytest.approx(plain["areas"][0]["pixels"] * 0.25)
    full = client.post(
        "/v1/segment?format=json&overlay=true&polygons=true&confidence=true", files=photo
    ).json()
    assert set(full) == {"areas", "mask", "color_png", "overlay_png", "geojson", "confidence"}
    for key in ("color_png", "overlay_png"):
        assert Image.open(io.BytesIO(base64.b64decode(full[key]))).size == (50, 40)
    assert full["confidence"]["media_type"] == "image/png"
    assert full["geojson"]["features"]
    tif_json = client.post("/v1/segment?format=json&overlay=true", files=geotiff).json()
    # a GeoTIFF's colour mask as a PNG too, as the docs say (it was null: a review)
    shown = Image.open(io.BytesIO(base64.b64decode(tif_json["color_png"])))
    assert shown.format == "PNG" and shown.size == (50, 40)
    gray = write_geotiff(tmp_path / "gray.tif", rgb_scene(20, 20)[:1])
    files = {"file": ("gray.tif", gray.read_bytes())}
    assert client.post("/v1/segment", files=files).status_code == 422
    assert client.post("/v1/segment?bands=1,1,1", files=files).status_code == 200
    # the mask as its file's bytes, the confidence as a PNG, and what the page shows
    mask = client.post("/v1/segment", files=photo).content
    assert (
        base64.b64decode(
            client.post("/v1/segment?format=json", files=photo).json()["mask"]["base64"]
        )
        == mask
    )
    assert Image.open(io.BytesIO(base64.b64decode(full["confidence"]["base64"]))).size == (50, 40)
    page = client.post("/v1/segment?format=json&preview=true&tta=true", files=geotiff).json()
    assert set(page["preview"]) == {"image", "color", "confidence"}
    for png in page["preview"].values():
        shown = Image.open(io.BytesIO(base64.b64decode(png)))
        assert shown.format == "PNG" and shown.size == (50, 40)
    # named by the upload's file (a review: every zip held upload_classes.*, and two
    # unzipped into one folder overwrote each other), safe to unzip whatever its name
    for filename, stem in [
        ("scene.tif", "scene"),
        ("../../etc/my scene.v2.tif", "my_scene.v2"),
        ("C:\\maps\\.hidden.tif", "hidden"),
        ("..", "upload"),
        ("<img src=x>.tif", "img_src_x"),
        ("re\u0301sume\u0301.tif", "r\u00e9sum\u00e9"),  # decomposed, as macOS sends it
        ("\u5730" * 80 + ".tif", "\u5730" * 40),  # 120 bytes: a file name takes 255
    ]:
        named = {"file": (filename, geotiff["file"][1])}
        answer = client.post("/v1/segment?format=json&preview=true", files=named).json()
        with zipfile.ZipFile(io.BytesIO(base64.b64decode(answer["mask_zip"]))) as archive:
            names = sorted(archive.namelist())
        assert names == [
            f"{stem}_classes.qml",
            f"{stem}_classes.tif",
            f"{stem}_classes.tif.aux.xml",
        ]


def test_segment_asks_predict_for_what_the_request_names_only(pointwise, monkeypatch, tmp_path):
    asked = []
    real = app_module.predict_one

    def recording(predictor, upload, out, opts):
        asked.append(opts)
        return real(predictor, upload, out, opts)

    monkeypatch.setattr(app_module, "predict_one", recording)
    client = TestClient(create_app(pointwise))
    photo = {"file": ("p.jpg", jpeg_bytes(40, 50), "image/jpeg")}
    mask = client.post("/v1/segment", files=photo)
    assert mask.status_code == 200 and mask.headers["content-type"] == "image/png"
    assert client.post("/v1/segment?format=json&polygons=true", files=photo).status_code == 200
    assert client.post("/v1/segment?tta=true", files=photo).status_code == 200
    plain, polygons, flipped = asked
    assert plain.outputs == {"classes", "areas"} and plain.vector is None
    assert plain.tta is False and flipped.tta is True
    # read with the one driver its first bytes name; the pixel size is the model's, and
    # no hint names a CLI flag for it
    assert plain.driver == "JPEG" and plain.pixel_flag is None
    # the upload has no suffix: auto is PNG for a photo, GeoTIFF for a georeferenced image
    assert plain.class_format == "auto" and plain.progress is False  # no bars in a server log
    assert plain.max_pixels == ServeLimits().max_pixels and plain.band_flag == "?bands="
    assert polygons.outputs == {"classes", "areas"} and polygons.vector == "geojson"
    # band errors name the query parameter, not the CLI's --bands
    gray = write_geotiff(tmp_path / "gray.tif", rgb_scene(20, 20)[:1])
    files = {"file": ("gray.tif", gray.read_bytes())}
    for query, fragment in [
        ("", "choose them with ?bands=, e.g. ?bands=1,1,1"),
        ("?bands=1,1", "bands= 1,1: the model takes 3 band(s)"),
        ("?bands=0,1,1", "bands= '0,1,1': give band numbers (from 1)"),
        ("?bands=1,1,2", "bands= 1,1,2 asks for band 2"),
    ]:
        response = client.post(f"/v1/segment{query}", files=files)
        assert response.status_code == 422 and fragment in response.json()["detail"], query
        assert "--bands" not in response.json()["detail"]


def test_wrong_parameters_are_422_in_one_line(client):
    """A review: FastAPI's own checks answered a list of pydantic objects."""
    photo = {"file": ("a.jpg", jpeg_bytes())}
    for query, detail in [
        ("format=bmp", "format='bmp': input should be 'auto', 'tif', 'png' or 'json'"),
        ("tta=maybe", "tta='maybe': input should be a valid boolean, unable to interpret input"),
        ("bands=4;3", "bands='4;3': give band numbers separated by commas, e.g. 4,3,2"),
    ]:
        response = client.post(f"/v1/segment?{query}", files=photo)
        assert response.status_code == 422 and response.json() == {"detail": detail}
        assert response.headers["connection"] == "close"
    long = client.post("/v1/segment?format=" + "x" * 5000, files=photo).json()["detail"]
    assert long.startswith("format='xxx") and len(long) < 200  # the value echoed, cut
    assert client.post("/v1/segment").status_code == 422


def test_a_second_image_in_one_request_is_422(client):
    """Only the first was predicted, and the answer did not say which."""
    two = [("file", ("a.jpg", jpeg_bytes())), ("file", ("b.jpg", jpeg_bytes()))]
    response = client.post("/v1/segment", files=two)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "send one image a request: the body has a second field named file"
    )
    other = [("file", ("a.jpg", jpeg_bytes())), ("note", ("n.txt", b"x"))]
    assert client.post("/v1/segment", files=other).status_code == 200


def test_a_body_that_is_not_multipart_is_422(client):
    """A review: a boundary of 257 characters, past what the multipart parser takes, was a
    500 and a traceback in the log; one of 256 is read."""
    image = jpeg_bytes()
    for boundary, status in (("b" * 256, 200), ("b" * 257, 422)):
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"'
                "\r\n\r\n"
            ).encode()
            + image
            + f"\r\n--{boundary}--\r\n".encode()
        )
        kind = {"content-type": f"multipart/form-data; boundary={boundary}"}
        response = client.post("/v1/segment", content=body, headers=kind)
        assert response.status_code == status, response.text
    assert response.json() == {"detail": "the body is not valid multipart/form-data"}


def test_no_traceback_reaches_a_client(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(app_module, "predict_one", broken)
    response = client.post("/v1/segment", files={"file": ("a.jpg", jpeg_bytes())})
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text


@contextlib.asynccontextmanager
async def in_process(app):
    """An HTTP client of ``app`` in this process, for requests at once (asyncio.gather)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def test_a_json_answer_does_not_wait_for_predictions_asked_after_it(loaded, monkeypatch):
    """A review: the JSON answer was made in a job of its own on the prediction workers,
    behind the predictions that arrived meanwhile: with one worker, the first of two
    uploads was answered only after the second was predicted."""
    events: list[str] = []
    real_predict, real_answer = app_module.predict_one, app_module._json_answer

    def slow(loaded, upload, out, opts):
        events.append("predict")
        time.sleep(0.3)
        return real_predict(loaded, upload, out, opts)

    def answer(*args):
        events.append("answer")
        return real_answer(*args)

    monkeypatch.setattr(app_module, "predict_one", slow)
    monkeypatch.setattr(app_module, "_json_answer", answer)
    app = create_app(loaded, ServeLimits(workers=1, max_queue=2))
    data = jpeg_bytes(48, 48)

    async def two() -> list[int]:
        async with in_process(app) as http:
            first = asyncio.ensure_future(
                http.post("/v1/segment?format=json", files={"file": ("a.jpg", data)})
            )
            while not events:  # the second arrives while the first is predicted
                await asyncio.sleep(0.01)
            second = http.post("/v1/segment?format=json", files={"file": ("b.jpg", data)})
            return [r.status_code for r in await asyncio.gather(first, second)]

    assert asyncio.run(two()) == [200, 200]
    assert events == ["predict", "answer", "predict", "answer"]


def test_concurrent_requests_stay_within_the_bound(loaded, monkeypatch):
    running, peak, lock = 0, 0, threading.Lock()
    real = app_module.predict_one

    def slow(*args, **kwargs):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.3)
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(app_module, "predict_one", slow)
    app = create_app(loaded, ServeLimits(workers=1, max_queue=2))
    data = jpeg_bytes(48, 48)

    async def burst() -> list[int]:
        async with in_process(app) as http:
            calls = [http.post("/v1/segment", files={"file": ("a.jpg", data)}) for _ in range(6)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    codes = asyncio.run(burst())
    assert peak == 1  # one prediction at a time
    assert codes.count(200) == 3 and codes.count(503) == 3  # 1 running + 2 queued, rest refused


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="real dataset not found")
def test_real_aerial_image(client):
    image = REAL_DATA / "Semantic segmentation dataset" / "Tile 1" / "images" / "image_part_002.jpg"
    response = client.post(
        "/v1/segment?format=json", files={"file": (image.name, image.read_bytes())}
    )
    assert response.status_code == 200
    assert sum(a["pixels"] for a in response.json()["areas"]) == 797 * 644


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_model_reports_the_precision_it_predicts_in(tiny_model, precision):
    loaded = load_for_serving(tiny_model, "cpu", precision)
    assert isinstance(loaded.engine, Bf16Engine) == (precision == "bf16")
    client = TestClient(create_app(loaded))
    assert client.get("/v1/model").json()["precision"] == precision


def test_no_progress_bars_in_the_server_log(client, tiny_model, tmp_path, capsys):
    data = jpeg_bytes(200, 110)  # taller than the model's window: the CLI shows a row bar
    (tmp_path / "tall.jpg").write_bytes(data)
    argv = ["predict", str(tmp_path / "tall.jpg"), "--model", str(tiny_model), "--out"]
    assert main([*argv, str(tmp_path / "cli"), "--device", "cpu"]) == 0
    assert "row" in capsys.readouterr().err
    response = client.post("/v1/segment", files={"file": ("tall.jpg", data, "image/jpeg")})
    assert response.status_code == 200
    assert "row" not in capsys.readouterr().err


def test_a_model_trained_on_chosen_bands_serves_4_band_scenes(tiny_model, tmp_path):
    loaded = load_model(tiny_model)
    spec = replace(loaded.spec, bands=(3, 2, 1))
    save_model(tmp_path / "bgr.pt", loaded.net, spec, loaded.classes, loaded.meta)
    client = TestClient(create_app(load_for_serving(tmp_path / "bgr.pt")))
    assert client.get("/v1/model").json()["input"]["bands"] == "bands 3,2,1 as RGB"
    scene = np.concatenate([rgb_scene(40, 50), rgb_scene(40, 50)[:1]])  # 4 bands
    path = write_geotiff(tmp_path / "bgrn.tif", scene)
    response = client.post("/v1/segment", files={"file": ("bgrn.tif", path.read_bytes())})
    assert response.status_code == 200


def test_a_four_band_model_takes_four_bands(tiny_model, tmp_path):
    from aerialseg.models.network import build_network

    loaded = load_model(tiny_model)
    spec = replace(loaded.spec, bands=(3, 2, 1, 4))
    net = build_network(
        "seed-unet", loaded.classes.num_classes, pretrained=False, base_width=4, in_channels=4
    )
    save_model(tmp_path / "bgrn.pt", net, spec, loaded.classes, loaded.meta)
    client = TestClient(create_app(load_for_serving(tmp_path / "bgrn.pt")))
    assert client.get("/v1/model").json()["input"]["bands"] == "bands 3,2,1,4, in this order"
    scene = np.concatenate([rgb_scene(40, 50), rgb_scene(40, 50)[:1]])
    files = {"file": ("bgrn.tif", write_geotiff(tmp_path / "bgrn.tif", scene).read_bytes())}
    assert client.post("/v1/segment", files=files).status_code == 200
    assert client.post("/v1/segment?bands=4,3,2,1", files=files).status_code == 200
    response = client.post("/v1/segment?bands=3,2,1", files=files)
    assert response.status_code == 422
    assert "bands= 3,2,1: the model takes 4 band(s)" in response.json()["detail"]
    rgb = {"file": ("x.jpg", jpeg_bytes())}
    response = client.post("/v1/segment", files=rgb)
    assert response.status_code == 422 and "asks for band 4" in response.json()["detail"]


def test_a_model_with_a_pixel_size_serves_on_that_grid(tiny_model, tmp_path):
    loaded = load_model(tiny_model)
    spec = replace(loaded.spec, pixel_size=1.0)
    save_model(tmp_path / "1m.pt", loaded.net, spec, loaded.classes, loaded.meta)
    client = TestClient(create_app(load_for_serving(tmp_path / "1m.pt")))
    assert client.get("/v1/model").json()["input"]["pixel_size"] == 1.0
    scene = write_geotiff(tmp_path / "scene.tif", rgb_scene(40, 60))  # 0.5 m pixels
    files = {"file": ("scene.tif", scene.read_bytes())}
    response = client.post("/v1/segment?format=tif", files=files)
    assert response.status_code == 200
    with rasterio.MemoryFile(response.content) as memory, memory.open() as mask:
        assert (mask.width, mask.height, mask.transform.a) == (30, 20, 1.0)
    # the model's pixel size is not the client's to set: the hints speak of the image,
    # not of predict's --pixel-size, which the API does not have
    left, top = TRANSFORM.c, TRANSFORM.f
    coarse = Affine(20.0, 0, left, 0, -20.0, top)  # 20 m, not 1 m: over 8 times coarser
    for image, hint in (
        (rgb_scene(40, 60), "the limit is 8 times finer per side: give an image of pixels"
         " of 8 or finer"),
        (rgb_scene(1, 1)[:, :1, :1], "less than one pixel of 1 on a side: give a larger image"),
    ):  # fmt: skip
        transform = coarse if image.shape[1] > 1 else Affine(0.5, 0, left, 0, -0.5, top)
        upload = write_geotiff(tmp_path / "odd.tif", image, transform=transform)
        response = client.post("/v1/segment", files={"file": ("odd.tif", upload.read_bytes())})
        assert response.status_code in (413, 422), response.text
        detail = response.json()["detail"]
        assert detail.endswith(hint) and "--pixel-size" not in detail, detail


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height pixels, followed by data that is no
    image at all: only a reader that decodes pixels notices."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"\x00" * 1_000_000)
        + chunk(b"IEND", b"")
    )


def test_pixel_limit_is_read_from_the_header(client):
    """A 1 MB PNG that declares 400 MP is refused for its size before any decoding: a
    decode would have found its data damaged (422) instead."""
    response = client.post("/v1/segment", files={"file": ("a.png", png_declaring(20_000, 20_000))})
    assert response.status_code == 413, response.text
    assert "400,000,000 pixels" in response.json()["detail"]
    small = client.post("/v1/segment", files={"file": ("a.png", png_declaring(300, 200))})
    assert small.status_code == 422  # within the limit it is decoded, and found damaged


def test_a_token_guards_the_api_but_not_health_or_page(loaded):
    client = TestClient(create_app(loaded, token="s3cret-token"), raise_server_exceptions=False)
    files = {"file": ("a.jpg", jpeg_bytes(48, 48))}
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/v1/model").status_code == 401
    wrong = client.post(
        "/v1/segment", files=files, headers={"Authorization": "Bearer s3cret-tokeX"}
    )
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert client.post("/v1/segment", files=files).status_code == 401
    good = {"Authorization": "Bearer s3cret-token"}
    assert client.get("/v1/model", headers=good).status_code == 200
    assert client.post("/v1/segment", files=files, headers=good).status_code == 200


def test_serve_warns_when_open_beyond_this_machine(tiny_model, monkeypatch, capsys):
    import uvicorn

    started: list[dict] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda server: started.append(server.config))
    monkeypatch.delenv("AERIALSEG_TOKEN", raising=False)
    base = ["serve", "--model", str(tiny_model), "--device", "cpu"]
    assert main([*base, "--host", "0.0.0.0"]) == 0
    assert "without a token" in capsys.readouterr().err
    for quiet in (
        ["--host", "0.0.0.0", "--token", "t"],
        ["--host", "127.0.0.1"],
        ["--host", "::1"],
    ):
        assert main([*base, *quiet]) == 0
        assert "without a token" not in capsys.readouterr().err
    monkeypatch.setenv("AERIALSEG_TOKEN", "from-env")
    assert main([*base, "--host", "0.0.0.0"]) == 0
    assert "without a token" not in capsys.readouterr().err
    assert len(started) == 5 and started[0].host == "0.0.0.0"


def test_a_new_server_sweeps_what_dead_servers_left(loaded, tmp_path, monkeypatch):
    import subprocess
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.run(["true"], check=True)
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    assert ended.returncode == 0
    from aerialseg.files import owner

    dead = tmp_path / f"aerialseg-serve-{owner(dead_pid.pid)}-abcd1234"
    alive = tmp_path / f"aerialseg-serve-{owner()}-efgh5678"
    other = tmp_path / "aerialseg-something-else"
    for folder in (dead, alive, other):
        (folder / "out").mkdir(parents=True)
        (folder / "upload").write_bytes(b"x" * 100)
    create_app(loaded)
    assert not dead.exists() and alive.is_dir() and other.is_dir()


def test_a_full_disk_is_507_not_500(client, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(app_module, "receive_upload", full)
    response = client.post("/v1/segment", files={"file": ("a.jpg", jpeg_bytes())})
    assert response.status_code == 507 and "disk is full" in response.json()["detail"]


def test_polygons_of_a_geotiff_follow_rfc_7946(client, tmp_path):
    """The server's GeoJSON is predict's: WGS 84 longitude/latitude, no crs member, and
    class ids that are the class raster's values."""
    path = write_geotiff(tmp_path / "g.tif", rgb_scene(60, 80))
    response = client.post(
        "/v1/segment?format=json&polygons=true",
        files={"file": ("g.tif", path.read_bytes(), "image/tiff")},
    )
    geojson = response.json()["geojson"]
    assert "crs" not in geojson and geojson["features"]
    with rasterio.open(path) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    ids = {c["id"] for c in client.get("/v1/model").json()["classes"]}
    for feature in geojson["features"]:
        ring = np.array(feature["geometry"]["coordinates"][0])
        assert (west - 1e-6 <= ring[:, 0]).all() and (ring[:, 0] <= east + 1e-6).all()
        assert (south - 1e-6 <= ring[:, 1]).all() and (ring[:, 1] <= north + 1e-6).all()
        assert feature["properties"]["class_id"] in ids


def test_a_bad_vector_parameter_is_422_not_500(client, tmp_path):
    """min_area=nan was a 500 (math.ceil of NaN); simplify=-1 and min_area=-1 a 200."""
    photo = {"file": ("a.jpg", jpeg_bytes(64, 64), "image/jpeg")}
    for query in ("min_area=nan", "min_area=inf", "min_area=-1", "simplify=-1", "simplify=nan"):
        response = client.post(f"/v1/segment?format=json&polygons=true&{query}", files=photo)
        assert response.status_code == 422, query
        assert "give a size of 0 or more" in response.json()["detail"], query
    ok = client.post("/v1/segment?format=json&polygons=true&min_area=0", files=photo)
    assert ok.status_code == 200


def test_simplify_and_min_area_without_polygons_are_422(client):
    """A review: they were ignored without a word, where predict_files refuses them (one
    rule, PredictOptions', in the query's words)."""
    photo = {"file": ("a.jpg", jpeg_bytes(64, 64), "image/jpeg")}
    for query, said in (
        ("format=json&min_area=0", "min_area: shapes the polygons; give polygons=true too"),
        (
            "format=json&simplify=1&min_area=5",
            "simplify and min_area: shape the polygons; give polygons=true too",
        ),
        ("simplify=5", "simplify: shapes the polygons; give polygons=true and format=json too"),
    ):
        response = client.post(f"/v1/segment?{query}", files=photo)
        assert response.status_code == 422, query
        assert response.json()["detail"] == said


def test_the_json_answer_is_encoded_off_the_event_loop(client, monkeypatch):
    """A review: a 200 MB answer was encoded on the event loop, where it held every other
    connection, /healthz's too, for up to 23 s. It is encoded in the prediction's worker,
    as JSONResponse would."""
    import threading

    from aerialseg.api import app as app_module

    threads = []
    encode = app_module.json.dumps

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return encode(*args, **kwargs)

    monkeypatch.setattr(app_module.json, "dumps", recorded)
    photo = {"file": ("a.jpg", jpeg_bytes(64, 64), "image/jpeg")}
    response = client.post("/v1/segment?format=json&overlay=true", files=photo)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"areas", "mask", "color_png", "overlay_png"}
    assert threads and all(name.startswith("predict") for name in threads)


def test_json_parts_asked_of_an_image_answer_are_422(client):
    """A review: overlay, confidence, polygons and preview were ignored without a word
    unless format=json."""
    photo = {"file": ("a.jpg", jpeg_bytes(64, 64), "image/jpeg")}
    response = client.post("/v1/segment?format=png&polygons=true&overlay=true", files=photo)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "overlay and polygons: part of the JSON answer; add format=json"
    )
    assert client.post("/v1/segment?preview=true", files=photo).status_code == 422
    assert client.post("/v1/segment?format=json&preview=true", files=photo).status_code == 200


def test_validation_errors_read_as_one_line_whatever_they_hold():
    from fastapi.exceptions import RequestValidationError

    from aerialseg.api.app import _validation_text

    errors = [
        {"loc": ("query", "format"), "msg": "Input should be 'png'", "input": "x" * 100},
        {"type": "string_pattern_mismatch", "loc": ("query", "bands"), "msg": "", "input": "4;3"},
        {},  # no place, message or value
    ]
    assert _validation_text(RequestValidationError(errors)) == (
        "format" + f"={'x' * 100!r}"[:80] + ": input should be 'png'; bands='4;3': give band"
        " numbers separated by commas, e.g. 4,3,2; request: invalid"
    )
