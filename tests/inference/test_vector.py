"""vector: one polygon per region, whose class_id is the raster value, measured in map units,
nodata left out; RFC 7946 GeoJSON, GeoPackage in the input CRS with its QGIS style, and the
default min-area that drops specks."""

from __future__ import annotations

import json
import sqlite3
import warnings
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import fiona
import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import rowcol
from rasterio.warp import transform as reproject_points
from shapely.geometry import shape

from aerialseg.data.classes import DUBAI_CLASSES, ClassTable
from aerialseg.inference.predict import NODATA
from aerialseg.inference.vector import MIN_AREA_PIXELS, polygonize, sieve_size
from tests.helpers.geotiff import TRANSFORM, UTM40N, VALUE_CLASSES, write_geotiff

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


def regions() -> np.ndarray:
    """A 20 x 30 class raster: Land around a Building block (4 x 5 px), two separate Water
    pixels, a Road strip of 3 px and a corner of no data."""
    ids = np.full((20, 30), 1, dtype=np.uint8)
    ids[2:6, 3:8] = 0
    ids[10, 10] = ids[15, 20] = 4
    ids[18, 0:3] = 2
    ids[:4, 24:] = NODATA
    return ids


@pytest.mark.parametrize("fmt, suffix", [("geojson", ".geojson"), ("gpkg", ".gpkg")])
def test_one_polygon_per_region_with_its_class_and_area(tmp_path, fmt, suffix):
    raster = write_geotiff(tmp_path / "c.tif", regions()[None], nodata=NODATA)
    written = polygonize(raster, DUBAI_CLASSES, tmp_path / "scene", fmt, min_area=0)
    path = written["polygons"]
    assert written == {
        "polygons": tmp_path / f"scene_polygons{suffix}",
        "polygons_style": tmp_path / "scene_polygons.qml",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["c.tif", "scene_polygons.qml", f"scene_polygons{suffix}"]
    )
    with fiona.open(path) as src:
        assert src.driver == {"geojson": "GeoJSON", "gpkg": "GPKG"}[fmt]
        # GeoJSON in WGS 84 (RFC 7946), a GeoPackage in the input's CRS
        assert src.crs.to_epsg() == {"geojson": 4326, "gpkg": 32640}[fmt]
    layers = {"geojson": ["polygons"], "gpkg": ["polygons", "layer_styles"]}[fmt]
    assert fiona.listlayers(path) == layers
    found = sorted((f["class"], f["class_id"], f["area_m2"]) for f in features(path)[0])
    # 0.5 m pixels: 0.25 m² each, in the input's units whatever the file's CRS; no polygon
    # where nothing was predicted
    assert found == [
        ("Building", 0, 20 * 0.25),
        ("Land", 1, (600 - 20 - 2 - 3 - 4 * 6) * 0.25),
        ("Road", 2, 3 * 0.25),
        ("Water", 4, 0.25),
        ("Water", 4, 0.25),
    ]


