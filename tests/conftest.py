"""Shared fixtures: a tiny dataset in the Kaggle layout, and the real one in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from hypothesis import settings
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import Affine

from aerialseg.data.classes import DUBAI_CLASSES, parse_color
from aerialseg.training.config import resolve_config
from aerialseg.training.run import train

# Property tests: 50 examples each in the suite; bench/mutation.py runs them once per
# mutant, with fewer and always the same (HYPOTHESIS_PROFILE=mutation).
settings.register_profile("default", max_examples=50, deadline=None)
settings.register_profile("mutation", max_examples=10, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO = Path(__file__).resolve().parents[1]
# Modules whose tests are slow by nature (a wheel build, DDP, a browser, QGIS, the docs'
# examples, Ray, whole training runs): marked ``slow``, so that -m "not slow" is a quick
# inner loop. One list here rather than a mark in each file.
SLOW_MODULES = {
    "tests/test_wheel.py",
    "tests/test_docs.py",
    "tests/training/test_ddp.py",
    "tests/training/test_run.py",
    "tests/api/test_page.py",
    "tests/inference/test_qgis.py",
    "tests/inference/test_distributed.py",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.relative_to(REPO).as_posix() in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


SHARED = REPO.parent / "shared"
REAL_DATA = SHARED / "datasets" / "dubai-aerial"
SPLIT_JSON = SHARED / "benchmark" / "split.json"


def class_colours() -> np.ndarray:
    return np.array([parse_color(c.mask_color) for c in DUBAI_CLASSES.classes], dtype=np.uint8)


def synthetic_pair(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """An image whose colour follows its class map (so a model can learn it) and the map."""
    ids = np.zeros((h, w), dtype=np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, h), rng.integers(0, w)
        ids[y : y + h // 3, x : x + w // 3] = rng.integers(0, 5)
    base = np.array(
        [
            [200, 60, 60],
            [180, 160, 120],
            [90, 90, 90],
            [40, 140, 40],
            [30, 60, 200],
            [128, 128, 128],
        ],
        dtype=np.int16,
    )
    image = base[ids] + rng.integers(-20, 21, size=(h, w, 3))
    return np.clip(image, 0, 255).astype(np.uint8), ids


def write_mask(path: Path, ids: np.ndarray, palette: bool = False) -> None:
    """Colour mask of class ids, with a black border row; RGB or palette ("P") PNG."""
    ids = ids.copy()
    black = len(DUBAI_CLASSES.classes)
    ids[0, :] = black  # a black line, as at the borders of the real masks
    colours = np.vstack([class_colours(), [[0, 0, 0]]]).astype(np.uint8)
    if palette:
        mask = Image.fromarray(ids, mode="P")
        mask.putpalette(colours.ravel().tolist())
    else:
        mask = Image.fromarray(colours[ids])
    mask.save(path)


def write_dataset(
    root: Path,
    tiles: int = 2,
    parts: int = 9,
    size: tuple[int, int] = (72, 80),
    palette_tiles: tuple[int, ...] = (2,),
    seed: int = 0,
) -> Path:
    """Write ``root/Tile N/{images,masks}/image_part_00K`` like the Kaggle archive."""
    rng = np.random.default_rng(seed)
    for t in range(1, tiles + 1):
        (root / f"Tile {t}" / "images").mkdir(parents=True)
        (root / f"Tile {t}" / "masks").mkdir(parents=True)
        for k in range(1, parts + 1):
            image, ids = synthetic_pair(rng, *size)
            name = f"image_part_{k:03d}"
            Image.fromarray(image).save(root / f"Tile {t}" / "images" / f"{name}.jpg", quality=95)
            write_mask(
                root / f"Tile {t}" / "masks" / f"{name}.png", ids, palette=t in palette_tiles
            )
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Read-only tiny dataset shared by tests that do not modify it."""
    return write_dataset(tmp_path_factory.mktemp("tiny") / "Semantic segmentation dataset")


@pytest.fixture
def fresh_dataset(tmp_path) -> Path:
    """A tiny dataset a test may damage."""
    return write_dataset(tmp_path / "ds")


def requires_real_data():
    return pytest.mark.skipif(
        not REAL_DATA.is_dir(), reason=f"real dataset not found at {REAL_DATA}"
    )


UTM40N = CRS.from_epsg(32640)  # Dubai's UTM zone
# 0.5 m pixels from (300 km E, 2800 km N); rasterio 1.4's from_origin warns about its own * use
TRANSFORM = Affine(0.5, 0.0, 300_000.0, 0.0, -0.5, 2_800_000.0)


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


# A class table for single-band masks of values 1-5, as GeoTIFF label rasters come.
VALUE_CLASSES = {
    "classes": [
        {"name": name, "mask_value": value}
        for value, name in enumerate(["Building", "Land", "Road", "Vegetation", "Water"], 1)
    ],
    "ignore_values": [0],
}


def write_geotiff_dataset(root: Path, parts: int = 9, size: tuple[int, int] = (72, 80)) -> Path:
    """``root/{images,masks}/scene_K.tif`` as users' own data often comes: 16-bit images with
    blue, green, red and near-infrared bands, 0 as nodata along their last columns, and
    single-band masks of class values 1-5 (0: unlabelled)."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(parts):
        image, ids = synthetic_pair(rng, *size)
        bgrn = np.concatenate([image[..., ::-1], image[..., 1:2]], axis=-1).astype(np.uint16)
        bgrn = bgrn.transpose(2, 0, 1) * 40 + 100  # 12-bit-like values, none 0
        bgrn[:, :, -3:] = 0
        write_geotiff(root / "images" / f"scene_{k}.tif", bgrn, nodata=0)
        values = ids + 1
        values[:2, :] = 0
        write_geotiff(root / "masks" / f"scene_{k}.tif", values[None].astype(np.uint8))
    return root


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
            "ema_decay=0",  # over a few steps an average stays near the random start
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


class BatchRecorder(torch.nn.Module):
    """A 1x1 convolution (an engine of stride 1) that notes how many windows each forward
    pass is given."""

    stride = 1

    def __init__(self, classes: int = 2):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, classes, 1)
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        return self.conv(x)
