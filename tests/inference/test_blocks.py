"""Row blocks of a large scene: planned where bands start, written apart, read back as the
rows one process predicts (what the Ray workers do, here without Ray)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from aerialseg.data.raster import open_input
from aerialseg.files import temp_path
from aerialseg.inference.blocks import (
    RUN_TAG,
    block_path,
    block_rows,
    finished_block,
    plan_blocks,
    remove_blocks,
    write_block,
)
from aerialseg.inference.load import load_predictor
from tests.helpers.geotiff import write_geotiff
from tests.helpers.images import rgb_scene

H, W = 300, 170


@pytest.fixture
def scene(tmp_path):
    values = rgb_scene(H, W, seed=3)
    values[:, 40:60, :30] = 0  # nodata
    return write_geotiff(tmp_path / "scene.tif", values, nodata=0)


def test_blocks_are_cut_where_bands_start_and_cover_the_scene(tiny_model):
    predictor = load_predictor(tiny_model, precision="fp32")
    starts = predictor.band_starts(H, W)
    assert len(starts) > 4
    assert plan_blocks(H, W, predictor.spec, predictor.engine.stride, H * W) == [(0, H)]
    small = predictor.spec.window - 1  # one band a side: one block
    assert plan_blocks(small, small, predictor.spec, predictor.engine.stride, 10) == [(0, small)]
    for rows in (1, 40, 100):
        blocks = plan_blocks(H, W, predictor.spec, predictor.engine.stride, rows * W)
        assert blocks[0][0] == 0 and blocks[-1][1] == H
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))
        assert all(start in starts for start, _ in blocks)
        assert all(stop - start >= rows for start, stop in blocks[:-1])  # about that many
        if rows == 1:
            assert [start for start, _ in blocks] == starts  # a block a band
    exact = plan_blocks(H, W, predictor.spec, predictor.engine.stride, starts[1] * W)
    assert exact[0] == (0, starts[1])  # a block of just the rows asked for is cut
    two = next(h for h in range(H, 0, -1) if len(predictor.band_starts(h, W)) == 2)
    cut = predictor.band_starts(two, W)[1]
    assert plan_blocks(two, W, predictor.spec, predictor.engine.stride, W) == [(0, cut), (cut, two)]


@pytest.mark.parametrize("confidence", [True, False])
def test_blocks_written_apart_read_back_as_the_single_run(tiny_model, scene, tmp_path, confidence):
    predictor = load_predictor(tiny_model, precision="fp32")
    raster = open_input(scene)
    whole = list(predictor.rows(raster, confidence=confidence))
    blocks = plan_blocks(H, W, predictor.spec, predictor.engine.stride, 80 * W)
    assert len(blocks) >= 3
    paths = []
    for start, stop in blocks:
        path = block_path(tmp_path, "scene", start, stop)
        args = dict(run="settings-1", confidence=confidence)
        assert write_block(predictor, raster, path, start, stop, **args) == W * (stop - start)
        assert finished_block(path, "settings-1") and not finished_block(path, "settings-2")
        with rasterio.open(path) as src:  # tiled and compressed, a block's rows only
            assert (src.height, src.width, src.count) == (stop - start, W, 3 if confidence else 2)
            assert src.block_shapes[0] == (256, 256) and src.compression.value == "ZSTD"
        paths.append((start, stop, path))
    assert not list(tmp_path.glob(".*.tmp"))  # each renamed into place
    whole_block = tmp_path / "whole.tif"  # taller than a strip read back at a time
    write_block(predictor, raster, whole_block, 0, H, run="r", confidence=confidence)
    for parts in (paths, [(0, H, whole_block)]):
        read = list(block_rows(parts, False)(raster))
        for name in ("ids", "valid", "confidence") if confidence else ("ids", "valid"):
            a, b = (np.concatenate([getattr(r, name) for r in rs]) for rs in (whole, read))
            assert np.array_equal(a, b), name
    assert [(r.window.row_off, r.window.height) for r in read] == [(0, 256), (256, H - 256)]
    for with_image in (False, True):
        read = list(block_rows(paths, with_image)(raster))
        assert sum(r.window.height for r in read) == H
        assert all(r.valid.dtype == bool for r in read)
        for name in ("ids", "valid", "confidence") if confidence else ("ids", "valid"):
            a, b = (np.concatenate([getattr(r, name) for r in rs]) for rs in (whole, read))
            assert np.array_equal(a, b), name
        if not confidence:
            assert all(r.confidence is None for r in read)
        image = np.concatenate([r.image for r in read], axis=1)
        if with_image:
            assert np.array_equal(image, raster.read(Window(0, 0, W, H))[0])
        else:
            assert image.shape == (0, H, W) and image.dtype == np.float32
    raster.close()


def test_a_block_is_finished_only_when_complete_and_removed_with_its_leftovers(tmp_path):
    path = block_path(tmp_path, "a b", 0, 64)
    assert path.name == ".a b.rows0-64.tif"
    assert not finished_block(path, "run")  # no file
    path.write_bytes(b"half a TIFF")
    assert not finished_block(path, "run")  # a file GDAL cannot read
    profile = dict(driver="GTiff", width=4, height=4, count=2, dtype="uint8")
    with rasterio.open(path, "w", **profile) as dst:
        dst.update_tags(**{RUN_TAG: "other"})
    assert not finished_block(path, "run")
    left = temp_path(block_path(tmp_path, "a b", 64, 128))
    left.write_bytes(b"")
    keep = [tmp_path / "a b.tif", tmp_path / ".a bc.rows0-64.tif", tmp_path / ".b.rows0-64.tif"]
    for other in keep:
        other.write_bytes(b"")
    remove_blocks(tmp_path, "a b")
    assert sorted(tmp_path.iterdir()) == sorted(keep)


def test_a_failed_block_leaves_nothing_behind(tiny_model, scene, tmp_path):
    predictor = load_predictor(tiny_model, precision="fp32")

    class FailsLater:  # the network fails after a few batches: a worker killed mid-block
        stride = predictor.engine.stride
        calls = 0

        def __call__(self, batch):
            FailsLater.calls += 1
            if FailsLater.calls > 2:
                raise RuntimeError("out of memory")
            return predictor.engine(batch)

    failing = dataclasses.replace(predictor, engine=FailsLater(), batch_size=1)
    raster = open_input(scene)
    path = block_path(tmp_path, "scene", 0, H)
    with pytest.raises(RuntimeError, match="out of memory"):
        write_block(failing, raster, path, 0, H, run="r", confidence=False)
    raster.close()
    assert FailsLater.calls == 3
    assert list(tmp_path.iterdir()) == [tmp_path / "scene.tif"]
