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
        " in one is 72 px): each crop is padded with ignored pixels; crop_size=64 fits"
    )  # 72 is no multiple of 32: crop_size=72 is refused (a review)
    downsampled = _datamodule(
        tiny_dataset, "crop_size=192", "downsample=3", "resize_to=192", "window=576"
    ).crop_padding_note()
    assert downsampled.endswith("crops are 96 px at least: give blocks or images of 96 px or more")
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


def test_training_images_without_a_labelled_pixel_are_refused_before_anything_is_written(
    tmp_path, capsys
):
    """A review: masks all nodata trained to a loss of -0.000, calibrated on an unlabelled
    image and wrote a model.pt of nothing, with exit 0."""
    from PIL import Image

    from aerialseg.cli import main
    from tests.helpers.images import write_dataset

    data = write_dataset(tmp_path / "ds", tiles=1, palette_tiles=())
    for mask in (data / "Tile 1" / "masks").iterdir():
        Image.new("RGB", (80, 72)).save(mask)  # black: an ignore colour of the Dubai table
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), *FAST]) == 2
    assert capsys.readouterr().err == (
        "aerialseg: error: no labelled pixel in the training images: every pixel of their"
        " masks is nodata, an ignore value or colour, or outside the labelled area; check the"
        " masks against the class table with aerialseg data inspect\n"
    )
    assert not run.exists()


def test_labels_are_looked_for_in_the_training_regions_only():
    """A scene labelled only outside the blocks it trains on has nothing to learn there.
    Decoded scenes are looked at pixel by pixel, streamed ones every UNKNOWN_SAMPLE_STEP."""
    import torch
    from rasterio.windows import Window

    from aerialseg.data.classes import IGNORE_INDEX
    from aerialseg.data.scenes import UNKNOWN_SAMPLE_STEP, LabelledImage
    from aerialseg.errors import DatasetError
    from aerialseg.training.datamodule import check_labelled

    mask = torch.full((40, 40), IGNORE_INDEX, dtype=torch.uint8)
    mask[16, 24] = 2  # one labelled pixel
    decoded = LabelledImage("a", torch.zeros((3, 40, 40), dtype=torch.uint8), mask)

    class Streamed:  # a scene read by windows: its labels sampled every step px
        def labels_every(self, step):
            assert step == UNKNOWN_SAMPLE_STEP == 8
            return mask[::step, ::step]

    for scene in (decoded, Streamed()):
        check_labelled([scene], [(0, None)])
        check_labelled([scene], [(0, Window(0, 0, 40, 16)), (0, Window(24, 16, 1, 1))])
        for missed in (Window(0, 0, 40, 16), Window(25, 0, 15, 40), Window(0, 17, 40, 23)):
            with pytest.raises(DatasetError, match="^no labelled pixel in the training images"):
                check_labelled([scene], [(0, missed)])
