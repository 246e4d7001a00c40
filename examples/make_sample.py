"""Write examples/dubai-sample.tif: a small georeferenced scene for the quick starts.

It is Tile 3's image_part_002 of the Dubai dataset (CC0; a test image of the protocol, so
the bundled model never trained on it), as a JPEG-compressed GeoTIFF. The dataset has no
georeference: the one given here is assumed, so that the scene opens in place in QGIS and
gets areas in m². It lies in UTM zone 40N near Dubai with pixels of 2 m, the ground
resolution estimated for that tile; its position on the map is not the real one.

    python examples/make_sample.py   # reads ../shared/datasets, as the tests do
"""

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SOURCE = (
    REPO.parent
    / "shared/datasets/dubai-aerial/Semantic segmentation dataset/Tile 3/images"
    / "image_part_002.jpg"
)
TARGET = REPO / "examples" / "dubai-sample.tif"
PIXEL_M = 2.0
ORIGIN = (320_000.0, 2_790_000.0)  # UTM 40N, assumed


def main() -> None:
    rgb = np.asarray(Image.open(SOURCE).convert("RGB")).transpose(2, 0, 1)
    profile = {
        "driver": "GTiff",
        "width": rgb.shape[2],
        "height": rgb.shape[1],
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32640",
        "transform": Affine(PIXEL_M, 0, ORIGIN[0], 0, -PIXEL_M, ORIGIN[1]),
        "compress": "jpeg",
        "jpeg_quality": 92,
        "photometric": "ycbcr",
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(TARGET, "w", **profile) as dst:
        dst.write(rgb)
        dst.update_tags(
            SOURCE="Dubai 'Semantic segmentation of aerial imagery' (Humans in the Loop /"
            " MBRSC, CC0), Tile 3 image_part_002",
            GEOREFERENCE="assumed: the dataset has none; pixel size estimated, place not real",
        )
    print(f"wrote {TARGET} ({TARGET.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
