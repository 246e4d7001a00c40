"""Training and validation samples: decoded arrays, random crops, augmentation.

Images are decoded once and kept in memory (the Dubai set is ~400 MB decoded): random
crops then cost no I/O. Joint image/mask geometry uses torchvision's v2 transforms, which
treat ``tv_tensors.Mask`` with nearest sampling and leave it out of colour jitter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from rasterio.windows import Window
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from tqdm import tqdm

from aerialseg.data.classes import IGNORE_INDEX, ClassTable, check_unknown_share, encode_mask
from aerialseg.data.source import DatasetSource


@dataclass(frozen=True)
class Flags:
    """How a command's user sets what ``load_labelled``'s errors suggest changing: the
    evaluate command's flags by default, the training settings in ``TRAINING_FLAGS``."""

    max_unknown: str = "--max-unknown"
    resize_masks: str = "--resize-masks"
    bands: str = "bands="  # evaluate reads the model's bands: only training sets them


TRAINING_FLAGS = Flags(max_unknown="max_unknown=", resize_masks="--resize-masks")


@dataclass
class LabelledImage:
    """A decoded image and its labels: also a scene held in memory (data/scenes.py), whose
    windows are slices."""

    id: str
    image: torch.Tensor  # (bands, H, W) uint8: RGB, or the bands the config names
    mask: torch.Tensor  # (H, W) uint8 class ids, IGNORE_INDEX where unlabelled

    @property
    def height(self) -> int:
        return int(self.mask.shape[-2])

    @property
    def width(self) -> int:
        return int(self.mask.shape[-1])

    def read(self, window: Window) -> LabelledImage:
        rows, cols = window.toslices()
        return LabelledImage(self.id, self.image[:, rows, cols], self.mask[rows, cols])

    def labels_every(self, step: int) -> torch.Tensor:
        return self.mask[::step, ::step]


def load_labelled(
    source: DatasetSource,
    ids: tuple[str, ...] | list[str],
    classes: ClassTable,
    max_unknown: float,
    desc: str = "loading",
    bands: tuple[int, ...] | None = None,
    pixel_size: float | None = None,
    resize_masks: bool = False,
    flags: Flags = Flags(),
) -> list[LabelledImage]:
    """Decode images and masks, checking sizes and the share of unknown mask colours or
    values. Nodata pixels of an image are ignored in its mask. ``bands``: the bands of
    raster images to read (1-based; default: RGB, their first three). ``pixel_size``:
    georeferenced images and masks resampled to pixels of that size. ``resize_masks``:
    plain masks of another size than their image resampled to it (nearest). ``flags``:
    how the calling command's user sets these, for its errors."""
    by_id = {p.id: p for p in source.pairs}
    pairs = [by_id[i] for i in ids]
    source.check_sizes(pairs, resize_masks, flags.resize_masks)
    out = []
    # disable=None: no bar where stderr is no terminal (a log file would get every redraw)
    for pair in tqdm(pairs, desc=desc, unit="img", leave=False, disable=None):
        size = source.image_size(pair.id) if resize_masks else None
        mask = source.read_mask(pair, classes.by_value, pixel_size, size)
        encoded = encode_mask(mask, classes, pair.mask)
        check_unknown_share(encoded, pair.mask, max_unknown, flags.max_unknown)
        values, valid = source.read_image(pair, bands, flags.bands, pixel_size)
        if valid is not None:
            encoded.ids[~valid] = IGNORE_INDEX
        image = torch.from_numpy(values).permute(2, 0, 1)
        out.append(LabelledImage(pair.id, image, torch.from_numpy(encoded.ids)))
    return out


class RandomRot90(v2.Transform):
    """Rotate by a random multiple of 90 degrees: exact, unlike interpolated rotation."""

    def make_params(self, flat_inputs: list) -> dict:
        return {"k": int(torch.randint(4, ()).item())}

    def transform(self, inpt, params: dict):
        if params["k"] == 0:
            return inpt
        # torch ops return plain tensors: wrapped again, an image stays an Image for the
        # transforms after it (BandJitter skipped what was no longer one)
        return tv_tensors.wrap(torch.rot90(inpt, params["k"], dims=(-2, -1)), like=inpt)


