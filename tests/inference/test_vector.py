"""vector: polygons whose class_id is the raster value, RFC 7946 GeoJSON, GeoPackage in the
input CRS with its QGIS style, and the default min-area that drops specks."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET

import fiona
import numpy as np
import pytest
import rasterio
from rasterio.transform import rowcol
from rasterio.warp import transform as reproject_points
from shapely.geometry import shape

from aerialseg.data.classes import DUBAI_CLASSES, ClassTable
from aerialseg.inference.vector import MIN_AREA_PIXELS, polygonize
from tests.conftest import TRANSFORM, UTM40N, VALUE_CLASSES, write_geotiff

VALUES = ClassTable.from_dict(VALUE_CLASSES)  # Building 1, Land 2, ... Water 5


def class_raster(tmp_path, table: ClassTable, crs=UTM40N, size=(40, 50)):
    """A class raster in ``table``'s coding: Land, a Road band, a Water block, and
    specks of Building of 1, 3 and 4 pixels; nodata in a corner."""
    codes, nodata, dtype = table.raster_coding()
    ids = np.full(size, 1, dtype=np.uint8)  # Land
    ids[:, 20:26] = 2  # Road
    ids[25:, 30:] = 4  # Water
    ids[5, 5] = 0  # one pixel
    ids[10, 5:8] = 0  # three in a row
    ids[15:17, 10:12] = 0  # a 2x2 block
    ids[:4, 46:] = 255  # no data
    data = codes[ids].astype(dtype)
    path = write_geotiff(tmp_path / "c.tif", data[None], nodata=nodata, crs=crs)
    return path, data, nodata


def features(path, layer=None):
    with fiona.open(path, layer=layer) as src:
        return [dict(f["properties"]) | {"geometry": shape(f["geometry"])} for f in src], src.crs


def test_class_id_is_the_raster_value_under_the_polygon(tmp_path):
    path, data, nodata = class_raster(tmp_path, VALUES)
    written = polygonize(path, VALUES, tmp_path / "v", "gpkg", min_area=0)
    found, crs = features(written["polygons"], "polygons")
    assert crs == UTM40N  # the GeoPackage keeps the input's CRS
    for f in found:
        point = f["geometry"].representative_point()
        row, col = rowcol(TRANSFORM, point.x, point.y)
        assert f["class_id"] == data[row, col] != nodata
        assert (
            f["class"] == VALUES.names[[c.mask_value for c in VALUES.classes].index(f["class_id"])]
        )
    assert {f["class_id"] for f in found} == set(np.unique(data)) - {nodata}
    # all pixels but nodata are covered when min_area is 0
    assert sum(f["area"] for f in found) == pytest.approx(((data != nodata).sum()) * 0.25)


def test_default_min_area_drops_specks_and_zero_keeps_them(tmp_path):
    path, _, _ = class_raster(tmp_path, DUBAI_CLASSES)
    every = features(
        polygonize(path, DUBAI_CLASSES, tmp_path / "all", "gpkg", min_area=0)["polygons"]
    )[0]
    default = features(polygonize(path, DUBAI_CLASSES, tmp_path / "dflt", "gpkg")["polygons"])[0]
    pixels = sorted(round(f["area"] / 0.25) for f in every if f["class"] == "Building")
    assert pixels == [1, 3, 4]
    kept = sorted(round(f["area"] / 0.25) for f in default if f["class"] == "Building")
    assert kept == [p for p in pixels if p >= MIN_AREA_PIXELS] == [4]
    assert len(default) == len(every) - 2  # the others are large regions: all kept


def test_geojson_follows_rfc_7946(tmp_path):
    path, data, nodata = class_raster(tmp_path, VALUES)
    written = polygonize(path, VALUES, tmp_path / "v", "geojson", min_area=0)
    doc = json.loads(written["polygons"].read_text())
    assert "crs" not in doc and doc["type"] == "FeatureCollection"
    with rasterio.open(path) as src:
        west, south, east, north = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    for feature in doc["features"]:
        poly = shape(feature["geometry"])
        lon, lat = poly.exterior.coords.xy
        assert west - 1e-6 <= min(lon) and max(lon) <= east + 1e-6
        assert south - 1e-6 <= min(lat) and max(lat) <= north + 1e-6
        assert poly.exterior.is_ccw  # RFC 7946: exterior rings counterclockwise
        # the class under the polygon, found back on the input grid
        point = poly.representative_point()
        xs, ys = reproject_points("EPSG:4326", UTM40N, [point.x], [point.y])
        row, col = rowcol(TRANSFORM, xs[0], ys[0])
        assert feature["properties"]["class_id"] == data[row, col]
    # the area stays in the input's square metres
    areas = sum(f["properties"]["area"] for f in doc["features"])
    assert areas == pytest.approx((data != nodata).sum() * 0.25)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_plain_image_polygons_stay_in_pixels(tmp_path):
    # larger than 180 x 90: no longitude and latitude, as RFC 7946 would have them
    path, data, nodata = class_raster(tmp_path, DUBAI_CLASSES, crs=None, size=(120, 200))
    doc = json.loads(
        polygonize(path, DUBAI_CLASSES, tmp_path / "p", "geojson")["polygons"].read_text()
    )
    assert "crs" not in doc
    bounds = np.array([shape(f["geometry"]).bounds for f in doc["features"]])
    assert bounds.min() >= 0 and bounds[:, 2].max() == 200 and bounds[:, 3].max() == 120


def test_styles_name_each_class_by_its_raster_value(tmp_path):
    path, _, _ = class_raster(tmp_path, VALUES)
    written = polygonize(path, VALUES, tmp_path / "v", "gpkg")
    assert written["polygons_style"] == tmp_path / "v_polygons.qml"
    qml = written["polygons_style"].read_text()
    root = ET.fromstring(qml.split("\n", 1)[1])
    renderer = root.find("renderer-v2")
    assert renderer is not None and renderer.get("attr") == "class_id"
    categories = {c.get("value"): c.get("label") for c in renderer.iter("category")}
    assert categories == {str(c.mask_value): c.name for c in VALUES.classes}
    # the GeoPackage holds the same style as its default, where QGIS looks for it
    with sqlite3.connect(written["polygons"]) as db:
        rows = db.execute(
            "SELECT f_table_name, f_geometry_column, styleQML, useAsDefault FROM layer_styles"
        ).fetchall()
        kinds = dict(db.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall())
    assert rows == [("polygons", "geom", qml, 1)]
    assert kinds == {"polygons": "features", "layer_styles": "attributes"}
    assert sorted(p.name for p in tmp_path.glob("v_*")) == ["v_polygons.gpkg", "v_polygons.qml"]


def test_min_area_help_states_the_default(capsys):
    from aerialseg.cli import main

    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"default: the area of {MIN_AREA_PIXELS} pixels" in text and "0 keeps all" in text
