"""The LightningModule's pieces that need no trainer: what the loss is taken against."""

import pytest
import torch

from aerialseg.data.classes import DUBAI_CLASSES, IGNORE_INDEX
from aerialseg.training.config import resolve_config
from aerialseg.training.module import SegmentationTask, cutmix, ignore_near_boundaries

TINY = ["model=seed-unet", "pretrained=false", "base_width=4", "crop_size=32"]


def halves(height: int = 8, width: int = 12) -> torch.Tensor:
    """One mask: class 1 on the left half, class 3 on the right."""
    mask = torch.full((1, height, width), 3)
    mask[:, :, : width // 2] = 1
    return mask


def test_pixels_near_another_label_are_ignored():
    mask = halves()
    for px in (1, 2):
        out = ignore_near_boundaries(mask, px)
        ignored = (out == IGNORE_INDEX)[0].all(0)  # columns ignored top to bottom
        assert ignored.tolist() == [abs(c - 5.5) < px for c in range(12)]
        kept = out != IGNORE_INDEX
        assert torch.equal(out[kept], mask[kept])  # the rest keep their labels
    assert torch.equal(ignore_near_boundaries(mask, 0), mask)
    uniform = torch.full((1, 8, 8), 2)
    assert torch.equal(ignore_near_boundaries(uniform, 2), uniform)


def test_training_step_takes_the_loss_without_the_boundary_band():
    cfg = resolve_config("default", None, [*TINY, "boundary_ignore=1"])
    task = SegmentationTask(cfg.to_dict(), DUBAI_CLASSES.to_dict())
    seen = []
    task.loss = lambda logits, target: seen.append(target) or logits.mean()
    masks = halves(32, 48).repeat(2, 1, 1)
    task.training_step((torch.rand(2, 3, 32, 48) * 255, masks), 0)
    assert torch.equal(seen[0], ignore_near_boundaries(masks, 1))
    assert (seen[0] == IGNORE_INDEX).sum() == 2 * 2 * 32  # a column either side of the edge


def test_cutmix_pastes_the_same_box_of_another_sample_into_image_and_mask():
    torch.manual_seed(0)
    n, h, w = 6, 32, 40
    # sample k: image and mask filled with k, so every pixel tells where it came from
    images = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 3, h, w)
    masks = torch.arange(n)[:, None, None].expand(n, h, w)
    mixed_images, mixed_masks = cutmix(images, masks, 1.0)
    assert torch.equal(mixed_images[:, 0].long(), mixed_masks)  # image and mask move alike
    assert (mixed_images[:, 0] == mixed_images[:, 2]).all()  # all bands alike
    pasted_areas = []
    for k in range(n):
        other = mixed_masks[k] != k
        assert len(mixed_masks[k][other].unique()) <= 1  # from one other sample
        rows, cols = other.any(1).nonzero(), other.any(0).nonzero()
        if len(rows):  # the pasted pixels fill one box
            box = other[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            assert box.all() and other.sum() == box.numel()
        pasted_areas.append(other.float().mean().item())
    assert 0 < sum(pasted_areas) / n < 1
    assert torch.equal(images[:, 0, 0, 0], torch.arange(n, dtype=torch.float32))  # untouched


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_cutmix_share_is_the_share_of_samples_mixed(share):
    torch.manual_seed(1)
    masks = torch.arange(400)[:, None, None].expand(400, 16, 16)
    images = masks[:, None].float()
    _, mixed = cutmix(images, masks, share)
    changed = (mixed != masks).flatten(1).any(1).float().mean().item()
    assert abs(changed - share) < 0.07  # a box of area ~0 can leave a sample unchanged


def test_label_smoothing_reaches_the_cross_entropy():
    cfg = resolve_config("default", None, [*TINY, "label_smoothing=0.1", "dice_weight=0"])
    task = SegmentationTask(cfg.to_dict(), DUBAI_CLASSES.to_dict())
    logits = torch.full((1, 6, 1, 1), -20.0)
    logits[0, 2] = 20.0
    target = torch.full((1, 1, 1), 2)
    # a confident right answer still costs: 0.1 of the target is spread over the 6 classes
    assert task.loss(logits, target).item() == pytest.approx(0.1 * 5 / 6 * 40, rel=1e-3)
