"""The LightningModule's pieces that need no trainer: what the loss is taken against."""

import torch

from aerialseg.data.classes import DUBAI_CLASSES, IGNORE_INDEX
from aerialseg.training.config import resolve_config
from aerialseg.training.module import SegmentationTask, ignore_near_boundaries

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
