"""Predict images of any size at native resolution with overlapping, blended windows.

Each window's class probabilities are weighted by a separable ramp that is 1 in the middle
and falls towards the window's edges over the overlap, where the network sees the least
context; overlapping windows are then averaged by weight. Hand-written because the
libraries that have this (MONAI) are far heavier than these few lines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aerialseg.models.network import SegmentationNet

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
        return _round_up(length, stride), [0]
    count = -(-(length - overlap_px) // (window - overlap_px))
    size = min(window, _round_up(-(-(length + (count - 1) * overlap_px) // count), stride))
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


def _pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    pad_h, pad_w = height - x.shape[-2], width - x.shape[-1]
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < x.shape[-2] and pad_w < x.shape[-1] else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@torch.no_grad()
def predict_whole(net: SegmentationNet, image: torch.Tensor) -> torch.Tensor:
    """(bands, H, W) -> (C, H, W) probabilities in one pass, padding to the network's stride."""
    h, w = image.shape[-2:]
    x = _pad_to(image[None], _round_up(h, net.stride), _round_up(w, net.stride))
    return net(x).softmax(1)[0, :, :h, :w]


@torch.no_grad()
def predict_sliding(
    net: SegmentationNet,
    image: torch.Tensor,
    window: int = 512,
    overlap: float = 0.25,
    batch_size: int = 4,
) -> torch.Tensor:
    """(bands, H, W) float 0..255 on the net's device -> (C, H, W) probabilities."""
    h, w = image.shape[-2:]
    overlap_px = int(window * overlap)
    wh, rows = window_plan(h, window, overlap_px, net.stride)
    ww, cols = window_plan(w, window, overlap_px, net.stride)
    if len(rows) == 1 and len(cols) == 1:
        return predict_whole(net, image)
    weights = ramp_weights(wh, ww, overlap_px).to(image.device)
    # An image that fits in one window along an axis is padded up to that window there.
    padded = _pad_to(image, max(h, wh), max(w, ww))
    ph, pw = padded.shape[-2:]
    boxes = [(y, x) for y in rows for x in cols]
    probs = None
    total = torch.zeros(ph, pw, device=image.device)
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i : i + batch_size]
        batch = torch.stack([padded[:, y : y + wh, x : x + ww] for y, x in chunk])
        out = net(batch).softmax(1)
        if probs is None:
            probs = torch.zeros(out.shape[1], ph, pw, device=image.device)
        for (y, x), p in zip(chunk, out, strict=True):
            probs[:, y : y + wh, x : x + ww] += p * weights
            total[y : y + wh, x : x + ww] += weights
    assert probs is not None  # boxes is never empty
    return (probs / total)[:, :h, :w]


@torch.no_grad()
def predict_resized(net: SegmentationNet, image: torch.Tensor, size: int) -> torch.Tensor:
    """The seed notebook's way: squash to size x size, predict, resize probabilities back."""
    h, w = image.shape[-2:]
    small = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False)
    probs = net(small).softmax(1)
    return F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)[0]


def predict_image(
    net: SegmentationNet,
    image: torch.Tensor,
    *,
    input_mode: str,
    window: int,
    overlap: float,
    resize_to: int,
    batch_size: int = 4,
) -> torch.Tensor:
    """Probabilities for one image, the way the model was trained to see images."""
    if input_mode == "resize":
        return predict_resized(net, image, resize_to)
    return predict_sliding(net, image, window, overlap, batch_size)
