"""LightningDataModule over a dataset's scenes (``data/catalog.py``), a split and a class
table."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
import torch
from rasterio.windows import Window
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from aerialseg.data.catalog import Catalog
from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.crops import RandomCropDataset, ResizedDataset, WholeImageDataset
from aerialseg.data.scenes import TRAINING_FLAGS, UNKNOWN_SAMPLE_STEP, LabelledImage, Reading
from aerialseg.data.splits import Split
from aerialseg.data.transforms import CheckedTransform
from aerialseg.errors import ConfigError, DatasetError
from aerialseg.files import physical_memory
from aerialseg.training.config import TrainConfig


class SegmentationDataModule(L.LightningDataModule):
    """``extra_transform``: a torchvision v2 transform of each training (image, mask) pair,
    after the crop and the built-in augmentation. ``pseudo``: images labelled by a model
    (training/pseudo.py) that training crops are drawn from as well."""

    def __init__(
        self,
        catalog: Catalog,
        split: Split,
        cfg: TrainConfig,
        extra_transform: Callable | None = None,
        pseudo: Sequence[LabelledImage] = (),
    ):
        super().__init__()
        self.catalog, self.split, self.cfg = catalog, split, cfg
        checked = CheckedTransform(extra_transform) if extra_transform is not None else None
        self.extra_transform = checked
        self.pseudo = list(pseudo)
        self.train_set: Dataset | None = None
        self.val_set: WholeImageDataset | None = None

    def setup(self, stage: str) -> None:
        if self.train_set is not None:
            return
        cfg = self.cfg
        reading = Reading(
            cfg.band_tuple, cfg.max_unknown, cfg.resize_masks, cfg.cache_megabytes, TRAINING_FLAGS
        )
        train, train_parts = self.catalog.split_scenes(self.split, "train", reading)
        val, val_parts = self.catalog.split_scenes(self.split, "val", reading)
        val_parts = val_parts[: cfg.val_images]  # None: all
        if cfg.input_mode == "resize":
            if not all(isinstance(s, LabelledImage) for s in train) or self.split.blocks:
                raise ConfigError(
                    "input_mode=resize squashes whole images: it needs images that fit in"
                    " memory and a whole-image split; use input_mode=crop for large scenes"
                )
            self.train_set = ResizedDataset(train, cfg.resize_to, self.extra_transform)  # type: ignore[arg-type]
        else:
            scales = (cfg.scale_range[0], cfg.scale_range[1]) if cfg.scale_range else None
            regions = self.catalog.regions(self.split, "train")
            if regions is None and self.split.blocks is not None:
                regions = [(k, w) for k, w in train_parts]
            if regions is not None:  # and the pseudo-labelled images, whole
                for k, image in enumerate(self.pseudo, start=len(train)):
                    regions.append((k, Window(0, 0, image.width, image.height)))
            self.train_set = RandomCropDataset(
                [*train, *self.pseudo],
                cfg.crop_size,
                cfg.samples_per_epoch,
                cfg.augment,
                scales,
                cfg.color_jitter,
                cfg.class_balanced,
                regions,
                self.extra_transform,
            )
        self.val_set = WholeImageDataset([val[k] for k, _ in val_parts], [w for _, w in val_parts])
        if isinstance(self.train_set, RandomCropDataset):
            check_labelled(self.train_set.items, self.train_set.regions)
        else:
            check_labelled(train, [(k, None) for k in range(len(train))])
        if self.extra_transform is not None:  # its ConfigError here, in one line, not from
            with torch.random.fork_rng():  # a loader's worker; the run's draws unchanged
                self.train_set[0]

    def crop_padding_note(self) -> str | None:
        """A note where ``crop_size`` is larger than every training image or block: each
        crop is then padded with ignored pixels, time spent on nothing. ConfigError where
        a batch of crops would hold more than half this machine's memory (a review:
        crop_size=100000 asked for 119 GB, a traceback after the run folder was written)."""
        if not isinstance(self.train_set, RandomCropDataset):
            return None
        side = max(min(int(w.height), int(w.width)) for _, w in self.train_set.regions)
        crop, batch = self.cfg.crop_size, self.cfg.batch_size
        batch_bytes = batch * (self.cfg.in_channels + 1) * crop * crop * 4  # float32 + mask
        if batch_bytes > physical_memory() / 2:
            raise ConfigError(
                f"crop_size={crop}: a batch of {batch} crops would hold"
                f" {batch_bytes / 2**30:,.0f} GiB, more than half this machine's memory; the"
                f" largest square in any training image or block is {side} px"
            )
        if side >= crop:
            return None
        # a size that crop_size takes (a review: "at most 16 fits" named one it refuses)
        multiple = self.cfg.size_multiple
        fit = side // multiple * multiple
        advice = (
            f"crop_size={fit} fits"
            if fit
            else f"crops are {multiple} px at least: give blocks or images of {multiple} px or more"
        )
        return (
            f"note: crop_size={crop} is larger than every training image or block (the largest"
            f" square in one is {side} px): each crop is padded with ignored pixels; {advice}"
        )

    def _loader(self, dataset, batch_size: int, shuffle: bool) -> DataLoader:
        workers = self.cfg.num_workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=workers,
            persistent_workers=workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        # Random crops are random already; resized whole images need shuffling.
        return self._loader(self.train_set, self.cfg.batch_size, self.cfg.input_mode == "resize")

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, 1, False)


def check_labelled(scenes: Sequence, regions: Sequence[tuple[int, Window | None]]) -> None:
    """Refuse training scenes without a labelled pixel in their regions (a review: masks
    all nodata trained to a loss of 0 and wrote a model of nothing). Decoded scenes are
    looked at whole, streamed ones every UNKNOWN_SAMPLE_STEP px, until a label is found."""
    seen: dict[int, tuple[int, Tensor]] = {}
    for k, window in regions:
        if k not in seen:
            step = 1 if isinstance(scenes[k], LabelledImage) else UNKNOWN_SAMPLE_STEP
            seen[k] = (step, scenes[k].labels_every(step) != IGNORE_INDEX)
        step, labelled = seen[k]
        if window is not None:  # the samples inside it
            top, left = -(-int(window.row_off) // step), -(-int(window.col_off) // step)
            bottom = -(-int(window.row_off + window.height) // step)
            right = -(-int(window.col_off + window.width) // step)
            labelled = labelled[top:bottom, left:right]
        if labelled.any():
            return
    raise DatasetError(
        "no labelled pixel in the training images: every pixel of their masks is nodata,"
        " an ignore value or colour, or outside the labelled area; check the masks against"
        " the class table with aerialseg data inspect"
    )
