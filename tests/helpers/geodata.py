"""Purpose-built georeferenced data: a UTM scene whose colours follow class polygons, and
those polygons written in WGS84 (another CRS than the scene's) as GeoPackage or GeoJSON."""

from __future__ import annotations

import json
from pathlib import Path

import fiona
import numpy as np
import rasterio
import rasterio.features
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping

from tests.helpers.images import class_colours

UTM = CRS.from_epsg(32640)  # Dubai's UTM zone
ORIGIN = (300_000.0, 2_790_000.0)  # left, top in UTM metres
PIXEL = 0.5
POLYGON_CLASSES = {
    "classes": [
        {"name": "Building", "display_color": "#D0021B"},
        {"name": "Road", "mask_value": 7, "display_color": "#DE597F"},
        {"name": "Water", "display_color": "#50E3C2"},
        {"name": "Land", "background": True, "display_color": "#F5A623"},
    ]
}


def scene_transform(origin=ORIGIN) -> Affine:
    return Affine(PIXEL, 0, origin[0], 0, -PIXEL, origin[1])


def class_boxes(height: int, width: int, seed: int = 0, count: int = 40, origin=ORIGIN):
    """Random boxes in UTM over a scene of that size, each with a class name (Building,
    Road, Water); later boxes may overlap earlier ones."""
    rng = np.random.default_rng(seed)
    left, top = origin
    names = ["Building", "Road", "Water"]
    boxes = []
    for _ in range(count):
        w, h = rng.integers(8, max(9, width // 4), 2) * PIXEL
        # edges on pixel edges, never through a pixel centre where rounding decides
        x = left + rng.integers(-4, width) * PIXEL
        y = top - rng.integers(-4, height) * PIXEL
        boxes.append((box(x, y - h, x + w, y), names[int(rng.integers(3))]))
    return boxes


def class_ids_of(boxes, height: int, width: int, transform: Affine) -> np.ndarray:
    """The scene's class ids: the table's order (Building 0, Road 1, Water 2), Land 3 where
    no box lies: what rasterize over the whole scene gives."""
    ids = {"Building": 0, "Road": 1, "Water": 2}
    shapes = [(geom, ids[name]) for geom, name in boxes]
    return rasterio.features.rasterize(
        shapes, out_shape=(height, width), transform=transform, fill=3, dtype="uint8"
    )


def write_scene(path: Path, ids: np.ndarray, transform: Affine, tiled: bool = True) -> Path:
    """A 3-band uint8 GeoTIFF in UTM whose colour follows ``ids`` (plus noise)."""
    rng = np.random.default_rng(1)
    colours = class_colours()[:4].astype(np.int16)
    image = colours[ids].transpose(2, 0, 1) + rng.integers(-20, 21, (3, *ids.shape))
    profile = dict(
        driver="GTiff",
        width=ids.shape[1],
        height=ids.shape[0],
        count=3,
        dtype="uint8",
        crs=UTM,
        transform=transform,
    )
    if tiled:
        profile.update(tiled=True, blockxsize=64, blockysize=64)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.clip(image, 0, 255).astype(np.uint8))
    return path


WGS84 = CRS.from_epsg(4326)


def write_polygons(
    path: Path, boxes, crs: CRS = WGS84, field="class", driver: str = "GPKG"
) -> Path:
    """The boxes, reprojected to ``crs``, with their class name in ``field``."""
    schema = {"geometry": "Polygon", "properties": {field: "str"}}
    with fiona.open(path, "w", driver=driver, crs=crs.to_wkt(), schema=schema) as dst:
        for geom, name in boxes:
            moved = transform_geom(UTM, crs, mapping(geom))
            dst.write({"geometry": moved, "properties": {field: name}})
    return path


def write_geojson(path: Path, boxes, wgs84: bool = True, field="class") -> Path:
    """An RFC 7946 GeoJSON (no 'crs' member): WGS84 coordinates, or with ``wgs84=False``
    the UTM ones a careless export leaves in (not degrees)."""
    features = []
    for geom, name in boxes:
        g = transform_geom(UTM, CRS.from_epsg(4326), mapping(geom)) if wgs84 else mapping(geom)
        features.append({"type": "Feature", "geometry": g, "properties": {field: name}})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def write_area(path: Path, geom, crs: CRS = UTM) -> Path:
    schema = {"geometry": "Polygon", "properties": {}}
    with fiona.open(path, "w", driver="GPKG", crs=crs.to_wkt(), schema=schema) as dst:
        dst.write({"geometry": mapping(geom), "properties": {}})
    return path
