"""Rasters read over HTTP: for predict and for training data, never folded into a path."""

import contextlib

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

import aerialseg
from aerialseg.cli import main
from aerialseg.data.catalog import LabelSpec, open_catalog
from aerialseg.data.classes import ClassTable
from aerialseg.data.raster import UnreadableInputError, open_input
from aerialseg.data.scenes import Reading
from aerialseg.errors import DatasetError
from tests.helpers.geodata import (
    POLYGON_CLASSES,
    class_boxes,
    class_ids_of,
    scene_transform,
    write_polygons,
    write_scene,
)
from tests.helpers.http_files import free_port, serve_folder

H, W = 512, 640


@pytest.fixture(autouse=True)
def gdal_http(monkeypatch):
    # no retries: a test fails fast (aerialseg opens URLs without listing their folder;
    # GDAL_DISABLE_READDIR_ON_OPEN set here would outlive the test in GDAL's own settings)
    monkeypatch.delenv("GDAL_DISABLE_READDIR_ON_OPEN", raising=False)
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "10")


@pytest.fixture
def served(tmp_path):
    boxes = class_boxes(H, W, seed=2, count=50)
    write_scene(
        tmp_path / "scene.tif", class_ids_of(boxes, H, W, scene_transform()), scene_transform()
    )
    write_polygons(tmp_path / "labels.gpkg", boxes)
    with serve_folder(tmp_path) as (base, log):
        yield tmp_path, base, log


def test_a_remote_cog_reads_as_the_local_file_by_ranges(served):
    folder, base, log = served
    remote, local = (
        open_input(f"{base}/scene.tif", whole_read_pixels=0),
        open_input(folder / "scene.tif", whole_read_pixels=0),
    )
    assert isinstance(remote.path, str) and remote.path.startswith("http://")  # kept a URL
    log.clear()
    for window in (Window(0, 0, 64, 64), Window(300, 200, 100, 70)):
        a, b = remote.read(window), local.read(window)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert log and all(
        method == "GET" and rng and rng.startswith("bytes=") for method, _, rng in log
    )
    size = (folder / "scene.tif").stat().st_size
    fetched = 0
    for _, _, rng in log:
        start, end = rng.removeprefix("bytes=").split("-")
        fetched += int(end) - int(start) + 1
    assert fetched < size / 2  # two windows, not the whole file
    remote.close()
    local.close()


def test_training_scenes_and_predict_read_urls(served, tiny_model, capsys):
    folder, base, _ = served
    table = ClassTable.from_dict(POLYGON_CLASSES)
    spec = LabelSpec(str(folder / "labels.gpkg"), "class")
    remote = open_catalog(f"{base}/scene.tif", table, spec)
    local = open_catalog(folder / "scene.tif", table, spec)
    assert list(remote.scenes) == [f"{base}/scene.tif"]
    (r,) = remote.read([remote.entries[0].id], Reading(cache_megabytes=0))
    (lo,) = local.read([local.entries[0].id], Reading(cache_megabytes=0))
    window = Window(100, 50, 128, 96)
    a, b = r.read(window), lo.read(window)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    out_remote, out_local = folder / "pred-remote", folder / "pred-local"
    assert (
        main(["predict", f"{base}/scene.tif", "--model", str(tiny_model), "--out", str(out_remote)])
        == 0
    )
    assert (
        main(
            [
                "predict",
                str(folder / "scene.tif"),
                "--model",
                str(tiny_model),
                "--out",
                str(out_local),
            ]
        )
        == 0
    )
    with (
        rasterio.open(out_remote / "scene_classes.tif") as x,
        rasterio.open(out_local / "scene_classes.tif") as y,
    ):
        assert np.array_equal(x.read(), y.read()) and x.crs == y.crs
        # and Model.predict, which read 'http:/127.0.0.1/...' (a review)
        model = aerialseg.load_model(tiny_model, device="cpu")
        assert np.array_equal(model.predict(f"{base}/scene.tif").class_ids, y.read(1))
    capsys.readouterr()


def test_urls_that_differ_in_their_query_alone_write_outputs_of_their_own(served, tiny_model):
    """A review: three URLs of one path (presigned links differ in their query) printed
    three outputs, all one file set, each written over the last; a local file named as
    a URL's fallback name was written over too."""
    from aerialseg.inference.run import named_inputs

    folder, base, _ = served
    (folder / "local").mkdir()
    port = base.rsplit(":", 1)[1]
    clash = folder / "local" / f"127.0.0.1_{port}__scene.tif"
    clash.write_bytes((folder / "scene.tif").read_bytes())
    urls = [f"{base}/scene.tif?x=1", f"{base}/scene.tif?x=2", f"{base}/scene.tif#f"]
    inputs, names = named_inputs([str(clash), *urls])
    assert len(set(names.values())) == 4
    out = folder / "out"
    assert main(["predict", str(clash), *urls, "--model", str(tiny_model), "--out", str(out)]) == 0
    assert len(list(out.glob("*_classes.tif"))) == 4
    # a URL's user and password stay out of its outputs' names
    named = named_inputs(["http://u:secret@h:8080/a/x.tif", "http://h/b/x.tif"])[1]
    assert sorted(named.values()) == ["h_8080__a__x", "h__b__x"]


