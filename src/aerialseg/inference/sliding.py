"""The sliding window's geometry: where windows lie, and how they are weighted.

Images of any size are predicted at native resolution in overlapping windows. Each
window's class probabilities are weighted by a separable ramp that is 1 in the middle and
falls towards the window's edges over the overlap, where the network sees the least
context; overlapping windows are then summed by weight (predict.py's ``Predictor.rows``,
the one loop that does it). Hand-written because the libraries that have this (MONAI) are
far heavier than these few lines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIN_WEIGHT = 1e-3  # keeps a pixel covered by window edges only from dividing by zero


def window_starts(length: int, window: int, step: int) -> list[int]:
    """Window offsets covering [0, length); the last window ends at the border."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window, step))
    starts.append(length - window)
    return starts


def window_plan(length: int, window: int, overlap_px: int, stride: int) -> tuple[int, list[int]]:
    """Window size and window starts along one axis of ``length`` px.

    An axis that fits in one window gets one window, padded only up to the network's
    stride. A longer axis gets the fewest windows of at most ``window`` px that overlap by
    at least ``overlap_px``, all made as short as that allows (rounded up to the stride),
    so that no window is mostly overlap: 1099 px with 1024 px windows and 64 px overlap
    becomes two windows of 608 px, not two of 1024 px that compute 1.9 px per pixel.
    """
    if length <= window:
        return round_up(length, stride), [0]
    count = -(-(length - overlap_px) // (window - overlap_px))
    size = min(window, round_up(-(-(length + (count - 1) * overlap_px) // count), stride))
    return size, window_starts(length, size, size - overlap_px)


def ramp_weights(height: int, width: int, overlap_px: int) -> torch.Tensor:
    """(height, width) blending weights."""

    def ramp(size: int) -> torch.Tensor:
        if overlap_px <= 0:
            return torch.ones(size)
        pos = torch.arange(size, dtype=torch.float32) + 0.5
        edge = torch.minimum(pos, size - pos)
        return (edge / overlap_px).clamp(MIN_WEIGHT, 1.0)

    return ramp(height)[:, None] * ramp(width)[None, :]


def pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    pad_h, pad_w = height - x.shape[-2], width - x.shape[-1]
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < x.shape[-2] and pad_w < x.shape[-1] else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
