"""writers: Cloud Optimized GeoTIFF outputs with class-true overviews; nothing left on failure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from PIL import Image
from rasterio.windows import Window

from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.data.raster import open_input
from aerialseg.inference.predict import NODATA, ChunkResult
from aerialseg.inference.writers import RasterOutputs
from tests.conftest import TRANSFORM, UTM40N, rgb_scene, write_geotiff

SIZE = 600  # over two 256 px blocks: GDAL gives the COG overviews


def _write(tmp_path, ids: np.ndarray, percent=None, valid=None, **outputs) -> RasterOutputs:
    """RasterOutputs of a SIZE px georeferenced scene, fed ``ids`` (and confidences
    ``percent``, the ``valid`` pixels: default all) in two bands of rows."""
    scene = write_geotiff(tmp_path / "scene.tif", rgb_scene(SIZE, SIZE))
    raster = open_input(scene)
    (tmp_path / "out").mkdir()
    outs = RasterOutputs(raster, DUBAI_CLASSES, tmp_path / "out" / "scene", fmt="tif", **outputs)
    image = raster.dataset.read().astype(np.float32)
    for top in (0, SIZE // 2):
        rows = slice(top, top + SIZE // 2)
        ok = np.ones_like(ids[rows], dtype=bool) if valid is None else valid[rows]
        confidence = None if percent is None else percent[rows]
        window = Window(0, top, SIZE, SIZE // 2)
        outs.write(ChunkResult(window, ids[rows], image[:, rows], ok, confidence))
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
        assert dst.crs == UTM40N and dst.transform == TRANSFORM
        assert dst.colormap(1)[4][:3] == (0x50, 0xE3, 0xC2)
        assert np.array_equal(dst.read(1), ids)
    with rasterio.open(written["classes"], overview_level=0) as half:
        assert (half.read(1) == 4).all()
    with rasterio.open(written["color"], overview_level=0) as half:
        colours = {tuple(c) for c in half.read().reshape(3, -1).T}
    assert colours <= {tuple(c) for c in DUBAI_CLASSES.display_palette()}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "scene_classes.tif",
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


def regions() -> tuple[np.ndarray, np.ndarray]:
    """Class ids in blocks of Building, Road and Water, with a corner of no data."""
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    ids[:, SIZE // 3 :] = 4
    ids[SIZE // 2 :, : SIZE // 4] = 2
    valid = np.ones((SIZE, SIZE), dtype=bool)
    valid[:50, :70] = False
    ids[~valid] = NODATA
    return ids, valid


def test_colour_mask_geotiff_has_the_input_grid_and_the_class_colours(tmp_path):
    ids, valid = regions()
    written = _write(tmp_path, ids, valid=valid, color=True, overlay=False).finish()
    with rasterio.open(written["color"]) as dst:
        assert dst.crs == UTM40N and dst.transform == TRANSFORM
        assert (dst.width, dst.height, dst.count) == (SIZE, SIZE, 3)
        colours = dst.read()
    palette = DUBAI_CLASSES.display_palette()
    expected = np.zeros((3, SIZE, SIZE), dtype=np.uint8)  # black where nothing was predicted
    expected[:, valid] = palette[ids[valid]].T
    np.testing.assert_array_equal(colours, expected)
    assert tuple(colours[:, SIZE - 1, SIZE - 1]) == (0x50, 0xE3, 0xC2)  # Water's display colour


def test_overlay_shows_half_picture_half_class_colour_and_the_bare_picture_at_nodata(tmp_path):
    ids, valid = regions()
    written = _write(tmp_path, ids, valid=valid, color=False, overlay=True).finish()
    overlay = np.asarray(Image.open(written["overlay"])).transpose(2, 0, 1).astype(int)
    picture = rgb_scene(SIZE, SIZE).astype(int)
    colour = DUBAI_CLASSES.display_palette()[np.where(valid, ids, 0)].transpose(2, 0, 1)
    np.testing.assert_array_equal(overlay[:, valid], ((picture + colour) // 2)[:, valid])
    np.testing.assert_array_equal(overlay[:, ~valid], picture[:, ~valid])