def test_a_url_that_does_not_answer_is_one_line_and_exit_2(tmp_path, capsys):
    dead = f"http://127.0.0.1:{free_port()}/scene.tif"  # nothing listens there
    assert main(["predict", dead, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert dead in err and "\n" not in err
    assert not (tmp_path / "out").exists()
    table = ClassTable.from_dict(POLYGON_CLASSES)
    labels = write_polygons(tmp_path / "l.gpkg", class_boxes(10, 10))
    # the server's fault, not the file's (a review: "it is damaged, or not a GeoTIFF")
    with pytest.raises(DatasetError, match="scene.tif: cannot read it from its server .*URL"):
        open_catalog(dead, table, LabelSpec(str(labels), "class"))


def test_a_server_that_takes_the_connection_and_never_answers_times_out(
    tmp_path, capsys, monkeypatch
):
    """GDAL has no HTTP timeout of its own: such a server kept predict waiting for ever.
    aerialseg sets one (GDAL_HTTP_TIMEOUT, kept where the user sets it: 2 s here), and the
    reason is GDAL's, not 'not an image'."""
    import os
    import socket
    import time

    assert os.environ["GDAL_HTTP_CONNECTTIMEOUT"] and os.environ["GDAL_HTTP_TIMEOUT"]
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "2")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel takes connections; nothing ever answers them
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/scene.tif"
        started = time.monotonic()
        assert main(["predict", url, "--out", str(tmp_path / "out")]) == 2
        assert time.monotonic() - started < 30
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"aerialseg: error: {url}: cannot read it (") and "\n" not in err
    assert "timed out" in err


def test_a_server_that_stalls_after_a_few_bytes_says_it_may_have_stopped(monkeypatch):
    """A review: a server that sent a header and 4 bytes, then nothing, gave GDAL's "Cannot
    read TIFF header" alone after the timeout; the reason now says the server stalled."""
    import socket
    import threading

    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "2")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        held = []

        def answer_a_little() -> None:
            with contextlib.suppress(OSError):
                while True:
                    conn, _ = server.accept()
                    held.append(conn)
                    conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n"
                        b"Accept-Ranges: bytes\r\n\r\nII*\x00"
                    )

        threading.Thread(target=answer_a_little, daemon=True).start()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/scene.tif"
        with pytest.raises(UnreadableInputError) as err:
            open_input(url)
        for conn in held:
            conn.close()
    assert str(err.value).startswith(f"{url}: cannot read it (")
    assert str(err.value).endswith(
        "; the read took 2 s, past GDAL_HTTP_TIMEOUT's 2 s for a request: the server may have"
        " stopped answering)"
    )


def test_a_missing_url_says_so(served, tmp_path, capsys):
    """A 404 read as 'not an image aerialseg can read': the user would replace a file that
    is fine, or look for one that is not there in the wrong place."""
    _, base, _ = served
    assert main(["predict", f"{base}/nothing.tif", "--out", str(tmp_path / "out")]) == 2
    assert "(HTTP response code: 404)" in capsys.readouterr().err
    table = ClassTable.from_dict(POLYGON_CLASSES)  # a dataset's scene alike (a review)
    labels = write_polygons(tmp_path / "l.gpkg", class_boxes(10, 10))
    with pytest.raises(DatasetError, match=r"cannot read it from its server \(HTTP response"):
        open_catalog(f"{base}/nothing.tif", table, LabelSpec(str(labels), "class"))
    # a file the server sends whole but that is no image is the file's fault, not the server's
    folder, _, _ = served
    (folder / "page.tif").write_text("<html>not an image</html>")
    with pytest.raises(DatasetError, match="page.tif: cannot read the file .* damaged"):
        open_catalog(f"{base}/page.tif", table, LabelSpec(str(labels), "class"))


def test_urls_are_opened_without_listing_and_local_side_files_still_count(served, tmp_path):
    """GDAL would ask this server for a folder listing on every open and wait; aerialseg
    turns the listing off for that open only, so a local PNG's .aux.xml (its
    georeference) is still found afterwards."""
    import os

    import rasterio
    from rasterio.transform import from_origin

    folder, base, log = served
    assert "GDAL_DISABLE_READDIR_ON_OPEN" not in os.environ
    raster = open_input(f"{base}/scene.tif", whole_read_pixels=0)
    raster.close()
    assert log and not any(path.endswith("/") for _, path, _ in log)  # no listing asked
    png = tmp_path / "local.png"
    profile = dict(driver="PNG", width=4, height=4, count=1, dtype="uint8", crs="EPSG:32640",
                   transform=from_origin(0, 4, 1, 1))  # fmt: skip
    with rasterio.open(png, "w", **profile) as dst:
        dst.write(np.zeros((1, 4, 4), np.uint8))
    assert open_input(png, (1, 1, 1)).dataset.crs == "EPSG:32640"
    assert "GDAL_DISABLE_READDIR_ON_OPEN" not in os.environ


def test_suggest_reads_a_url_as_predict_does(served):
    """A review: suggest folded a URL into a local path ('http:/127.0.0.1:.../scene.tif:
    no such file'), where predict and train read it."""
    folder, base, _ = served
    found = aerialseg.suggest(f"{base}/scene.tif", folder / "tasks.gpkg", count=2, block_size=128)
    assert [task["scene"] for task in found.tasks] == ["scene.tif", "scene.tif"]
    assert found.files["tasks"].is_file()
