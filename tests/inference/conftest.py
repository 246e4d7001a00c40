"""Fixtures for prediction: small GeoTIFFs with a real CRS, and a tiny model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.training.config import resolve_config
from aerialseg.training.run import train
from tests.conftest import synthetic_pair

UTM40N = CRS.from_epsg(32640)  # Dubai's UTM zone
TRANSFORM = from_origin(300_000.0, 2_800_000.0, 0.5, 0.5)  # 0.5 m pixels


def write_geotiff(
    path: Path, data: np.ndarray, *, nodata=None, crs=UTM40N, transform=TRANSFORM
) -> Path:
    count, h, w = data.shape
    profile = {"driver": "GTiff", "width": w, "height": h, "count": count, "dtype": data.dtype.name}
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def rgb_scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    image, _ = synthetic_pair(np.random.default_rng(seed), h, w)
    return image.transpose(2, 0, 1).copy()


@pytest.fixture(scope="session")
def tiny_model(tiny_dataset, tmp_path_factory) -> Path:
    """A seed-unet of width 4 trained for a few seconds on the synthetic tiles: a real
    convolutional network whose predictions vary with the image, with 64 px windows."""
    cfg = resolve_config(
        "default",
        None,
        [
            "model=seed-unet",
            "pretrained=false",
            "base_width=4",
            "crop_size=64",
            "window=64",
            "overlap=0.5",
            "batch_size=8",
            "samples_per_epoch=64",
            "max_epochs=4",
            "lr=0.01",
            "accelerator=cpu",
        ],
    )
    run = tmp_path_factory.mktemp("model") / "run"
    return train(cfg, tiny_dataset, run, classes=DUBAI_CLASSES)


@pytest.fixture
def geotiff(tmp_path) -> Path:
    return write_geotiff(tmp_path / "scene.tif", rgb_scene(150, 200))
