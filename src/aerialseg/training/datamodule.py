"""LightningDataModule over a dataset source, a split and a class table."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, Dataset

from aerialseg.data.classes import ClassTable
from aerialseg.data.samples import (
    TRAINING_FLAGS,
    LabelledImage,
    RandomCropDataset,
    ResizedDataset,
    WholeImageDataset,
    load_labelled,
)
from aerialseg.data.source import DatasetSource
from aerialseg.data.splits import Split
from aerialseg.training.config import TrainConfig


class SegmentationDataModule(L.LightningDataModule):
    def __init__(self, source: DatasetSource, split: Split, classes: ClassTable, cfg: TrainConfig):
        super().__init__()
        self.source, self.split, self.classes, self.cfg = source, split, classes, cfg
        self.train_set: Dataset | None = None
        self.val_set: WholeImageDataset | None = None

    def setup(self, stage: str) -> None:
        if self.train_set is not None:
            return
        cfg = self.cfg

        def load(ids: tuple[str, ...], desc: str) -> list[LabelledImage]:
            return load_labelled(
                self.source,
                ids,
                self.classes,
                cfg.max_unknown,
                desc,
                cfg.band_tuple,
                cfg.pixel_size,
                cfg.resize_masks,
                TRAINING_FLAGS,
            )

        train, val = load(self.split.train, "train images"), load(self.split.val, "val images")
        if cfg.input_mode == "resize":
            self.train_set = ResizedDataset(train, cfg.resize_to)
        else:
            scales = (cfg.scale_range[0], cfg.scale_range[1]) if cfg.scale_range else None
            self.train_set = RandomCropDataset(
                train,
                cfg.crop_size,
                cfg.samples_per_epoch,
                cfg.augment,
                scales,
                cfg.color_jitter,
                cfg.class_balanced,
            )
        self.val_set = WholeImageDataset(val)

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