class RandomScaledCrop(v2.Transform):
    """A square of ``size * s`` px, s log-uniform in ``scale_range``, resized to ``size``:
    the network sees the scene at scales around its native one. The square is at most the
    image's shorter side, so no padding is needed for it."""

    def __init__(self, size: int, scale_range: tuple[float, float]):
        super().__init__()
        self.size = size
        self.log_range = (math.log(scale_range[0]), math.log(scale_range[1]))

    def make_params(self, flat_inputs: list) -> dict:
        height, width = v2.query_size(flat_inputs)
        scale = math.exp(float(torch.empty(()).uniform_(*self.log_range)))
        side = max(1, min(round(self.size * scale), height, width))
        top = int(torch.randint(height - side + 1, ()).item())
        left = int(torch.randint(width - side + 1, ()).item())
        return {"top": top, "left": left, "side": side}

    def transform(self, inpt, params: dict):
        side = params["side"]
        out = v2.functional.crop(inpt, params["top"], params["left"], side, side)
        if side == self.size:
            return out
        # Masks resize with nearest sampling (tv_tensors.Mask), images with antialiasing.
        return v2.functional.resize(out, [self.size, self.size], antialias=True)


class BandJitter(v2.Transform):
    """Brightness, contrast and saturation jitter for images of any band count, which
    torchvision's ColorJitter (1 or 3 channels) does not take. Its RGB definitions with the
    mean over bands in place of luminance: brightness scales every band, contrast blends
    with the image's mean value, saturation with each pixel's mean over bands."""

    def __init__(self, strength: float):
        super().__init__()
        self.strength = strength

    def make_params(self, flat_inputs: list) -> dict:
        factors = torch.empty(3).uniform_(1 - self.strength, 1 + self.strength)
        return dict(zip(("brightness", "contrast", "saturation"), factors.tolist(), strict=True))

    def transform(self, inpt, params: dict):
        if not isinstance(inpt, tv_tensors.Image):
            return inpt  # masks keep their labels
        x = inpt.as_subclass(torch.Tensor).float() * params["brightness"]
        x = x.clamp(0, 255)
        x = torch.lerp(x.mean(), x, params["contrast"]).clamp(0, 255)
        x = torch.lerp(x.mean(0, keepdim=True), x, params["saturation"]).clamp(0, 255)
        return tv_tensors.wrap(x.round().to(inpt.dtype), like=inpt)


def crop_transform(
    size: int,
    augment: bool,
    scale_range: tuple[float, float] | None = None,
    color_jitter: float = 0.2,
    bands: int = 3,
    extra: Callable | None = None,
) -> v2.Compose:
    """Crop (and with ``augment`` flip, turn, rescale and jitter) an image/mask pair, then
    apply ``extra`` (a user's torchvision v2 transform of the (image, mask) pair) if given.

    ``color_jitter`` is the brightness, contrast and saturation range (0.2: factors in
    0.8..1.2); 0 leaves colours alone. Jitter comes last, so geometry is drawn first.
    ``bands``: how many the images have; RGB ones get torchvision's jitter, others
    BandJitter.
    """
    steps: list = []
    if augment and scale_range is not None:
        steps.append(RandomScaledCrop(size, scale_range))
    # Pads a crop of an image smaller than ``size`` (masks with the ignore index).
    steps.append(
        v2.RandomCrop(
            size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}
        )
    )
    if augment:
        steps += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), RandomRot90()]
        if color_jitter > 0:
            # No hue jitter: on 512 px crops it cost 12 ms a crop, 5x the rest of the
            # jitter, about a tenth of a CPU training step.
            if bands == 3:
                strength = {k: color_jitter for k in ("brightness", "contrast", "saturation")}
                steps.append(v2.ColorJitter(**strength))
            else:
                steps.append(BandJitter(color_jitter))
    if extra is not None:
        steps.append(extra)
    return v2.Compose(steps)


CLASS_GRID = 8  # class_balanced crops look up class pixels on this grid (memory / 64)


class Scene(Protocol):
    """What crops are cut from: a LabelledImage in memory, or a GeoScene read per window."""

    id: str

    @property
    def height(self) -> int: ...

    @property
    def width(self) -> int: ...

    def read(self, window: Window) -> LabelledImage: ...

    def labels_every(self, step: int) -> torch.Tensor: ...


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
