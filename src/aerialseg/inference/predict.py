"""The one predictor: a model ready to predict, and the one loop that blends its windows.

A ``Predictor`` holds an engine (engine.py), the model's spec and classes, the device and
the windows per forward pass. Its ``rows`` walks the sliding-window grid (sliding.py) top
to bottom. Blended probabilities are kept only for the rows that a later window still
covers; once the next row of windows starts below a row, that row is final and is yielded.
Every window is predicted once, and memory grows with the raster's width times one
window, not with its area. ``aerialseg predict`` writes these rows; an image in memory
(``predict_image``: evaluate, calibration, training's validation, ``Model.predict``) is
the same loop over an ``ArrayRaster``, so what is scored is what is written.

Prediction runs without autograd here, in the functions themselves: grad mode is per
thread, so a caller on a worker thread (the HTTP server's pool) that relied on its own
``torch.inference_mode()`` would keep every window's activations until the scene is done.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rasterio.windows import Window

from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.errors import ConfigError
from aerialseg.inference.engine import FlipTTA, engine_precision
from aerialseg.inference.sliding import pad_to, ramp_weights, round_up, window_plan
from aerialseg.models.spec import MAX_OVERLAP, ModelSpec

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
    # (bands, h, w) float32 input values in 0..255 (for overlays): a NumPy array from a
    # file, whatever an ArrayRaster holds (a tensor in training's validation)
    image: Any
    valid: np.ndarray  # (h, w) bool
    # (h, w) uint8: the blended probability of each pixel's class, in percent; when asked
    confidence: np.ndarray | None = None
    # (classes, h, w) blended probabilities on the predictor's device; when asked
    probs: torch.Tensor | None = None


class ArrayRaster:
    """An image in memory, read as data.raster.RasterInput reads a file: what lets an
    array go through the same rows as a file. ``values``: (bands, H, W) float in 0..255,
    a NumPy array or a tensor (slices are views: nothing is copied); ``valid``: (H, W)
    bool, None: all valid."""

    def __init__(self, values: np.ndarray | torch.Tensor, valid: np.ndarray | None = None):
        self.values = values
        self.height, self.width = (int(n) for n in values.shape[-2:])
        self.valid = np.ones((self.height, self.width), bool) if valid is None else valid

    def read(self, window: Window) -> tuple[Any, np.ndarray]:
        rows = slice(int(window.row_off), int(window.row_off + window.height))
        cols = slice(int(window.col_off), int(window.col_off + window.width))
        return self.values[:, rows, cols], self.valid[rows, cols]


def _tensor(values: np.ndarray | torch.Tensor, device) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.to(device)
    return torch.from_numpy(values).to(device)


def _result(
    row: int,
    scores: torch.Tensor,
    image: np.ndarray,
    valid: np.ndarray,
    temperature: float | None,
    probabilities: bool = False,
) -> ChunkResult:
    """``temperature``: the confidence's (evaluation/calibration.py); None: no confidence.
    ``probabilities``: keep the blended probabilities on the result."""
    # max(), not argmax(): the same first-maximum ids, 4x faster on a CPU here.
    top = scores.max(0)
    ids = top.indices.to(torch.uint8).cpu().numpy()
    ids[~valid] = NODATA
    percent, probs = None, None
    if temperature is not None or probabilities:
        # Scores are probabilities summed with a weight that is the same for every class
        # of a pixel: over their sum they are the blended probabilities.
        probs = scores / scores.sum(0, keepdim=True).clamp_min(1e-12)
    if temperature is not None and probs is not None:
        share = with_temperature(probs, temperature).gather(0, top.indices[None])[0]
        percent = (100 * share).round().to(torch.uint8).cpu().numpy()
        percent[~valid] = CONFIDENCE_NODATA
    window = Window(0, row, ids.shape[1], ids.shape[0])
    return ChunkResult(window, ids, image, valid, percent, probs if probabilities else None)


def _one_pass(engine, image: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """(C, H, W) probabilities of a whole image in one pass: the seed model's squash and
    resize, else padded to the network's stride."""
    h, w = image.shape[-2:]
    if spec.input_mode == "resize":
        size = (spec.resize_to, spec.resize_to)
        small = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)
        probs = engine(small).softmax(1)
        return F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)[0]
    x = pad_to(image[None], round_up(h, engine.stride), round_up(w, engine.stride))
    return engine(x).softmax(1)[0, :, :h, :w]


def band_starts(height: int, width: int, spec: ModelSpec, stride: int) -> list[int]:
    """The rows where ``Predictor.rows`` starts a band: where a scene may be split into
    blocks that ``rows(start=, stop=)`` predicts apart."""
    if spec.input_mode == "resize" or (height <= spec.window and width <= spec.window):
        return [0]
    return window_plan(height, spec.window, int(spec.window * spec.overlap), stride)[1]


def check_overlap(overlap) -> None:
    """A window overlap: a share of the window in [0, MAX_OVERLAP]; None keeps the model's."""
    if overlap is None:
        return
    if isinstance(overlap, bool) or not isinstance(overlap, int | float):
        raise ConfigError(f"overlap {overlap!r}: give a share of the window, e.g. 0.125")
    if not 0 <= overlap <= MAX_OVERLAP:
        raise ConfigError(
            f"overlap {overlap!r}: give a share of the window from 0 to {MAX_OVERLAP}"
            " (more predicts each pixel more than twice along each axis)"
        )


