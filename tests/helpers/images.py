"""Synthetic images whose colours follow their class maps, masks in the Dubai colours, and
datasets of them in the Kaggle archive's layout."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from aerialseg.data.classes import DUBAI_CLASSES, parse_color


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


def rgb_scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A (3, H, W) uint8 synthetic scene, as rasterio reads and writes bands."""
    image, _ = synthetic_pair(np.random.default_rng(seed), h, w)
    return image.transpose(2, 0, 1).copy()


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


def jpeg_bytes(h=90, w=110) -> bytes:
    """A synthetic scene as JPEG file bytes, as an upload carries it."""
    buf = io.BytesIO()
    Image.fromarray(rgb_scene(h, w).transpose(1, 2, 0)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def zip_folder(folder: Path, archive: Path) -> Path:
    """``folder`` zipped into ``archive`` under its own name, as the Kaggle download comes."""
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.rglob("*")):
            z.write(path, path.relative_to(folder.parent))
    return archive
