"""Hostile uploads: the server reads what was uploaded as JPEG, PNG or TIFF, and nothing
else; it never reads another file or contacts an address, whatever the upload names."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from PIL import Image

from aerialseg.api.app import ServeLimits, create_app
from aerialseg.api.uploads import NETWORK_OFF
from aerialseg.data.raster import InputError, open_input
from tests.helpers.geotiff import write_geotiff
from tests.helpers.http_files import serve_folder
from tests.helpers.images import rgb_scene


@pytest.fixture
def served(tmp_path):
    """A loopback web server of a folder holding a real GeoTIFF: (base URL, request log)."""
    folder = tmp_path / "web"
    folder.mkdir()
    write_geotiff(folder / "x.tif", rgb_scene(64, 64))
    with serve_folder(folder) as (url, log):
        yield url, log


@pytest.fixture
def client(pointwise):
    limits = ServeLimits(max_upload_bytes=2_000_000, max_pixels=4_200_000)
    return TestClient(create_app(pointwise, limits), raise_server_exceptions=False)


def vrt(source: str, band: str = "SimpleSource") -> bytes:
    if band == "raw":  # the bytes of any file as a band
        return (
            '<VRTDataset rasterXSize="16" rasterYSize="16"><VRTRasterBand dataType="Byte"'
            ' band="1" subClass="VRTRawRasterBand"><SourceFilename relativetoVRT="0">'
            f"{source}</SourceFilename><ImageOffset>0</ImageOffset><PixelOffset>1"
            "</PixelOffset><LineOffset>16</LineOffset></VRTRasterBand></VRTDataset>"
        ).encode()
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource><SourceFilename'
        f' relativeToVRT="0">{source}</SourceFilename><SourceBand>{b}</SourceBand>'
        "</SimpleSource></VRTRasterBand>"
        for b in (1, 2, 3)
    )
    return f'<VRTDataset rasterXSize="64" rasterYSize="64">{bands}</VRTDataset>'.encode()


def wms(url: str) -> bytes:
    return (
        f"<GDAL_WMS><Service name='WMS'><ServerUrl>{url}/wms?</ServerUrl><Layers>x</Layers>"
        "</Service><DataWindow><UpperLeftX>0</UpperLeftX><UpperLeftY>64</UpperLeftY>"
        "<LowerRightX>64</LowerRightX><LowerRightY>0</LowerRightY><SizeX>64</SizeX>"
        "<SizeY>64</SizeY></DataWindow><BandsCount>3</BandsCount></GDAL_WMS>"
    ).encode()


def hostile(url: str, local: Path) -> dict[str, bytes]:
    """Files GDAL reads as rasters that name other files, URLs, or are text."""
    archive = local.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w") as z:
        z.write(local, "inner.tif")
    return {
        "VRT of /etc/passwd (raw band)": vrt("/etc/passwd", "raw"),
        "VRT of a server-side GeoTIFF": vrt(str(local)),
        "VRT of a URL": vrt(f"{url}/x.tif"),
        "VRT of /vsicurl/": vrt(f"/vsicurl/{url}/x.tif"),
        "VRT of /vsizip/": vrt(f"/vsizip/{archive}/inner.tif"),
        "GDAL_WMS": wms(url),
        "AAIGrid text": b"ncols 3\nnrows 3\nxllcorner 0\nyllcorner 0\ncellsize 1\n"
        + b"1 2 3\n4 5 6\n7 8 9\n",
        "XYZ text": b"0 0 1\n1 0 2\n2 0 3\n0 1 4\n1 1 5\n2 1 6\n",
        "ENVI header": b"ENVI\nsamples = 4\nlines = 4\nbands = 3\ndata type = 1\n"
        + b"interleave = bsq\nheader offset = 0\n",
        "a URL as the whole file": f"/vsicurl/{url}/x.tif".encode(),
        "SVG": b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>',
    }


def test_uploads_that_name_other_files_or_urls_are_415_and_reach_nothing(client, served, tmp_path):
    url, log = served
    local = write_geotiff(tmp_path / "server-side.tif", rgb_scene(64, 64))
    for name, payload in hostile(url, local).items():
        response = client.post("/v1/segment", files={"file": ("x.tif", payload)})
        assert response.status_code == 415, (name, response.status_code, response.text)
        detail = response.json()["detail"]
        assert detail == "upload: not an image aerialseg can read (JPEG, PNG, TIFF, GeoTIFF)"
    assert log == []  # the loopback server was never asked for anything


def test_errors_name_no_server_path(client, tmp_path):
    """A damaged TIFF and a band error: the messages hold no folder of the server's."""
    data = write_geotiff(tmp_path / "g.tif", rgb_scene(64, 64)).read_bytes()
    for payload in (data[:300], data[:8] + b"\x00" * 200, data):
        response = client.post("/v1/segment?bands=1,1,9", files={"file": ("g.tif", payload)})
        assert response.status_code in (415, 422), response.text
        detail = response.json()["detail"]
        for path in (str(Path.home()), "/tmp", str(tmp_path), "aerialseg-serve"):
            assert path not in detail, detail


