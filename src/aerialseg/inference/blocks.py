"""Large scenes in row blocks: predicted apart (by several workers), assembled into the
very outputs that one process writes.

A block is a run of ``Predictor.rows``'s bands (``plan_blocks``). Its worker predicts it
with ``rows(start=, stop=)``, which starts at the windows above the block that reach
into it, so the blended rows equal the single run's bit for bit, and writes class ids, the
valid mask and the confidence to a block file (a tiled, Zstandard GeoTIFF, renamed into
place when complete: a file under its final name is a finished block). ``block_rows``
then feeds those rows to ``predict_one`` in place of the network, which writes the step
files and the Cloud Optimized GeoTIFF as it always does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from aerialseg.data.raster import RasterInput
from aerialseg.files import temp_path
from aerialseg.inference.predict import ChunkResult, Predictor, band_starts
from aerialseg.models.spec import ModelSpec

STRIP = 256  # rows read back at a time while assembling: one tile row of the block file
RUN_TAG = "aerialseg_run"  # the block file's tag naming the run settings it was made with


def plan_blocks(
    height: int, width: int, spec: ModelSpec, stride: int, block_pixels: float
) -> list[tuple[int, int]]:
    """(start, stop) rows of blocks of about ``block_pixels`` each, cut where bands start;
    one block, the whole scene, when it holds no more than that (a block is then as many
    rows as the scene has, or more)."""
    starts = band_starts(height, width, spec, stride)
    rows_per_block = max(1, int(block_pixels // width))
    blocks, begin = [], 0
    for y in starts[1:]:
        if y - begin >= rows_per_block:
            blocks.append((begin, y))
            begin = y
    blocks.append((begin, height))
    return blocks


def block_path(out: Path, name: str, start: int, stop: int) -> Path:
    return out / f".{name}.rows{start}-{stop}.tif"


def finished_block(path: Path, run: str) -> bool:
    """Whether ``path`` is a complete block file of the run settings ``run``."""
    try:
        with rasterio.open(path) as src:
            return src.tags().get(RUN_TAG) == run
    except rasterio.errors.RasterioIOError:
        return False


def write_block(
    predictor: Predictor,
    raster: RasterInput,
    path: Path,
    start: int,
    stop: int,
    *,
    run: str,
    confidence: bool,
) -> int:
    """Predict rows ``start``..``stop`` of ``raster`` into the block file ``path``;
    returns the pixels predicted."""
    tmp = temp_path(path)  # names its owner: sweep() removes it once that process is gone
    profile = {
        "driver": "GTiff",
        "width": raster.width,
        "height": stop - start,
        "count": 3 if confidence else 2,  # ids, valid, confidence
        "dtype": "uint8",
        "tiled": True,
        "blockxsize": STRIP,
        "blockysize": STRIP,
        "compress": "zstd",
        "zstd_level": 1,
    }
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            for band in predictor.rows(raster, confidence=confidence, start=start, stop=stop):
                win = Window(0, band.window.row_off - start, raster.width, band.window.height)
                dst.write(band.ids, 1, window=win)
                dst.write(band.valid.astype(np.uint8), 2, window=win)
                if band.confidence is not None:
                    dst.write(band.confidence, 3, window=win)
            dst.update_tags(**{RUN_TAG: run})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return raster.width * (stop - start)


def block_rows(paths: list[tuple[int, int, Path]], with_image: bool):
    """A ``rows`` source for ``predict_one``: the blocks' rows, top to bottom, as the
    ChunkResults that ``Predictor.rows`` would yield. The input's own values are read again
    only for an overlay (``with_image``)."""

    def rows(raster: RasterInput, **_) -> Iterator[ChunkResult]:
        for start, stop, path in paths:
            with rasterio.open(path) as src:
                for top in range(0, stop - start, STRIP):
                    height = min(STRIP, stop - start - top)
                    local = Window(0, top, raster.width, height)
                    window = Window(0, start + top, raster.width, height)
                    data = src.read(window=local)
                    image = (
                        raster.read(window)[0]
                        if with_image
                        else np.empty((0, height, raster.width), np.float32)
                    )
                    yield ChunkResult(
                        window,
                        data[0],
                        image,
                        data[1].astype(bool),
                        data[2] if src.count == 3 else None,
                    )

    return rows


def remove_blocks(out: Path, name: str) -> None:
    """Delete a scene's block files, finished or left half-written by a killed worker."""
    pattern = re.compile(rf"\.\.?{re.escape(name)}\.rows\d+-\d+\.tif(\..*)?")
    for entry in out.iterdir():
        if pattern.fullmatch(entry.name):
            entry.unlink(missing_ok=True)
