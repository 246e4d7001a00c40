"""Predict rasters of any size in row bands, with bounded memory and no seams.

The sliding-window grid of ``sliding.predict_sliding`` is walked top to bottom. Blended
probabilities are kept only for the rows that a later window still covers; once the next
row of windows starts below a row, that row is final and is written out. Every window is
predicted once, the result equals the in-memory sliding window (same windows, same
weights), and memory grows with the raster's width times one window, not with its area.

Prediction runs without autograd here, in the functions themselves: grad mode is per
thread, so a caller on a worker thread (the HTTP server's pool) that relied on its own
``torch.inference_mode()`` would keep every window's activations until the scene is done.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from rasterio.windows import Window

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.raster import RasterInput
from aerialseg.inference.sliding import (
    _pad_to,
    predict_image,
    predict_whole,
    ramp_weights,
    window_plan,
)
from aerialseg.training.config import TrainConfig

if TYPE_CHECKING:  # at run time the items come from the caller: no torchvision import here
    from aerialseg.data.samples import LabelledImage

NODATA = IGNORE_INDEX  # class-raster value for pixels with no valid input
CONFIDENCE_NODATA = 255  # confidence-raster value there (confidences run 0..100)


def with_temperature(probs: torch.Tensor, temperature: float, dim: int = 0) -> torch.Tensor:
    """``probs`` (classes along ``dim``, summing to 1) raised to 1 / T and renormalised:
    softmax(logits / T) for probabilities that were softmax(logits)."""
    if temperature == 1:
        return probs
    scaled = probs.clamp_min(1e-30).log() / temperature
    return scaled.softmax(dim)


def default_batch_size(device: str | torch.device, precision: str = "fp32") -> int:
    """Windows per forward pass. On a CPU, 2 in bf16 and 1 in fp32: on a Zen 5 host two
    512 px windows a pass predicted the test images 1.3x faster than one in bf16, and 4
    no faster than 2; in fp32 batching did not pay (bench/results/precision.json). The
    second window raised a 10,000 px scene's peak memory from 1234 to 1277 MiB
    (predict_memory.json at 1675507 and 9ca6a16). On a GPU, 8."""
    if torch.device(device).type != "cpu":
        return 8
    return 2 if precision == "bf16" else 1


@dataclass
class ChunkResult:
    window: Window  # where these rows lie in the raster
    ids: np.ndarray  # (h, w) uint8 class ids, NODATA where the input was invalid
    image: np.ndarray  # (bands, h, w) float32 input values in 0..255 (for overlays)
    valid: np.ndarray  # (h, w) bool
    # (h, w) uint8: the blended probability of each pixel's class, in percent; when asked
    confidence: np.ndarray | None = None


def _result(
    row: int,
    scores: torch.Tensor,
    image: np.ndarray,
    valid: np.ndarray,
    temperature: float | None,
) -> ChunkResult:
    """``temperature``: the confidence's (evaluation/calibration.py); None: no confidence."""
    # max(), not argmax(): the same first-maximum ids, 4x faster on a CPU here.
    top = scores.max(0)
    ids = top.indices.to(torch.uint8).cpu().numpy()
    ids[~valid] = NODATA
    percent = None
    if temperature is not None:
        # Scores are probabilities summed with a weight that is the same for every class
        # of a pixel: over their sum they are the blended probabilities.
        probs = scores / scores.sum(0, keepdim=True).clamp_min(1e-12)
        share = with_temperature(probs, temperature).gather(0, top.indices[None])[0]
        percent = (100 * share).round().to(torch.uint8).cpu().numpy()
        percent[~valid] = CONFIDENCE_NODATA
    return ChunkResult(Window(0, row, ids.shape[1], ids.shape[0]), ids, image, valid, percent)


def _whole(
    engine, raster: RasterInput, cfg: TrainConfig, device, temperature: float | None
) -> Iterator[ChunkResult]:
    """Images within one window, and the seed model's squash-and-resize: one pass."""
    values, valid = raster.read(Window(0, 0, raster.width, raster.height))
    image = torch.from_numpy(values).to(device)
    if cfg.input_mode == "resize":
        probs = predict_image(
            engine,
            image,
            input_mode="resize",
            window=cfg.window,
            overlap=cfg.overlap,
            resize_to=cfg.resize_to,
        )
    else:
        probs = predict_whole(engine, image)
    yield _result(0, probs, values, valid, temperature)


