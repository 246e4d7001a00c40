"""Training and validation samples cut from scenes: random crops (class-balanced, inside
regions), squashed whole images, and whole scenes or blocks for validation.

Scenes held in memory make random crops cost no I/O; streamed scenes read only the window
a crop needs (``data/scenes.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from rasterio.windows import Window
from torch.utils.data import Dataset
from torchvision import tv_tensors

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.scenes import LabelledImage, Scene
from aerialseg.data.transforms import crop_transform

CLASS_GRID = 8  # class_balanced crops look up class pixels on this grid (memory / 64)


Region = tuple[int, Window]  # a scene's index and the part of it crops are drawn from


class RandomCropDataset(Dataset):
    """``length`` random crops; each picks a region (by default: a whole scene) with
    probability proportional to its area, so every labelled pixel is equally likely to be
    seen, reads a window of it and crops that. The window is the crop, or the largest square
    a scaled crop may take (``scale_range``): a streamed scene reads only that window.

    ``class_balanced`` p: that share of crops is instead cut around a pixel of a class
    drawn uniformly from the classes present, so rare classes are seen as often as common
    ones (nnU-Net's foreground oversampling, per class).

    ``regions``: where crops may lie, e.g. the training blocks of a spatial split; a crop
    never crosses a region's edge.
    """

    def __init__(
        self,
        items: Sequence[Scene],
        size: int,
        length: int,
        augment: bool,
        scale_range: tuple[float, float] | None = None,
        color_jitter: float = 0.2,
        class_balanced: float = 0.0,
        regions: list[Region] | None = None,
        extra_transform: Callable | None = None,
    ):
        self.items = items
        self.length = length
        self.regions = regions or [
            (k, Window(0, 0, it.width, it.height)) for k, it in enumerate(items)
        ]
        bands = items[0].read(Window(0, 0, 1, 1)).image.shape[0] if items else 3
        self.transform = crop_transform(
            size, augment, scale_range, color_jitter, bands, extra_transform
        )
        areas = torch.tensor([float(w.width * w.height) for _, w in self.regions])
        self.probs = areas / areas.sum()
        self.class_balanced = class_balanced
        # the window a crop is taken from: room for the largest scaled crop
        self.cut = math.ceil(size * (scale_range[1] if augment and scale_range else 1))
        self.class_pixels = _class_pixels(items, self.regions) if class_balanced > 0 else []

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.class_pixels and float(torch.rand(())) < self.class_balanced:
            item = self._around_a_class()
        else:
            scene, region = self.regions[int(torch.multinomial(self.probs, 1).item())]
            item = self.items[scene].read(self._window_in(region))
        image, mask = self.transform(tv_tensors.Image(item.image), tv_tensors.Mask(item.mask))
        return image.as_subclass(torch.Tensor).float(), mask.as_subclass(torch.Tensor).long()

    def _window_in(self, region: Window) -> Window:
        """A random window of side ``cut`` (less where the region is smaller) in ``region``."""
        h, w = min(self.cut, int(region.height)), min(self.cut, int(region.width))
        top = int(torch.randint(int(region.height) - h + 1, ()).item()) if region.height > h else 0
        left = int(torch.randint(int(region.width) - w + 1, ()).item()) if region.width > w else 0
        return Window(region.col_off + left, region.row_off + top, w, h)

    def _around_a_class(self) -> LabelledImage:
        pixels = self.class_pixels[int(torch.randint(len(self.class_pixels), ()))]
        index, y, x = pixels[int(torch.randint(len(pixels), ()))].tolist()
        scene, region = self.regions[index]
        r0, c0 = int(region.row_off), int(region.col_off)
        r1, c1 = r0 + int(region.height), c0 + int(region.width)
        top = min(max(r0, y - self.cut // 2), max(r0, r1 - self.cut))
        left = min(max(c0, x - self.cut // 2), max(c0, c1 - self.cut))
        window = Window(left, top, min(self.cut, c1 - left), min(self.cut, r1 - top))
        return self.items[scene].read(window)


def _class_pixels(items: Sequence[Scene], regions: list[Region]) -> list[torch.Tensor]:
    """Per class present, the (region index, y, x) of its pixels on a CLASS_GRID grid."""
    found: dict[int, list[torch.Tensor]] = {}
    grids: dict[int, torch.Tensor] = {}
    for index, (scene, region) in enumerate(regions):
        if scene not in grids:
            grids[scene] = items[scene].labels_every(CLASS_GRID)
        r0, c0 = -(-int(region.row_off) // CLASS_GRID), -(-int(region.col_off) // CLASS_GRID)
        r1 = -(-int(region.row_off + region.height) // CLASS_GRID)
        c1 = -(-int(region.col_off + region.width) // CLASS_GRID)
        grid = grids[scene][r0:r1, c0:c1]
        for c in grid.unique().tolist():
            if c == IGNORE_INDEX:
                continue
            ys, xs = torch.nonzero(grid == c, as_tuple=True)
            where = torch.stack(
                [torch.full_like(ys, index), (ys + r0) * CLASS_GRID, (xs + c0) * CLASS_GRID], 1
            )
            found.setdefault(c, []).append(where)
    return [torch.cat(found[c]) for c in sorted(found)]


class ResizedDataset(Dataset):
    """Whole images squashed to size x size (the seed notebook's input)."""

    def __init__(
        self, items: list[LabelledImage], size: int, extra_transform: Callable | None = None
    ):
        self.items = items
        self.size = size
        self.extra = extra_transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.items[index]
        image = F.interpolate(
            item.image[None].float(),
            size=(self.size, self.size),
            mode="bilinear",
            align_corners=False,
        )[0]
        mask = F.interpolate(
            item.mask[None, None].float(), size=(self.size, self.size), mode="nearest"
        )[0, 0]
        if self.extra is not None:
            pair = self.extra(tv_tensors.Image(image), tv_tensors.Mask(mask.long()))
            image, mask = (t.as_subclass(torch.Tensor) for t in pair)
        return image.float(), mask.long()


class WholeImageDataset(Dataset):
    """Native-resolution images (or windows of scenes: the validation blocks of a spatial
    split) for validation; batch size 1 since sizes differ. Read when asked, so a streamed
    scene's blocks are never all in memory."""

    def __init__(self, items: Sequence[Scene], windows: Sequence[Window | None] | None = None):
        self.scenes = items
        self.windows = list(windows) if windows is not None else [None] * len(items)
        self.items = LazyItems(self)

    def __len__(self) -> int:
        return len(self.scenes)

    def item(self, index: int) -> LabelledImage:
        scene, window = self.scenes[index], self.windows[index]
        if window is None and isinstance(scene, LabelledImage):
            return scene
        return scene.read(window or Window(0, 0, scene.width, scene.height))

    @property
    def pixels(self) -> int:
        return sum(
            int(w.width * w.height) if w is not None else s.width * s.height
            for s, w in zip(self.scenes, self.windows, strict=True)
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.item(index)
        return item.image.float(), item.mask.long()


class LazyItems(Sequence):
    """The LabelledImages of a WholeImageDataset, each read when indexed."""

    def __init__(self, dataset: WholeImageDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self.dataset.item(i) for i in range(len(self))[index]]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.dataset.item(index % len(self))