@pytest.mark.parametrize("kind", ["tiff", "bigtiff", "cog", "png", "jpeg"])
def test_each_allowed_kind_is_read(client, tmp_path, kind):
    data = rgb_scene(64, 80)
    path = tmp_path / f"x.{kind}"
    if kind in ("png", "jpeg"):
        Image.fromarray(data.transpose(1, 2, 0)).save(path, format=kind.upper())
    else:
        profile = {"driver": "GTiff", "width": 80, "height": 64, "count": 3, "dtype": "uint8"}
        if kind == "bigtiff":
            profile["BIGTIFF"] = "YES"
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
        if kind == "cog":
            cog = tmp_path / "cog.tif"
            rasterio.shutil.copy(path, cog, driver="COG")
            path = cog
    head = path.read_bytes()[:4]
    assert kind != "bigtiff" or head == b"II+\x00"
    response = client.post("/v1/segment?format=json", files={"file": ("x", path.read_bytes())})
    assert response.status_code == 200, response.text
    assert sum(a["pixels"] for a in response.json()["areas"]) == 64 * 80


def tiff_declaring(path: Path, width: int, height: int) -> bytes:
    """A small tiled TIFF of ``width`` x ``height`` with no tile written (sparse)."""
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 3}
    profile.update(dtype="uint8", tiled=True, compress="deflate", SPARSE_OK="TRUE")
    with rasterio.open(path, "w", **profile):
        pass
    return path.read_bytes()


def test_a_very_wide_image_is_413_from_its_header(pointwise, tmp_path):
    """2,000,000 x 20 px (40 MP: within the default pixel limit) fits in no PNG mask; it
    used to end in a 500 after 4 GB of memory."""
    wide = tiff_declaring(tmp_path / "wide.tif", 2_000_000, 20)
    assert len(wide) < 2_000_000
    client = TestClient(create_app(pointwise, ServeLimits(max_upload_bytes=2_000_000)))
    response = client.post("/v1/segment", files={"file": ("w.tif", wide)})
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == (
        "upload: the image is 2,000,000 x 20 px; the limit is 20,000 px a side"
    )


def test_an_elongated_image_is_413_and_the_limits_are_the_servers(pointwise, tmp_path):
    strip = tiff_declaring(tmp_path / "strip.tif", 5_000, 20)  # 1:250, 100,000 pixels
    client = TestClient(create_app(pointwise, ServeLimits(max_upload_bytes=2_000_000)))
    response = client.post("/v1/segment", files={"file": ("s.tif", strip)})
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "upload: the image is 5,000 x 20 px, its long side 250 times its short one; the limit is 50"
    )
    lenient = ServeLimits(max_upload_bytes=2_000_000, max_side=4_000, max_aspect=300)
    client = TestClient(create_app(pointwise, lenient))
    response = client.post("/v1/segment", files={"file": ("s.tif", strip)})
    assert response.status_code == 413 and "limit is 4,000 px a side" in response.text
    info = client.get("/v1/model").json()["input"]
    assert (info["max_side"], info["max_aspect"]) == (4_000, 300)