def test_min_area_keeps_regions_of_exactly_that_area_and_simplify_drops_vertices(tmp_path):
    ids = np.full((40, 40), 1, dtype=np.uint8)
    for k in range(12):  # a staircase: many vertices a tolerance of 2 m smooths away
        ids[k * 3 : k * 3 + 3, : 3 + k * 3] = 0
    ids[38, 38:40] = 4  # 2 px, 0.5 m²
    ids[0, 39] = 2  # 1 px, 0.25 m², in the first row: polygons after it are still written
    raster = write_geotiff(tmp_path / "c.tif", ids[None])

    def found(name: str, **options) -> list[dict]:
        written = polygonize(raster, DUBAI_CLASSES, tmp_path / name, "geojson", **options)
        return features(written["polygons"])[0]

    def classes(polygons: list[dict]) -> set[str]:
        return {f["class"] for f in polygons}

    every = found("a", min_area=0)
    assert classes(every) == {"Building", "Land", "Road", "Water"}
    assert classes(found("b", min_area=0.5)) == {"Building", "Land", "Water"}
    # the default: under MIN_AREA_PIXELS (4) pixels, 1 m² here, the 1 and 2 px regions go
    assert classes(found("d")) == {"Building", "Land"}
    smooth = found("c", simplify=2.0, min_area=0)  # steps of 1.5 m: triangles of 1.1 m²

    def vertices(polygons: list[dict], name: str) -> int:
        (region,) = [f["geometry"] for f in polygons if f["class"] == name]
        return len(region.exterior.coords) + sum(len(r.coords) for r in region.interiors)

    assert vertices(smooth, "Building") < vertices(every, "Building") / 2
    # simplifying keeps each region's topology: the 1 and 2 px regions do not vanish
    assert classes(smooth) == {"Building", "Land", "Road", "Water"}
    # simplified areas are those of the simplified shapes, close to the pixels' own
    building = next(f for f in smooth if f["class"] == "Building")
    assert building["area_m2"] == pytest.approx((ids == 0).sum() * 0.25, rel=0.1)
    # a length of 1 m or less simplifies too: steps of one 0.5 m pixel (triangles of
    # 0.125 m², 0.35 m on a side as coverage_simplify measures) go at 1 m
    fine = np.full((40, 40), 1, dtype=np.uint8)
    for k in range(36):
        fine[k, : 2 + k] = 0
    raster = write_geotiff(tmp_path / "c.tif", fine[None])
    stepped, smoothed = found("e", min_area=0), found("f", simplify=1.0, min_area=0)
    assert vertices(smoothed, "Building") < vertices(stepped, "Building") / 2


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # writing it
def test_a_plain_image_gives_polygons_in_pixels_without_a_warning(tmp_path):
    raster = write_geotiff(tmp_path / "c.tif", regions()[None], nodata=NODATA, crs=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotGeoreferencedWarning)
        path = polygonize(raster, DUBAI_CLASSES, tmp_path / "scene", "gpkg")["polygons"]
    found, crs = features(path)  # GeoPackage: GeoJSON readers assume WGS 84 when none
    assert not crs
    building = next(f for f in found if f["class"] == "Building")
    assert building["area_px"] == 20 and "area_m2" not in building  # pixels


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
    assert sum(f["area_m2"] for f in found) == pytest.approx(((data != nodata).sum()) * 0.25)


def test_default_min_area_drops_specks_and_zero_keeps_them(tmp_path):
    path, _, _ = class_raster(tmp_path, DUBAI_CLASSES)
    every = features(
        polygonize(path, DUBAI_CLASSES, tmp_path / "all", "gpkg", min_area=0)["polygons"]
    )[0]
    default = features(polygonize(path, DUBAI_CLASSES, tmp_path / "dflt", "gpkg")["polygons"])[0]
    pixels = sorted(round(f["area_m2"] / 0.25) for f in every if f["class"] == "Building")
    assert pixels == [1, 3, 4]
    kept = sorted(round(f["area_m2"] / 0.25) for f in default if f["class"] == "Building")
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
    areas = sum(f["properties"]["area_m2"] for f in doc["features"])
    assert areas == pytest.approx((data != nodata).sum() * 0.25)


@pytest.mark.parametrize("crs", ["EPSG:32760", "EPSG:4326"])
def test_geojson_polygons_that_cross_the_antimeridian_are_cut_there(tmp_path, crs):
    """A review: a UTM 60S scene across 180 degrees gave empty polygons where its regions
    crossed it (GDAL's writer reprojected them), their attributes kept. Each region is now
    a MultiPolygon with a part on each side, and together they cover the scene."""
    from rasterio.transform import from_origin
    from shapely import MultiPolygon, Polygon
    from shapely.ops import unary_union

    xs, ys = reproject_points("EPSG:4326", crs, [180.0], [-16.5])
    side = 0.5 if crs != "EPSG:4326" else 5e-6
    ids = np.full((40, 40), 2, np.uint8)  # Land (value 2) across 180 degrees
    ids[:, :12] = 5  # Water
    path = write_geotiff(
        tmp_path / "c.tif",
        ids[None],
        crs=crs,
        transform=from_origin(xs[0] - 20 * side, ys[0] + 20 * side, side, side),
    )
    doc = json.loads(polygonize(path, VALUES, tmp_path / "v", "geojson")["polygons"].read_text())
    geoms = {f["properties"]["class"]: shape(f["geometry"]) for f in doc["features"]}
    assert sorted(geoms) == ["Land", "Water"] and not any(g.is_empty for g in geoms.values())
    assert isinstance(geoms["Land"], MultiPolygon)  # both sides of 180 degrees
    assert {round(x) for g in geoms["Land"].geoms for x in (g.bounds[0], g.bounds[2])} >= {
        -180,
        180,
    }
    with rasterio.open(path) as src:
        left, bottom, right, top = src.bounds
    lons, lats = reproject_points(
        crs, "EPSG:4326", [left, right, right, left], [top, top, bottom, bottom]
    )
    area = Polygon([(lon % 360, lat) for lon, lat in zip(lons, lats, strict=True)]).area
    assert unary_union(list(geoms.values())).area == pytest.approx(area, rel=1e-3)


