"""The augmentations' own draws and arithmetic: turns, scaled crops, band jitter, and the
crop pipeline's padding, jitter range and user transform."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.transforms import BandJitter, RandomRot90, RandomScaledCrop, crop_transform


def image(h: int, w: int, bands: int = 3) -> tv_tensors.Image:
    return tv_tensors.Image(torch.arange(bands * h * w).reshape(bands, h, w) % 256)


def test_turns_are_each_quarter_alike_and_exact():
    torch.manual_seed(0)
    turn = RandomRot90()
    drawn = Counter(turn.make_params([])["k"] for _ in range(800))
    assert set(drawn) == {0, 1, 2, 3} and all(150 < n < 250 for n in drawn.values())
    x = image(4, 6)
    assert turn.transform(x, {"k": 0}) is x
    for k in (1, 2, 3):
        turned = turn.transform(x, {"k": k})
        assert torch.equal(turned, torch.rot90(x, k, dims=(-2, -1)))
        assert isinstance(turned, tv_tensors.Image)


def test_scaled_crops_span_the_scale_range_and_stay_inside():
    torch.manual_seed(0)
    crop = RandomScaledCrop(32, (0.5, 2.0))
    sides, inside = [], True
    for _ in range(300):
        p = crop.make_params([image(100, 90)])
        sides.append(p["side"])
        inside &= p["top"] + p["side"] <= 100 and p["left"] + p["side"] <= 90
        inside &= p["top"] >= 0 and p["left"] >= 0
    assert inside and min(sides) <= 17 and max(sides) >= 61
    tops = {crop.make_params([image(40, 40)])["top"] for _ in range(300)}
    assert max(tops) <= 40 - 16
    # never wider or taller than the image, and one pixel at the least
    assert RandomScaledCrop(32, (2.0, 2.0)).make_params([image(100, 20)])["side"] == 20
    assert RandomScaledCrop(32, (2.0, 2.0)).make_params([image(20, 100)])["side"] == 20
    assert RandomScaledCrop(4, (0.01, 0.01)).make_params([image(10, 10)])["side"] == 1


def test_a_scaled_crop_is_resized_to_the_crop_size_antialiased():
    crop = RandomScaledCrop(8, (2.0, 2.0))
    checks = (torch.arange(16)[:, None] + torch.arange(16)) % 2 * 255
    board = tv_tensors.Image(checks.expand(3, 16, 16))
    out = crop.transform(board, {"top": 0, "left": 0, "side": 16})
    expected = v2.functional.resize(board, [8, 8], antialias=True)
    assert torch.equal(out, expected)
    assert not torch.equal(out, v2.functional.resize(board, [8, 8], antialias=False))
    same = crop.transform(board, {"top": 4, "left": 2, "side": 8})
    assert torch.equal(same, board[:, 4:12, 2:10])  # the crop's size already: not resized


def test_band_jitter_factors_span_the_strength():
    torch.manual_seed(0)
    jitter = BandJitter(0.3)
    drawn = torch.tensor([list(jitter.make_params([]).values()) for _ in range(500)])
    assert list(jitter.make_params([])) == ["brightness", "contrast", "saturation"]
    assert drawn.min() >= 0.7 and drawn.max() <= 1.3
    assert (drawn.min(0).values < 0.72).all() and (drawn.max(0).values > 1.28).all()


def test_band_jitter_clamps_each_step_to_the_8_bit_range_and_keeps_the_type():
    jitter = BandJitter(0.5)
    same = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0}
    bright = tv_tensors.Image(torch.full((4, 2, 2), 200, dtype=torch.uint8))
    out = jitter.transform(bright, {**same, "brightness": 2.0})
    assert out.dtype == torch.uint8 and (out == 255).all()
    # contrast 2 around the mean (100): 0 -> -100 and 200 -> 300, each clamped
    halves = torch.zeros(4, 2, 2, dtype=torch.uint8)
    halves[:, 0] = 200
    out = jitter.transform(tv_tensors.Image(halves), {**same, "contrast": 2.0})
    assert out[:, 0].unique().tolist() == [255] and out[:, 1].unique().tolist() == [0]
    # saturation 3 around each pixel's own mean over bands (pixels unlike each other)
    pixels = torch.tensor([[[0, 250]], [[100, 250]], [[200, 250]], [[100, 10]]], dtype=torch.uint8)
    out = jitter.transform(tv_tensors.Image(pixels), {**same, "saturation": 3.0})
    first = torch.tensor([0.0, 100, 200, 100])  # mean 100: 100 + 3 * (v - 100), clamped
    assert out[:, 0, 0].tolist() == (100 + 3 * (first - 100)).clamp(0, 255).tolist()
    second = torch.tensor([250.0, 250, 250, 10])  # mean 190
    assert out[:, 0, 1].tolist() == (190 + 3 * (second - 190)).clamp(0, 255).round().tolist()
    mask = tv_tensors.Mask(torch.ones(2, 2, dtype=torch.long))
    assert jitter.transform(mask, {**same, "brightness": 2.0}) is mask


def test_crops_pad_images_with_0_and_masks_with_the_ignore_index():
    crop = crop_transform(8, augment=False)
    x, mask = crop(tv_tensors.Image(torch.full((3, 4, 4), 9, dtype=torch.uint8)),
                   tv_tensors.Mask(torch.ones(4, 4, dtype=torch.long)))  # fmt: skip
    assert (x == 9).sum() == 3 * 16 and (x == 0).sum() == 3 * (64 - 16)
    assert (mask == 1).sum() == 16 and (mask == IGNORE_INDEX).sum() == 64 - 16


def test_the_pipeline_jitters_by_the_default_strength_and_ends_with_the_users_transform():
    steps = crop_transform(32, augment=True).transforms
    (jitter,) = [s for s in steps if isinstance(s, v2.ColorJitter)]
    assert jitter.brightness == jitter.contrast == jitter.saturation == pytest.approx((0.8, 1.2))
    seen = []

    def extra(x, mask):
        seen.append(x.shape)
        return x, mask

    steps = crop_transform(16, augment=True, bands=4, extra=extra).transforms
    assert steps[-1] is extra and isinstance(steps[-2], BandJitter)
    mask = tv_tensors.Mask(torch.zeros(20, 20, dtype=torch.long))
    crop_transform(16, augment=False, extra=extra)(image(20, 20), mask)
    assert seen == [torch.Size([3, 16, 16])]
    plain = crop_transform(16, augment=True, color_jitter=0).transforms
    assert not any(isinstance(s, (v2.ColorJitter, BandJitter)) for s in plain)


@pytest.mark.parametrize(
    "factors", [(1.8, 0.5, 1.7), (1.8, 1.7, 0.6), (0.5, 2.5, 2.2), (1.3, 2.0, 0.4)]
)
def test_band_jitter_is_brightness_then_contrast_then_saturation_each_clamped(factors):
    torch.manual_seed(1)
    x = torch.randint(0, 256, (4, 6, 5), dtype=torch.uint8)
    brightness, contrast, saturation = factors
    params = {"brightness": brightness, "contrast": contrast, "saturation": saturation}
    out = BandJitter(0.5).transform(tv_tensors.Image(x), params)
    step = (x.double() * brightness).clamp(0, 255)
    step = (step.mean() + contrast * (step - step.mean())).clamp(0, 255)
    pixel_means = step.mean(0, keepdim=True)
    step = (pixel_means + saturation * (step - pixel_means)).clamp(0, 255)
    assert (out.int() - step.round().int()).abs().max() <= 1  # float32 rounding at .5
    assert (out.int() - step.round().int()).abs().float().mean() < 0.05
