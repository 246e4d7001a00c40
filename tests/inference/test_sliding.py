from itertools import pairwise

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.inference import predict
from aerialseg.inference.predict import Predictor
from aerialseg.inference.sliding import (
    MIN_WEIGHT,
    pad_to,
    ramp_weights,
    window_plan,
    window_starts,
)
from aerialseg.models.network import SegmentationNet
from aerialseg.models.spec import ModelSpec
from tests.helpers.models import BatchRecorder


def net_of(model: nn.Module, stride: int = 1) -> SegmentationNet:
    torch.manual_seed(0)
    return SegmentationNet(model, [0.0] * 3, [255.0] * 3, stride).eval()


def predictor_of(net, window=512, overlap=0.25, batch_size=4, **spec) -> Predictor:
    spec = ModelSpec("seed-unet", window=window, overlap=overlap, **spec)
    return Predictor(net, spec, DUBAI_CLASSES, "cpu", batch_size)


def predict_sliding(net, image, window=512, overlap=0.25, batch_size=4) -> torch.Tensor:
    """The blended probabilities of the one blender (predict.py), for a whole image."""
    result = predictor_of(net, window, overlap, batch_size).predict_image(image, probabilities=True)
    return result.probs


def predict_whole(net, image) -> torch.Tensor:
    """One pass over the whole image."""
    return predict_sliding(net, image, window=max(image.shape[-2:]))


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


# A 12 px axis with 4 px of overlap: pixel centres 0.5, 1.5, ... px from the nearer edge,
# over 4 px, up to 1 in the middle.
RAMP_12 = [0.125, 0.375, 0.625, 0.875, 1, 1, 1, 1, 0.875, 0.625, 0.375, 0.125]
RAMP_10 = [0.125, 0.375, 0.625, 0.875, 1, 1, 0.875, 0.625, 0.375, 0.125]


def test_ramp_falls_alike_towards_all_four_edges():
    w = ramp_weights(12, 10, 4)  # not square: rows and columns cannot be swapped
    assert w.shape == (12, 10)
    middle_row, middle_col = w[5], w[:, 4]
    assert middle_col.tolist() == RAMP_12 and middle_row.tolist() == RAMP_10
    assert torch.equal(w, torch.outer(torch.tensor(RAMP_12), torch.tensor(RAMP_10)))
    # top, bottom, left and right edges: the edge's ramp value times the other axis's ramp
    assert torch.equal(w[0], 0.125 * middle_row) and torch.equal(w[-1], 0.125 * middle_row)
    assert torch.equal(w[:, 0], 0.125 * middle_col) and torch.equal(w[:, -1], 0.125 * middle_col)


def test_ramp_without_overlap_is_flat_and_a_window_edge_is_never_zero():
    assert torch.equal(ramp_weights(5, 7, 0), torch.ones(5, 7))
    tiny = ramp_weights(3, 3, 10_000)  # edges far below 1e-3 are held at MIN_WEIGHT
    assert tiny.min() == pytest.approx(MIN_WEIGHT**2) and tiny.max() > 0


