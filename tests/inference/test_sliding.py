from itertools import pairwise

import pytest
import torch
from torch import nn

from aerialseg.inference.sliding import (
    predict_resized,
    predict_sliding,
    predict_whole,
    ramp_weights,
    window_plan,
    window_starts,
)
from aerialseg.models.network import SegmentationNet


def net_of(model: nn.Module, stride: int = 1) -> SegmentationNet:
    torch.manual_seed(0)
    return SegmentationNet(model, [0.0] * 3, [255.0] * 3, stride).eval()


@pytest.mark.parametrize(
    "length, window, step", [(100, 32, 24), (64, 32, 32), (33, 32, 8), (20, 32, 8)]
)
def test_windows_cover_everything_and_stay_inside(length, window, step):
    starts = window_starts(length, window, step)
    covered = set()
    for s in starts:
        covered.update(range(s, s + window))
    assert covered >= set(range(length))
    assert starts[0] == 0 and (length <= window or starts[-1] + window == length)


def test_ramp_is_one_inside_and_small_at_edges():
    w = ramp_weights(64, 96, 16)
    assert w.shape == (64, 96)
    assert w[32, 48] == 1 and w[0, 0] < 0.01 and w.min() > 0


def test_window_plan_example():
    # Two 608 px windows for 1099 px, not two 1024 px windows computing 1.9x the pixels.
    assert window_plan(1099, 1024, 64, 32) == (608, [0, 491])
    assert window_plan(1000, 1024, 64, 32) == (1024, [0])  # one window, padded to the stride
    assert window_plan(45, 512, 128, 32) == (64, [0])


@pytest.mark.parametrize("length", [33, 100, 511, 512, 513, 1099, 2061, 2149, 10000])
@pytest.mark.parametrize(
    "window, overlap_px, stride", [(512, 128, 32), (1024, 64, 32), (96, 48, 1)]
)
def test_window_plan_covers_with_the_fewest_windows_of_at_most_window(
    length, window, overlap_px, stride
):
    size, starts = window_plan(length, window, overlap_px, stride)
    assert size % stride == 0 and size <= max(window, -(-length // stride) * stride)
    covered = set()
    for s in starts:
        covered.update(range(s, s + size))
    assert covered >= set(range(length))
    if len(starts) > 1:
        assert starts[0] == 0 and starts[-1] + size == length  # inside the axis
        assert all(b - a <= size - overlap_px for a, b in pairwise(starts))  # overlap kept
        # Fewest windows: one fewer full-size window could not cover the axis.
        fewer = len(starts) - 1
        assert fewer * window - (fewer - 1) * overlap_px < length


def test_pointwise_model_windowed_equals_whole_exactly():
    net = net_of(nn.Conv2d(3, 5, 1))
    image = torch.rand(3, 150, 230) * 255
    whole = predict_whole(net, image)
    windowed = predict_sliding(net, image, window=64, overlap=0.25, batch_size=3)
    assert windowed.shape == (5, 150, 230)
    assert torch.allclose(windowed, whole, atol=1e-5)
    assert torch.allclose(windowed.sum(0), torch.ones(150, 230), atol=1e-5)


def test_conv_model_windowed_matches_whole_within_tolerance():
    # Receptive field of 7 px: windows differ from the whole image only near their edges,
    # where the blending ramp gives them little weight.
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 4, 3, padding=1),
    )
    net = net_of(model)
    torch.manual_seed(1)
    image = torch.rand(3, 200, 260) * 255
    whole = predict_whole(net, image)
    windowed = predict_sliding(net, image, window=96, overlap=0.5)
    assert (windowed - whole).abs().max() < 0.02
    assert (windowed.argmax(0) == whole.argmax(0)).float().mean() > 0.99


def test_small_image_is_padded_to_the_stride():
    net = net_of(nn.Conv2d(3, 2, 1), stride=32)
    probs = predict_sliding(net, torch.rand(3, 45, 70) * 255, window=512)
    assert probs.shape == (2, 45, 70)


def test_resized_prediction_returns_native_size():
    net = net_of(nn.Conv2d(3, 2, 1))
    probs = predict_resized(net, torch.rand(3, 45, 70) * 255, 32)
    assert probs.shape == (2, 45, 70)
