"""vector: one polygon per region of a class raster, measured in map units, nodata left out."""

from __future__ import annotations

import warnings

import fiona
import numpy as np
import pytest
from rasterio.errors import NotGeoreferencedWarning

from aerialseg.data.classes import DUBAI_CLASSES, ClassTable
from aerialseg.inference.predict import NODATA
from aerialseg.inference.vector import polygonize
from tests.conftest import VALUE_CLASSES, write_geotiff


def regions() -> np.ndarray:
    """A 20 x 30 class raster: Land around a Building block (4 x 5 px), two separate Water
    pixels, a Road strip of 3 px and a corner of no data."""
    ids = np.full((20, 30), 1, dtype=np.uint8)
    ids[2:6, 3:8] = 0
    ids[10, 10] = ids[15, 20] = 4
    ids[18, 0:3] = 2
    ids[:4, 24:] = NODATA
    return ids


def features(path) -> list[dict]:
    with fiona.open(path) as src:
        return [{"props": dict(f["properties"]), "geometry": f["geometry"]} for f in src]


@pytest.mark.parametrize("fmt, suffix", [("geojson", ".geojson"), ("gpkg", ".gpkg")])
def test_one_polygon_per_region_with_its_class_and_area(tmp_path, fmt, suffix):
    raster = write_geotiff(tmp_path / "c.tif", regions()[None], nodata=NODATA)
    path = polygonize(raster, DUBAI_CLASSES, tmp_path / "scene", fmt)
    assert path == tmp_path / f"scene_polygons{suffix}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif", f"scene_polygons{suffix}"]
    with fiona.open(path) as src:
        assert src.crs.to_epsg() == 32640 and src.driver == {"geojson": "GeoJSON"}.get(fmt, "GPKG")
        assert fiona.listlayers(path) == ["polygons"] or fmt == "geojson"
    found = sorted(
        (f["props"]["class"], f["props"]["class_id"], f["props"]["area"]) for f in features(path)
    )
    # 0.5 m pixels: 0.25 m² each; no polygon where nothing was predicted
    assert found == [
        ("Building", 0, 20 * 0.25),
        ("Land", 1, (600 - 20 - 2 - 3 - 4 * 6) * 0.25),
        ("Road", 2, 3 * 0.25),
        ("Water", 4, 0.25),
        ("Water", 4, 0.25),
    ]


def test_min_area_keeps_regions_of_exactly_that_area_and_simplify_drops_vertices(tmp_path):
    ids = np.full((40, 40), 1, dtype=np.uint8)
    for k in range(12):  # a staircase: many vertices a metre of tolerance smooths away
        ids[k * 3 : k * 3 + 3, : 3 + k * 3] = 0
    ids[38, 38:40] = 4  # 2 px, 0.5 m²
    ids[0, 39] = 2  # 1 px, 0.25 m², in the first row: polygons after it are still written
    raster = write_geotiff(tmp_path / "c.tif", ids[None])
    plain = features(polygonize(raster, DUBAI_CLASSES, tmp_path / "a", "geojson"))
    kept = features(polygonize(raster, DUBAI_CLASSES, tmp_path / "b", "geojson", min_area=0.5))
    assert {f["props"]["class"] for f in plain} == {"Building", "Land", "Road", "Water"}
    assert {f["props"]["class"] for f in kept} == {"Building", "Land", "Water"}
    smooth = features(polygonize(raster, DUBAI_CLASSES, tmp_path / "c", "geojson", simplify=1.0))

    def vertices(found: list[dict], name: str) -> int:
        (building,) = [f for f in found if f["props"]["class"] == name]
        return sum(len(ring) for ring in building["geometry"]["coordinates"])

    assert vertices(smooth, "Building") < vertices(plain, "Building") / 2
    # simplifying keeps each region's topology: the 1 and 2 px regions do not vanish
    assert {f["props"]["class"] for f in smooth} == {"Building", "Land", "Road", "Water"}
    # simplified areas are those of the simplified shapes, close to the pixels' own
    building = next(f for f in smooth if f["props"]["class"] == "Building")
    assert building["props"]["area"] == pytest.approx((ids == 0).sum() * 0.25, rel=0.1)


def test_a_raster_of_mask_values_gives_the_classes_of_those_values(tmp_path):
    table = ClassTable.from_dict(VALUE_CLASSES)  # Building 1, Land 2, ..., Water 5
    codes, nodata, _ = table.raster_coding()
    values = codes[regions()].astype(np.uint8)
    raster = write_geotiff(tmp_path / "c.tif", values[None], nodata=nodata)
    found = features(polygonize(raster, table, tmp_path / "scene", "geojson"))
    assert sorted({(f["props"]["class"], f["props"]["class_id"]) for f in found}) == [
        ("Building", 0),
        ("Land", 1),
        ("Road", 2),
        ("Water", 4),
    ]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # writing it
def test_a_plain_image_gives_polygons_in_pixels_without_a_warning(tmp_path):
    raster = write_geotiff(tmp_path / "c.tif", regions()[None], nodata=NODATA, crs=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotGeoreferencedWarning)
        path = polygonize(raster, DUBAI_CLASSES, tmp_path / "scene", "gpkg")
    with fiona.open(path) as src:  # GeoPackage: GeoJSON readers assume WGS 84 when none
        assert not src.crs
    building = next(f for f in features(path) if f["props"]["class"] == "Building")
    assert building["props"]["area"] == 20  # pixels