def test_gdal_network_access_is_off_while_the_server_reads(served, tmp_path):
    """The second wall: even a reader that took any driver opens no URL under the server's
    GDAL settings (the loopback server is asked nothing), where it would without them."""
    url, log = served
    path = tmp_path / "remote.vrt"
    path.write_bytes(vrt(f"/vsicurl/{url}/x.tif"))
    with rasterio.Env(**NETWORK_OFF), pytest.raises(InputError):
        open_input(path, driver="VRT")
    assert log == []
    raster = open_input(path, driver="VRT")  # without them, the same file reads the URL
    assert raster.width == 64 and log
    raster.close()


def test_open_input_reads_with_the_one_driver_it_is_given(tmp_path):
    tif = write_geotiff(tmp_path / "g.tif", rgb_scene(32, 32))
    open_input(tif, driver="GTiff").close()
    with pytest.raises(InputError, match="not an image"):
        open_input(tif, driver="PNG")
    (tmp_path / "v.vrt").write_bytes(vrt(str(tif)))
    open_input(tmp_path / "v.vrt", driver="VRT").close()  # the VRT opens where it is asked
    for other in ("GTiff", None):  # None: JPEG, PNG or TIFF, the formats aerialseg reads
        with pytest.raises(InputError, match="not an image"):
            open_input(tmp_path / "v.vrt", driver=other)


def test_an_upload_is_written_once_straight_to_its_folder(pointwise, tmp_path, monkeypatch):
    """A 1.5 MB upload (over Starlette's 1 MiB spool) lies on disk once, as the upload's
    own file, while it is predicted: no spooled copy beside it, open or deleted."""
    import os
    import tempfile

    from aerialseg.api import app as app_module

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    data = buf.getvalue()
    assert len(data) > 1.4e6
    seen: list[tuple[list[int], list[str]]] = []
    real = app_module.predict_one

    def looking(*args, **kwargs):
        sizes = [p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()]
        held = [os.readlink(fd) for fd in Path("/proc/self/fd").iterdir() if fd.is_symlink()]
        seen.append((sizes, [t for t in held if t.startswith(str(tmp_path))]))
        return real(*args, **kwargs)

    monkeypatch.setattr(app_module, "predict_one", looking)
    client = TestClient(create_app(pointwise, ServeLimits(max_upload_bytes=2_000_000)))
    response = client.post("/v1/segment", files={"file": ("n.png", data)})
    assert response.status_code == 200, response.text
    [(sizes, open_there)] = seen
    assert sizes == [len(data)]
    assert all(not t.endswith("(deleted)") for t in open_there), open_there


@pytest.mark.parametrize(
    "text, named",
    [
        ("WGS 84 / UTM zone 40N|", None),  # a name with " / " names no file
        ("Datum = WGS 84 using nadgrids=@null|", None),  # PROJ's own grid, by name
        ("using nadgrids=@null|ESRI PE String = PROJCS[x]", None),
        ("+proj=merc +nadgrids = /etc/shadow", "/etc/shadow"),
        ('EXTENSION["PROJ4_GRIDS",""/etc/shadow""]', "/etc/shadow"),
        ('EXTENSION["PROJ4_GRIDS","@|,/etc/x"]', "/etc/x"),
        ("+proj=tinshift +file=..\\x.json", "..\\x.json"),
        ("+proj=defmodel +model=./m.json", "./m.json"),
        ("PARAMETERFILE" + "a" * 60000, None),  # no folder, however long
        # a review: PROJ reads ";" as a space and drops " +" and spaces before "="
        ("+proj=longlat +nadgrids;=/t/g.gsb +no_defs", "/t/g.gsb"),
        ("+proj=longlat +nadgrids +=/t/g.gsb", "/t/g.gsb"),
        ("+init;=/t/x.init:foo", "/t/x.init:foo"),
        # an ESRI PE string goes to PROJ whole: a folder anywhere in it is refused
        ('ESRI PE String = GEOGCS["x",EXTENSION["PROJ4","+nadgrids\t;=/t/g"]]', "/t/g"),
        ('ESRI PE String = GEOGCS["x",EXTENSION["PROJ4","+proj=longlat /t/g"]]', "/t/g"),
        ('ESRI PE String = PROJCS["WGS_1984_UTM_Zone_40N",UNIT["Meter",1.0]]', None),
    ],
)
def test_the_file_a_key_names_is_found_in_any_spelling(text, named):
    from aerialseg.api.geokeys import named_file

    assert named_file(text) == named