def test_geojson_of_a_scene_around_a_pole_or_wider_than_half_the_globe(tmp_path):
    """Found by a review of the antimeridian cut: a scene around the South Pole failed
    (longitudes past 360), and one 200 degrees wide had its Land turned into the rest of the
    globe. Land around the pole reaches -90; the wide scene's polygons keep its bounds."""
    from rasterio.transform import from_origin

    ids = np.full((30, 40), 2, np.uint8)  # Land, and a Water strip
    ids[:, :5] = 5
    scenes = {
        "pole": ("EPSG:3031", from_origin(-10_000, 7_500, 500, 500)),
        "wide": ("EPSG:4326", from_origin(-100, 60, 5, 4)),
    }
    found = {}
    for name, (crs, grid) in scenes.items():
        path = write_geotiff(tmp_path / f"{name}.tif", ids[None], crs=crs, transform=grid)
        doc = json.loads(
            polygonize(path, VALUES, tmp_path / name, "geojson")["polygons"].read_text()
        )
        found[name] = {f["properties"]["class"]: shape(f["geometry"]) for f in doc["features"]}
    assert found["pole"]["Land"].bounds[1] == -90 and found["pole"]["Land"].bounds[3] < -89.8
    assert found["wide"]["Land"].bounds == (-75, -60, 100, 60)
    assert found["wide"]["Water"].bounds == (-100, -60, -75, 60)


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
    with sqlite3.connect(written["polygons"]) as db:
        db.row_factory = sqlite3.Row
        (row,) = [dict(r) for r in db.execute("SELECT * FROM layer_styles").fetchall()]
    # as QGIS writes its own: the style's name and description shown in its style manager,
    # the time in UTC, empty text where a GeoPackage has no catalogue or schema, no SLD
    assert (row["styleName"], row["styleSLD"]) == ("aerialseg classes", None)
    assert row["description"] == "class colours and names of the model that predicted them"
    assert (row["f_table_catalog"], row["f_table_schema"]) == ("", "")
    written_at = datetime.fromisoformat(row["update_time"].rstrip("Z")).replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - written_at).total_seconds()) < 120
    assert sorted(p.name for p in tmp_path.glob("v_*")) == ["v_polygons.gpkg", "v_polygons.qml"]


def test_min_area_help_states_the_default(capsys):
    from aerialseg.cli import main

    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"default: the area of {MIN_AREA_PIXELS} pixels" in text and "0 keeps all" in text


def test_the_sieve_threshold_is_at_most_the_scenes_pixels(tmp_path):
    """A min area of the scene's area or more is every region smaller than the scene; in
    pixels, 1e308 m² over 0.25 m² pixels was infinity, and math.ceil raised."""
    path = write_geotiff(tmp_path / "s.tif", np.zeros((1, 6, 8), np.uint8))  # 12 m²
    with rasterio.open(path) as ds:
        assert sieve_size(ds, None) == MIN_AREA_PIXELS and sieve_size(ds, 0) == 0
        assert sieve_size(ds, 1.0) == 4 and sieve_size(ds, 11.9) == 48
        for big in (12.0, 5000.0, 1e308):
            assert sieve_size(ds, big) == 48
    one = write_geotiff(tmp_path / "one.tif", np.zeros((1, 1, 1), np.uint8))
    with rasterio.open(one) as ds:
        assert sieve_size(ds, None) == 1
