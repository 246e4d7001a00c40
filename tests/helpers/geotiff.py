"""GeoTIFFs with a real CRS and transform, and a dataset of them as users' own data often
comes, with the class table of its single-band masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

from tests.helpers.images import synthetic_pair

UTM40N = CRS.from_epsg(32640)  # Dubai's UTM zone
# 0.5 m pixels from (300 km E, 2800 km N); rasterio 1.4's from_origin warns about its own * use
TRANSFORM = Affine(0.5, 0.0, 300_000.0, 0.0, -0.5, 2_800_000.0)

# A class table for single-band masks of values 1-5, as GeoTIFF label rasters come.
VALUE_CLASSES = {
    "classes": [
        {"name": name, "mask_value": value}
        for value, name in enumerate(["Building", "Land", "Road", "Vegetation", "Water"], 1)
    ],
    "ignore_values": [0],
}


def write_geotiff(
    path: Path, data: np.ndarray, *, nodata=None, crs=UTM40N, transform=TRANSFORM
) -> Path:
    """``data`` (bands, H, W) as a GeoTIFF, by default in UTM 40N at 0.5 m."""
    count, h, w = data.shape
    profile = {"driver": "GTiff", "width": w, "height": h, "count": count, "dtype": data.dtype.name}
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


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
