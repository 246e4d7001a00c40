"""Training and validation samples: decoded arrays, random crops, augmentation.

Images are decoded once and kept in memory (the Dubai set is ~400 MB decoded): random
crops then cost no I/O. Joint image/mask geometry uses torchvision's v2 transforms, which
treat ``tv_tensors.Mask`` with nearest sampling and leave it out of colour jitter.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from aerialseg.data.classes import IGNORE_INDEX, ClassTable, check_unknown_share, encode_mask
from aerialseg.data.scenes import TRAINING_FLAGS, Flags, LabelledImage, Scene  # noqa: F401
from aerialseg.data.source import DatasetSource
from aerialseg.errors import DatasetError


def load_labelled(
    source: DatasetSource,
    ids: tuple[str, ...] | list[str],
    classes: ClassTable,
    max_unknown: float,
    desc: str = "loading",
    bands: tuple[int, ...] | None = None,
    pixel_size: float | None = None,
    resize_masks: bool = False,
    flags: Flags = Flags(),  # noqa: B008
) -> list[LabelledImage]:
    """Decode images and masks, checking sizes and the share of unknown mask colours or
    values. Nodata pixels of an image are ignored in its mask. ``bands``: the bands of
    raster images to read (1-based; default: RGB, their first three). ``pixel_size``:
    georeferenced images and masks resampled to pixels of that size. ``resize_masks``:
    plain masks of another size than their image resampled to it (nearest). ``flags``:
    how the calling command's user sets these, for its errors."""
    by_id = {p.id: p for p in source.pairs}
    pairs = [by_id[i] for i in ids]
    for pair in pairs:
        problem = source.pair_problem(pair, resize_masks, flags.resize_masks)
        if problem:
            raise DatasetError(problem + source.inspect_hint())
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
