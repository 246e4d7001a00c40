"""The training data module: what it tells a user about the crops it will cut."""

from __future__ import annotations

import pytest

from aerialseg.data.catalog import open_catalog
from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.data.splits import make_split
from aerialseg.errors import ConfigError
from aerialseg.training.config import resolve_config
from aerialseg.training.datamodule import SegmentationDataModule
from tests.helpers.models import FAST


def _datamodule(dataset, *settings: str) -> SegmentationDataModule:
    catalog = open_catalog(dataset, DUBAI_CLASSES)
    cfg = resolve_config(overrides=[*FAST, *settings])
    datamodule = SegmentationDataModule(catalog, make_split(catalog.entries), cfg)
    datamodule.setup("fit")
    return datamodule


def test_crops_larger_than_every_image_are_noted(tiny_dataset):
    """The tiny dataset's images are 72 x 80 px: 96 px crops are a quarter padding."""
    note = _datamodule(tiny_dataset, "crop_size=96").crop_padding_note()
    assert note == (
        "note: crop_size=96 is larger than every training image or block (the largest square"
        " in one is 72 px): each crop is padded with ignored pixels; a crop_size of at most 72"
        " fits"
    )
    assert _datamodule(tiny_dataset, "crop_size=64").crop_padding_note() is None
    squashed = _datamodule(tiny_dataset, "input_mode=resize", "resize_to=96")
    assert squashed.crop_padding_note() is None  # whole images, resized: nothing padded
    assert _datamodule(tiny_dataset, "crop_size=2048").crop_padding_note()  # padded, runs
    # a review: 100000 asked for 119 GB, a traceback after the run folder was written
    with pytest.raises(ConfigError) as err:
        _datamodule(tiny_dataset, "crop_size=100000").crop_padding_note()
    assert str(err.value) == (
        "crop_size=100000: a batch of 4 crops would hold 596 GiB, more than half this"
        " machine's memory; the largest square in any training image or block is 72 px"
    )