@given(height=st.integers(1, 80), width=st.integers(1, 80), overlap_px=st.integers(0, 40))
def test_ramp_is_symmetric_and_rises_towards_the_middle(height, width, overlap_px):
    w = ramp_weights(height, width, overlap_px)
    assert w.shape == (height, width)
    assert torch.equal(w, w.flip(0)) and torch.equal(w, w.flip(1))
    assert ((w > 0) & (w <= 1)).all()
    half_rows, half_cols = w[: (height + 1) // 2, 0], w[0, : (width + 1) // 2]
    assert (half_rows.diff() >= 0).all() and (half_cols.diff() >= 0).all()


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


TIGHT = 0.006


def conv_net(scale: float = 1.0) -> SegmentationNet:
    """Three 3x3 convolutions: a receptive field of 7 px, and probabilities that vary by
    about ``scale`` times a freshly initialised network's (0.06 at 1)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 4, 3, padding=1),
    )
    with torch.no_grad():
        model[-1].weight *= scale
    return SegmentationNet(model, [0.0] * 3, [255.0] * 3, 1).eval()


def test_conv_model_windowed_matches_whole_where_the_ramp_says(monkeypatch):
    # Windows differ from the whole image only within 3 px of their inner edges, where the
    # ramp gives them at most 3.5 / 48 of a full weight. With probabilities spanning 0.43,
    # the blend stays within 0.0046 of one pass here; equal weights would be 0.11 off, a
    # ramp along one axis only 0.069, a ramp over half the overlap 0.0077.
    net = conv_net(scale=10.0)
    torch.manual_seed(1)
    image = torch.rand(3, 200, 260) * 255
    whole = predict_whole(net, image)
    assert whole.max() - whole.min() > 0.4
    windowed = predict_sliding(net, image, window=96, overlap=0.5)
    error = (windowed - whole).abs()
    assert error.max() < TIGHT
    # The tolerance tells a ramp from none: equal weights would be seen here.
    monkeypatch.setattr(predict, "ramp_weights", lambda h, w, overlap_px: torch.ones(h, w))
    flat = predict_sliding(net, image, window=96, overlap=0.5)
    assert (flat - whole).abs().max() > 4 * TIGHT


def test_small_image_is_padded_to_the_stride():
    net = net_of(nn.Conv2d(3, 2, 1), stride=32)
    probs = predict_sliding(net, torch.rand(3, 45, 70) * 255, window=512)
    assert probs.shape == (2, 45, 70)


def test_resized_prediction_returns_native_size():
    recorder = BatchRecorder()
    net = SegmentationNet(recorder, [0.0] * 3, [255.0] * 3, 1).eval()
    predictor = predictor_of(net, window=32, input_mode="resize", resize_to=32)
    result = predictor.predict_image(torch.rand(3, 45, 70) * 255, probabilities=True)
    assert result.probs.shape == (2, 45, 70) and result.ids.shape == (45, 70)
    assert recorder.batches == [1]  # squashed, in one pass


@given(
    height=st.integers(1, 100),
    width=st.integers(1, 100),
    window=st.sampled_from([32, 48, 64]),
    overlap=st.sampled_from([0.0, 0.125, 0.25, 0.5, 0.75]),
    stride=st.sampled_from([1, 8, 16]),
    batch_size=st.integers(1, 5),
)
def test_pointwise_model_windowed_equals_whole_for_any_size_and_overlap(
    height, width, window, overlap, stride, batch_size
):
    """Each pixel's blend weights, over all windows that cover it, sum to one: a model
    that sees one pixel at a time gives the whole-image result however windows fall."""
    net = net_of(nn.Conv2d(3, 3, 1), stride=stride)
    image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(height)) * 255
    whole = predict_whole(net, image)
    windowed = predict_sliding(net, image, window=window, overlap=overlap, batch_size=batch_size)
    assert windowed.shape == (3, height, width)
    assert torch.allclose(windowed, whole, atol=1e-5)


# Batches are cut within a row of windows: the rows are blended one band at a time.
@pytest.mark.parametrize("batch_size, batches", [(None, [4, 4, 4, 4]), (3, [3, 1] * 4)])
def test_predict_image_passes_windows_in_batches_of_the_size_asked(batch_size, batches):
    recorder = BatchRecorder()
    net = SegmentationNet(recorder, [0.0] * 3, [255.0] * 3, 1).eval()
    image = torch.rand(3, 128, 128) * 255  # 4 x 4 windows of 32 px
    predictor = Predictor(net, ModelSpec("seed-unet", window=32, overlap=0.0), DUBAI_CLASSES)
    # None: 4, as training's validation runs it
    predictor = predictor.with_options(batch_size=batch_size or 4)
    probs = predictor.predict_image(image, probabilities=True).probs
    assert probs.shape == (2, 128, 128) and recorder.batches == batches


@pytest.mark.parametrize(
    "size, mode",
    [
        ((15, 16), "reflect"),  # both pads shorter than the image: mirrored
        ((11, 12), "reflect"),  # one row more
        ((10, 13), "reflect"),  # one column more
        ((15, 23), "reflect"),  # 11 columns more: shorter than the width, not the height
        ((20, 16), "replicate"),  # a pad as long as the image cannot be mirrored
        ((15, 24), "replicate"),  # (along either axis)
        ((15, 30), "replicate"),  # nor one longer, along one axis only
    ],
)
def test_pad_mirrors_where_it_can_and_repeats_the_edge_where_it_cannot(size, mode):
    x = torch.rand(3, 10, 12)
    padded = pad_to(x, *size)
    pad = (0, size[1] - 12, 0, size[0] - 10)
    assert torch.equal(padded, torch.nn.functional.pad(x[None], pad, mode=mode)[0])
    assert pad_to(x, 10, 12) is x


def test_ramp_over_one_pixel_of_overlap_halves_the_edge_pixels():
    expected = torch.outer(torch.tensor([0.5, 1, 1, 0.5]), torch.tensor([0.5, 1, 0.5]))
    assert torch.equal(ramp_weights(4, 3, 1), expected)