def check_batch_size(batch_size) -> None:
    """Windows a pass: a whole number from 1; None keeps the device's default."""
    whole = isinstance(batch_size, int | np.integer) and not isinstance(batch_size, bool)
    if batch_size is not None and not (whole and batch_size >= 1):
        raise ConfigError(f"batch_size {batch_size!r}: give a whole number of windows from 1")


@dataclass
class Predictor:
    """A model ready to predict: the one thing ``predict``, ``evaluate``, the server, Ray
    workers, training's validation and ``Model`` run. Made by load.py's ``load_predictor``,
    or around a live network (training) with ``Predictor(net, spec, classes, device)``."""

    engine: Any  # call + stride: a network, Bf16Engine, FlipTTA or OnnxEngine (engine.py)
    spec: ModelSpec
    classes: ClassTable
    device: str = "cpu"
    batch_size: int | None = None  # windows per forward pass; None: default_batch_size
    meta: dict[str, Any] = field(default_factory=dict)  # the model file's (metrics, ...)
    path: Path | None = None  # the model file, where there is one

    @property
    def precision(self) -> str:
        return engine_precision(self.engine)

    @property
    def tta(self) -> bool:
        return isinstance(self.engine, FlipTTA)

    @property
    def batch(self) -> int:
        return self.batch_size or default_batch_size(self.device, self.precision)

    def with_options(
        self, *, tta: bool = False, overlap: float | None = None, batch_size: int | None = None
    ) -> Predictor:
        """This predictor with flip TTA, another window overlap or batch size (None and
        False keep its own); the engine is shared, not copied."""
        check_overlap(overlap)
        check_batch_size(batch_size)
        engine = FlipTTA(self.engine) if tta and not self.tta else self.engine
        spec = self.spec if overlap is None else dataclasses.replace(self.spec, overlap=overlap)
        batch = batch_size or self.batch_size
        return dataclasses.replace(self, engine=engine, spec=spec, batch_size=batch)

    def band_starts(self, height: int, width: int) -> list[int]:
        return band_starts(height, width, self.spec, self.engine.stride)

    def predict_image(
        self,
        values: np.ndarray | torch.Tensor,
        valid: np.ndarray | None = None,
        *,
        probabilities: bool = False,
        confidence: bool = False,
    ) -> ChunkResult:
        """The whole of an image in memory, (bands, H, W) float in 0..255, as ``rows``
        predicts a file: one result, its ``probs`` kept if ``probabilities``."""
        raster = ArrayRaster(values, valid)
        chunks = list(self.rows(raster, confidence=confidence, probabilities=probabilities))
        if len(chunks) == 1:
            return chunks[0]
        cat = np.concatenate
        probs = torch.cat([c.probs for c in chunks], 1) if probabilities else None  # type: ignore[misc]
        percent = cat([c.confidence for c in chunks]) if confidence else None  # type: ignore[misc]
        ids, valid_all = cat([c.ids for c in chunks]), cat([c.valid for c in chunks])
        window = Window(0, 0, raster.width, raster.height)
        return ChunkResult(window, ids, values, valid_all, percent, probs)

    @torch.no_grad()  # on a generator: in force at every step, on whichever thread runs it
    def rows(
        self,
        raster,
        *,
        confidence: bool = False,
        probabilities: bool = False,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[ChunkResult]:
        """Yield final row bands of the prediction of ``raster`` (a data.raster.RasterInput
        or an ArrayRaster), top to bottom, with each pixel's confidence if asked (at the
        spec's confidence_temperature) and the blended probabilities if asked.

        ``start``, ``stop``: only the bands from row ``start`` to row ``stop`` (both from
        ``band_starts``, or the raster's height), bit for bit as in the whole run: the
        windows above ``start`` that reach below it are predicted first, for their share
        of its rows.
        """
        engine, spec, device, batch_size = self.engine, self.spec, self.device, self.batch
        h, w, win = raster.height, raster.width, spec.window
        stop = h if stop is None else stop
        temperature = (spec.confidence_temperature or 1.0) if confidence else None
        if spec.input_mode == "resize" or (h <= win and w <= win):
            if start == 0 and stop == h:
                values, valid = raster.read(Window(0, 0, w, h))
                probs = _one_pass(engine, _tensor(values, device), spec)
                yield _result(0, probs, values, valid, temperature, probabilities)
                return
            raise ValueError(f"rows {start}..{stop}: a scene of one window is not split")
        overlap_px = int(win * spec.overlap)
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
                # Windows above ``start`` add nothing to its rows: starting after them, the
                # sums there are the same (x + 0.0 == x).
                continue
            values, valid = raster.read(Window(0, y, w, min(wh, h - y)))
            band = pad_to(_tensor(values, device), wh, pw)
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
                yield _result(
                    y, acc[:, :end, :w], values[:, :end], valid[:end], temperature, probabilities
                )
            # A copy: a view would keep the whole band's scores alive beside the next band's.
            carry = acc[:, end:].clone()
