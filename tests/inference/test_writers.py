"""writers: Cloud Optimized GeoTIFF outputs with class-true overviews; nothing left on failure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.data.raster import open_input
from aerialseg.inference.predict import ChunkResult
from aerialseg.inference.writers import RasterOutputs
from tests.conftest import TRANSFORM, UTM40N, rgb_scene, write_geotiff

SIZE = 600  # over two 256 px blocks: GDAL gives the COG overviews


def _write(tmp_path, ids: np.ndarray, percent=None, fmt="tif", **outputs) -> RasterOutputs:
    """RasterOutputs of a SIZE px georeferenced scene, fed ``ids`` (and confidences
    ``percent``) in two bands of rows."""
    scene = write_geotiff(tmp_path / "scene.tif", rgb_scene(SIZE, SIZE))
    raster = open_input(scene)
    (tmp_path / "out").mkdir()
    outs = RasterOutputs(raster, DUBAI_CLASSES, tmp_path / "out" / "scene", fmt=fmt, **outputs)
    image = raster.dataset.read().astype(np.float32)
    for top in (0, SIZE // 2):
        rows = slice(top, top + SIZE // 2)
        valid = np.ones_like(ids[rows], dtype=bool)
        confidence = None if percent is None else percent[rows]
        window = Window(0, top, SIZE, SIZE // 2)
        outs.write(ChunkResult(window, ids[rows], image[:, rows], valid, confidence))
    raster.close()
    return outs


def test_class_raster_is_a_cog_whose_overviews_take_the_majority_class(tmp_path):
    # Every 2x2 block holds one Building (0) pixel, at its top left, and three Water (4)
    # ones: the majority is 4, where an average of ids gives 3 and nearest-neighbour 0.
    ids = np.full((SIZE, SIZE), 4, dtype=np.uint8)
    ids[::2, ::2] = 0
    outs = _write(tmp_path, ids, color=True, overlay=False)
    written = outs.finish()
    with rasterio.open(written["classes"]) as dst:
        assert dst.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert dst.overviews(1)[0] == 2 and dst.compression is not None
        assert dst.crs is not None and dst.colormap(1)[4][:3] == (0x50, 0xE3, 0xC2)
        assert np.array_equal(dst.read(1), ids)
    with rasterio.open(written["classes"], overview_level=0) as half:
        assert (half.read(1) == 4).all()
    with rasterio.open(written["color"], overview_level=0) as half:
        colours = {tuple(c) for c in half.read().reshape(4, -1).T}
    assert colours <= {(*c, 255) for c in DUBAI_CLASSES.display_palette()}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "scene_classes.qml",
        "scene_classes.tif",
        "scene_classes.tif.aux.xml",  # the class names, for GDAL
        "scene_color.tif",
    ]


def test_a_failed_copy_leaves_no_file(tmp_path, monkeypatch):
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    outs = _write(tmp_path, ids, color=True, overlay=True)

    def disk_full(src, dst, **options):
        Path(dst).write_bytes(b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr(rasterio.shutil, "copy", disk_full)
    with pytest.raises(OSError, match="No space"):
        outs.finish()
    assert list((tmp_path / "out").iterdir()) == []


def test_confidence_overviews_average_the_percentages(tmp_path):
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    confidence = np.full((SIZE, SIZE), 40, dtype=np.uint8)
    confidence[:, ::2] = 60
    outs = _write(tmp_path, ids, confidence, color=False, overlay=False, confidence=True)
    written = outs.finish()
    with rasterio.open(written["confidence"]) as dst:
        assert dst.nodata == 255 and np.array_equal(dst.read(1), confidence)
    with rasterio.open(written["confidence"], overview_level=0) as half:
        assert (half.read(1) == 50).all()


def test_pngs_of_a_georeferenced_scene_keep_its_georeference(tmp_path):
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    ids[:, SIZE // 2 :] = 3
    written = _write(tmp_path, ids, fmt="png", color=True, overlay=True).finish()
    assert written["overlay"].suffix == ".png" and written["classes"].suffix == ".png"
    for key in ("classes", "color", "overlay"):
        with rasterio.open(written[key]) as png:  # GDAL reads it from the .aux.xml beside
            assert png.crs == UTM40N and png.transform == TRANSFORM, key
    # the class PNG's sidecar holds its georeference and its class names together
    pam = (tmp_path / "out" / "scene_classes.png.aux.xml").read_text()
    assert "<SRS" in pam and "<GeoTransform>" in pam and "<Category>Water</Category>" in pam


def test_an_earlier_runs_sidecar_does_not_outlive_its_file(tmp_path):
    stale = tmp_path / "out" / "scene_color.tif.aux.xml"
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    outs = _write(tmp_path, ids, color=True, overlay=False)
    stale.write_text("<PAMDataset><SRS>EPSG:4326</SRS></PAMDataset>")
    outs.finish()
    assert not stale.exists()
    with rasterio.open(tmp_path / "out" / "scene_color.tif") as colour:
        assert colour.crs == UTM40N
