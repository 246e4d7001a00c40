"""Predict rasters of any size window by window, with bounded memory and no seams.

The output is produced in square *chunks*. Each chunk is read with a halo of context
around it, predicted with the blended sliding window, and only its core is kept; the halo
(half a window) gives pixels near a chunk's edge the same context as anywhere else, so
chunk borders leave no seams. Memory depends on the chunk size, not on the scene size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from rasterio.windows import Window

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.inference.raster import RasterInput
from aerialseg.inference.sliding import predict_image
from aerialseg.training.config import TrainConfig

NODATA = IGNORE_INDEX  # class-raster value for pixels with no valid input


@dataclass
class ChunkResult:
    window: Window  # where the core lies in the raster
    ids: np.ndarray  # (h, w) uint8 class ids, NODATA where the input was invalid
    rgb: np.ndarray  # (3, h, w) float32 input RGB (for overlays)
    valid: np.ndarray  # (h, w) bool


def chunk_windows(width: int, height: int, chunk: int) -> Iterator[Window]:
    for row in range(0, height, chunk):
        for col in range(0, width, chunk):
            yield Window(col, row, min(chunk, width - col), min(chunk, height - row))


def predict_chunks(
    engine,
    raster: RasterInput,
    cfg: TrainConfig,
    *,
    chunk: int = 2048,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
) -> Iterator[ChunkResult]:
    """Yield the prediction of each chunk of ``raster`` in row-major order."""
    if cfg.input_mode == "resize":
        # The seed model sees whole images squashed to one size: one chunk, whole image.
        chunk, halo = max(raster.width, raster.height), 0
    else:
        halo = cfg.window // 2
    for core in chunk_windows(raster.width, raster.height, chunk):
        col0, row0 = max(0, core.col_off - halo), max(0, core.row_off - halo)
        col1 = min(raster.width, core.col_off + core.width + halo)
        row1 = min(raster.height, core.row_off + core.height + halo)
        rgb, valid = raster.read(Window(col0, row0, col1 - col0, row1 - row0))
        image = torch.from_numpy(rgb).to(device)
        probs = predict_image(
            engine,
            image,
            input_mode=cfg.input_mode,
            window=cfg.window,
            overlap=cfg.overlap,
            resize_to=cfg.resize_to,
            batch_size=batch_size,
        )
        y, x = core.row_off - row0, core.col_off - col0
        ids = (
            probs[:, y : y + core.height, x : x + core.width]
            .argmax(0)
            .to(torch.uint8)
            .cpu()
            .numpy()
        )
        core_valid = valid[y : y + core.height, x : x + core.width]
        ids[~core_valid] = NODATA
        yield ChunkResult(core, ids, rgb[:, y : y + core.height, x : x + core.width], core_valid)