@torch.no_grad()
def predicted_probs(
    engine, cfg: TrainConfig, items: Iterable[LabelledImage], device, batch_size: int
) -> Iterator[tuple[LabelledImage, torch.Tensor]]:
    """Each labelled image with its (classes, H, W) class probabilities on ``device``,
    predicted as ``aerialseg predict`` does, with the model's windows (``cfg``)."""
    for item in items:
        probs = predict_image(
            engine,
            item.image.to(device).float(),
            input_mode=cfg.input_mode,
            window=cfg.window,
            overlap=cfg.overlap,
            resize_to=cfg.resize_to,
            batch_size=batch_size,
        )
        yield item, probs


def band_starts(height: int, width: int, cfg: TrainConfig, stride: int) -> list[int]:
    """The rows where ``predict_rows`` starts a band: where a scene may be split into
    blocks that ``predict_rows(start=, stop=)`` predicts apart."""
    if cfg.input_mode == "resize" or (height <= cfg.window and width <= cfg.window):
        return [0]
    return window_plan(height, cfg.window, int(cfg.window * cfg.overlap), stride)[1]


@torch.no_grad()  # on a generator: in force at every step, on whichever thread runs it
def predict_rows(
    engine,
    raster: RasterInput,
    cfg: TrainConfig,
    *,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    confidence: bool = False,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[ChunkResult]:
    """Yield final row bands of the prediction of ``raster``, top to bottom, with each
    pixel's confidence if asked (at the config's confidence_temperature).

    ``start``, ``stop``: only the bands from row ``start`` to row ``stop`` (both from
    ``band_starts``, or the raster's height), bit for bit as in the whole run: the windows
    above ``start`` that reach below it are predicted first, for their share of its rows.
    """
    h, w, win = raster.height, raster.width, cfg.window
    stop = h if stop is None else stop
    temperature = (cfg.confidence_temperature or 1.0) if confidence else None
    if cfg.input_mode == "resize" or (h <= win and w <= win):
        if start == 0 and stop == h:
            yield from _whole(engine, raster, cfg, device, temperature)
            return
        raise ValueError(f"rows {start}..{stop}: a scene of one window is not split")
    overlap_px = int(win * cfg.overlap)
    wh, rows = window_plan(h, win, overlap_px, engine.stride)
    ww, cols = window_plan(w, win, overlap_px, engine.stride)
    if start not in rows or (stop != h and stop not in rows):
        raise ValueError(f"rows {start}..{stop} do not start and end bands ({rows})")
    weights = ramp_weights(wh, ww, overlap_px).to(device)
    # A raster that fits in one window along an axis is padded up to that window there.
    pw = max(w, ww)
    carry = None  # weighted rows that the band above shares with this one
    for i, y in enumerate(rows):
        if y + wh <= start or y >= stop:
            # Windows above ``start`` add nothing to its rows: starting after them, the sums
            # there are the same (x + 0.0 == x).
            continue
        values, valid = raster.read(Window(0, y, w, min(wh, h - y)))
        band = _pad_to(torch.from_numpy(values).to(device), wh, pw)
        acc = None
        for j in range(0, len(cols), batch_size):
            xs = cols[j : j + batch_size]
            out = engine(torch.stack([band[:, :, x : x + ww] for x in xs])).softmax(1)
            if acc is None:
                acc = torch.zeros(out.shape[1], wh, pw, device=device)
            for x, p in zip(xs, out, strict=True):
                acc[:, :, x : x + ww] += p * weights
        assert acc is not None  # cols is never empty
        if carry is not None:
            n = carry.shape[1]
            acc[:, :n] += carry
        # Rows above the next band's start get no more contributions: they are final.
        end = rows[i + 1] - y if i + 1 < len(rows) else min(wh, h - y)
        # The blend weight is positive and the same for every class of a pixel, so the
        # argmax of the weighted sums is the argmax of the blend: no division needed.
        if y >= start:
            yield _result(y, acc[:, :end, :w], values[:, :end], valid[:end], temperature)
        # A copy: a view would keep the whole band's scores alive beside the next band's.
        carry = acc[:, end:].clone()
