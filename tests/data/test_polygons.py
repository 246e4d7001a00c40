import json

import numpy as np
import pytest
import rasterio.features
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_geom
from rasterio.windows import Window
from shapely.geometry import Polygon, box, mapping, shape

from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.data.polygons import footprint, read_polygons
from aerialseg.errors import DatasetError
from tests.helpers.geodata import (
    ORIGIN,
    PIXEL,
    POLYGON_CLASSES,
    UTM,
    class_boxes,
    class_ids_of,
    scene_transform,
    write_area,
    write_geojson,
    write_polygons,
)

TABLE = ClassTable.from_dict(POLYGON_CLASSES)
WGS84_CRS = CRS.from_epsg(4326)
H, W = 160, 200


def message(fn, *args, **kwargs) -> str:
    with pytest.raises(DatasetError) as err:
        fn(*args, **kwargs)
    return str(err.value)


@pytest.fixture
def boxes():
    return class_boxes(H, W, seed=3)


def test_a_window_equals_the_whole_scene_rasterised_and_cut(tmp_path, boxes):
    path = write_polygons(tmp_path / "labels.gpkg", boxes)  # WGS84 over a UTM scene
    labels = read_polygons(path, TABLE, "class").to_crs(UTM)
    transform = scene_transform()
    polygons = labels.polygons
    whole = rasterio.features.rasterize(
        zip(polygons.geometries, polygons.values.tolist(), strict=True),
        out_shape=(H, W),
        transform=transform,
        fill=3,  # Land, the background
        dtype="uint8",
    )
    for window in (Window(0, 0, W, H), Window(37, 21, 64, 50), Window(W - 17, H - 9, 17, 9)):
        rows, cols = window.toslices()
        np.testing.assert_array_equal(labels.window(transform, window), whole[rows, cols])
    # and the polygons, though they went through WGS84, land where they were drawn
    truth = class_ids_of(boxes, H, W, transform)
    assert (labels.window(transform, Window(0, 0, W, H)) == truth).mean() > 0.995
    assert len(set(np.unique(truth))) == 4  # every class is there to be told apart


def test_labels_near_the_corners_of_a_rotated_grid_are_kept(tmp_path):
    """A window's polygons were looked up in the box of two of its corners, T(0, 0) and
    T(w, h): on a grid rotated 45° that box is a line, and the polygons near the other two
    corners were left out (all background)."""
    transform = Affine.translation(*ORIGIN) @ Affine.rotation(45) @ Affine.scale(PIXEL, -PIXEL)
    boxes = []
    for name, (col, row) in {"Building": (88, 8), "Water": (8, 88)}.items():
        x, y = transform @ (col, row)
        boxes.append((box(x - 1.5, y - 1.5, x + 1.5, y + 1.5), name))
    labels = read_polygons(
        write_polygons(tmp_path / "corners.gpkg", boxes, crs=UTM), TABLE, "class"
    )
    truth = class_ids_of(boxes, 96, 96, transform)  # the whole scene rasterised at once
    assert set(np.unique(truth)) == {0, 2, 3}  # Building, Water, Land
    np.testing.assert_array_equal(labels.window(transform, Window(0, 0, 96, 96)), truth)
    np.testing.assert_array_equal(labels.window(transform, Window(72, 0, 24, 24)), truth[:24, 72:])
    # a window's footprint is its four corners, and the layer's checks take it
    corner = footprint(Window(72, 0, 24, 24), transform)
    assert corner.equals(Polygon([transform @ p for p in ((72, 0), (96, 0), (96, 24), (72, 24))]))
    assert labels.polygons.overlaps(corner)
    assert labels.polygons.covers_a_pixel_of(Window(72, 0, 24, 24), transform)
    assert not labels.polygons.covers_a_pixel_of(Window(0, 0, 24, 24), transform)


def test_values_match_class_names_in_any_case_or_mask_values(tmp_path):
    schema = {"geometry": "Polygon", "properties": {"kind": "str", "code": "int"}}
    import fiona

    rows = [("building", 0), ("ROAD", 7), (" Water ", 7)]
    path = tmp_path / "mixed.gpkg"
    with fiona.open(path, "w", driver="GPKG", crs=UTM.to_wkt(), schema=schema) as dst:
        for k, (name, code) in enumerate(rows):
            geom = box(ORIGIN[0] + k * 10, ORIGIN[1] - 10, ORIGIN[0] + k * 10 + 5, ORIGIN[1])
            dst.write({"geometry": mapping(geom), "properties": {"kind": name, "code": code}})
    assert read_polygons(path, TABLE, "kind").polygons.values.tolist() == [0, 1, 2]
    # numbers match mask_value: Road's 7; 0 is no class's value
    assert message(read_polygons, path, TABLE, "code") == (
        f"{path}: values of 'code' that match no class name or mask_value: 0 (1);"
        " classes: Building, Road, Water, Land"
    )


def test_errors_name_what_is_there(tmp_path, boxes):
    path = write_polygons(tmp_path / "labels.gpkg", boxes)
    assert message(read_polygons, path, TABLE, "kind") == (
        f"{path}: no field 'kind'; its fields are class (choose one with --label-field)"
    )
    other = ClassTable.from_dict(
        {"classes": [{"name": "Building"}, {"name": "Land", "background": True}]}
    )
    counts = {}
    for _, name in boxes:
        counts[name] = counts.get(name, 0) + 1
    text = message(read_polygons, path, other, "class")
    assert text.startswith(f"{path}: values of 'class' that match no class name or mask_value: ")
    for name in ("Road", "Water"):
        assert f"'{name}' ({counts[name]})" in text
    no_background = ClassTable.from_dict(
        {"classes": [{"name": "Building"}, {"name": "Road"}, {"name": "Water"}]}
    )
    assert "background: true" in message(read_polygons, path, no_background, "class")


@pytest.mark.parametrize("number", ["1e400", "NaN", "-Infinity"])
def test_a_coordinate_that_is_not_a_number_is_one_line(tmp_path, recwarn, number):
    """A review: a vertex 1e400 (infinite) stopped inspect with a GEOSException from
    make_valid; a NaN one printed numpy's warning and then "no polygon in the file"."""
    ring = f"[[300005, 2799995], [{number}, 2799995], [300030, 2799970], [300005, 2799995]]"
    feature = (
        '{"type": "Feature", "properties": {"class": "Building"},'
        f' "geometry": {{"type": "Polygon", "coordinates": [{ring}]}}}}'
    )
    path = tmp_path / "labels.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [' + feature + "]}")
    assert message(read_polygons, path, TABLE, "class", "EPSG:32640") == (
        f"{path}: feature 0 has a coordinate that is not a number (NaN or infinite); fix or"
        " remove it"
    )
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_a_geojson_without_crs_is_wgs84_and_projected_coordinates_are_refused(tmp_path, boxes):
    good = write_geojson(tmp_path / "good.geojson", boxes)
    labels = read_polygons(good, TABLE, "class")
    assert labels.polygons.crs == CRS.from_epsg(4326)
    bad = write_geojson(tmp_path / "utm.geojson", boxes, wgs84=False)
    text = message(read_polygons, bad, TABLE, "class")
    assert "are not degrees" in text and "--label-crs" in text and "\n" not in text
    fixed = read_polygons(bad, TABLE, "class", label_crs="EPSG:32640")
    assert fixed.polygons.crs == UTM
    truth = class_ids_of(boxes, H, W, scene_transform())
    ids = fixed.window(scene_transform(), Window(0, 0, W, H))
    np.testing.assert_array_equal(ids, truth)  # same CRS: no reprojection, the same pixels
    assert "not a CRS" in message(read_polygons, bad, TABLE, "class", label_crs="EPSG:nope")


def test_invalid_geometries_are_repaired_and_counted(tmp_path):
    left, top = ORIGIN
    bowtie = Polygon([(left, top), (left + 20, top - 20), (left + 20, top), (left, top - 20)])
    path = tmp_path / "bowtie.geojson"
    features = [
        {"type": "Feature", "geometry": mapping(g), "properties": {"class": "Water"}}
        for g in (bowtie, box(left + 40, top - 10, left + 50, top))
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    labels = read_polygons(path, TABLE, "class", label_crs="EPSG:32640")
    assert labels.repaired == 1 and len(labels.polygons.geometries) == 2
    assert all(g.is_valid for g in labels.polygons.geometries)
    ids = labels.window(scene_transform(), Window(0, 0, 120, 60))
    assert (ids == 2).sum() > 0.9 * (200 / PIXEL**2 + 100 / PIXEL**2)  # both triangles + box
    line_only = tmp_path / "line.geojson"
    flat = Polygon([(left, top), (left + 10, top), (left + 20, top)])  # no area at all
    line_only.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "geometry": mapping(flat), "properties": {"class": "Water"}}
                ],
            }
        )
    )
    assert "no polygon" in message(read_polygons, line_only, TABLE, "class", label_crs="EPSG:32640")


def test_the_labelled_area_bounds_labels_and_background(tmp_path, boxes):
    path = write_polygons(tmp_path / "labels.gpkg", boxes)
    left, top = ORIGIN
    area = write_area(tmp_path / "area.gpkg", box(left, top - 40, left + 50, top))  # 100x80 px
    labels = read_polygons(path, TABLE, "class", labelled_area=area).to_crs(UTM)
    ids = labels.window(scene_transform(), Window(0, 0, W, H))
    assert (ids[80:, :] == IGNORE_INDEX).all() and (ids[:, 100:] == IGNORE_INDEX).all()
    inside = ids[:80, :100]
    truth = class_ids_of(boxes, H, W, scene_transform())[:80, :100]
    assert (inside == truth).mean() > 0.99  # background (Land) where no polygon lies
    # without a background class, pixels of the area no polygon covers are left out
    table = ClassTable.from_dict({"classes": POLYGON_CLASSES["classes"][:3]})
    plain = read_polygons(path, table, "class", labelled_area=area).to_crs(UTM)
    ids = plain.window(scene_transform(), Window(0, 0, 100, 80))
    assert ((ids == IGNORE_INDEX) == (truth == 3)).mean() > 0.99


def write_values(path, values, field_type=None):
    """One small square per value, in a row: a GeoJSON written as text (GDAL guesses the
    field's type from the values), or a GeoPackage whose field is ``field_type``."""
    left, top = ORIGIN
    squares = [box(left + k * 10, top - 10, left + k * 10 + 5, top) for k in range(len(values))]
    if path.suffix == ".geojson":
        features = [
            {"type": "Feature", "geometry": mapping(g), "properties": {"class": v}}
            for g, v in zip(squares, values, strict=True)
        ]
        crs = {"type": "name", "properties": {"name": "EPSG:32640"}}
        path.write_text(json.dumps({"type": "FeatureCollection", "crs": crs, "features": features}))
        return path
    import fiona

    schema = {"geometry": "Polygon", "properties": {"class": field_type}}
    with fiona.open(path, "w", driver="GPKG", crs=UTM.to_wkt(), schema=schema) as dst:
        for g, v in zip(squares, values, strict=True):
            dst.write({"geometry": mapping(g), "properties": {"class": v}})
    return path


def test_a_field_mixing_names_and_numbers_is_read_value_by_value(tmp_path):
    # GDAL types such a GeoJSON property as JSON and leaves its strings unquoted, which
    # fiona cannot decode: read as text, each value is a name or a mask_value
    path = write_values(tmp_path / "mixed.geojson", ["Building", 7, " water ", 7.0, "ROAD", "7"])
    assert read_polygons(path, TABLE, "class").polygons.values.tolist() == [0, 1, 2, 1, 1, 1]
    floats = write_values(tmp_path / "floats.gpkg", [7.0, 7.0], "float")
    assert read_polygons(floats, TABLE, "class").polygons.values.tolist() == [1, 1]


@pytest.mark.parametrize(
    "name, values, field_type, bad",
    [
        ("mixed.geojson", ["Building", 3.5], None, "feature 1: 'class' is 3.5"),
        ("mixed.geojson", ["Building", 7, True], None, "feature 2: 'class' is true"),
        ("mixed.geojson", [[1, 2], "Building"], None, "feature 0: 'class' is [1, 2]"),
        ("mixed.geojson", ["Water", {"a": 1}, 7], None, "feature 1: 'class' is {\"a\": 1}"),
        ("floats.geojson", [3.0, 3.5], None, "feature 1: 'class' is 3.5"),
        ("bools.geojson", [False, True], None, "feature 0: 'class' is false"),
        ("lists.geojson", [[7], [7, 1]], None, "feature 0: 'class' is [7]"),
        # a review: a list of 100,000 numbers was quoted whole, a 300 KB line
        (
            "long.geojson",
            [list(range(100_000))],
            None,
            "feature 0: 'class' is [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11...",
        ),
        ("floats.gpkg", [7.0, 3.5], "float", "feature 2: 'class' is 3.5"),  # GPKG ids from 1
        ("bools.gpkg", [True], "bool", "feature 1: 'class' is true"),
    ],
)
def test_other_values_are_one_line_naming_the_feature(tmp_path, name, values, field_type, bad):
    path = write_values(tmp_path / name, values, field_type)
    assert message(read_polygons, path, TABLE, "class") == (
        f"{path}: {bad}, neither a class name nor a whole-number mask_value; give each"
        " polygon one of those"
    )


def test_the_polygons_of_a_geometry_collection_are_labels(tmp_path):
    """A valid GeometryCollection was dropped whole: its pixels became background, with no
    word. Its polygons count; its lines and points do not."""
    left, top = ORIGIN
    square = box(left, top - 10, left + 10, top)  # 20 x 20 px
    collection = {
        "type": "GeometryCollection",
        "geometries": [
            mapping(square),
            {"type": "LineString", "coordinates": [[left, top - 30], [left + 30, top - 30]]},
            {"type": "GeometryCollection", "geometries": [mapping(box(left + 20, top - 10,
                                                                      left + 30, top))]},
        ],
    }  # fmt: skip
    path = tmp_path / "collection.geojson"
    crs = {"type": "name", "properties": {"name": "EPSG:32640"}}
    feature = {"type": "Feature", "geometry": collection, "properties": {"class": "Water"}}
    path.write_text(json.dumps({"type": "FeatureCollection", "crs": crs, "features": [feature]}))
    labels = read_polygons(path, TABLE, "class")
    assert labels.repaired == 0 and len(labels.polygons.geometries) == 1
    ids = labels.window(scene_transform(), Window(0, 0, 80, 40))
    assert (ids[:20, :20] == 2).all() and (ids[:20, 40:60] == 2).all()  # both squares Water
    assert (ids[20:, :] == 3).all()  # the line is no label: background


def test_label_crs_names_the_labels_crs_not_that_of_an_area_that_says_its_own(tmp_path, boxes):
    bad = write_geojson(tmp_path / "utm.geojson", boxes, wgs84=False)  # UTM, says nothing
    left, top = ORIGIN
    in_degrees = shape(transform_geom(UTM, WGS84_CRS, mapping(box(left, top - 40, left + 50, top))))
    area = write_area(tmp_path / "area.gpkg", in_degrees, WGS84_CRS)
    labels = read_polygons(bad, TABLE, "class", "EPSG:32640", labelled_area=area)
    assert labels.area is not None and labels.area.crs == WGS84_CRS  # its own, kept
    ids = labels.to_crs(UTM).window(scene_transform(), Window(0, 0, W, H))
    assert (ids[:80, :100] != IGNORE_INDEX).mean() > 0.97 and (ids[85:] == IGNORE_INDEX).all()
    # an area that says nothing (a GeoJSON in UTM metres) takes --label-crs as well
    plain = write_geojson(tmp_path / "area.geojson", [(box(left, top - 40, left + 50, top), "x")],
                          wgs84=False)  # fmt: skip
    labels = read_polygons(bad, TABLE, "class", "EPSG:32640", labelled_area=plain)
    assert labels.area is not None and labels.area.crs == UTM


def test_names_match_in_any_unicode_composition_and_codes_as_decimal_text(tmp_path):
    table = ClassTable.from_dict(
        {
            "classes": [
                {"name": "B\u00e2timent", "mask_value": 7},
                {"name": "Sol", "background": True},
            ]
        }
    )
    path = write_values(tmp_path / "v.gpkg", ["Ba\u0302timent", "7.0", "7"], "str")
    assert read_polygons(path, table, "class").polygons.values.tolist() == [0, 0, 0]


def test_whole_numbers_match_a_class_named_by_them(tmp_path):
    """Found by a review: a table of CORINE-like names (11, 21) refused the integer labels
    11 and 21 as 'no class name or mask_value'; they name those classes."""
    table = ClassTable.from_dict(
        {"classes": [{"name": "11"}, {"name": "21"}, {"name": "Land", "background": True}]}
    )
    path = write_values(tmp_path / "codes.gpkg", [21, 11], "int")
    assert read_polygons(path, table, "class").polygons.values.tolist() == [1, 0]
    mixed = write_values(tmp_path / "mixed.geojson", [21, "11", "Land"])
    assert read_polygons(mixed, table, "class").polygons.values.tolist() == [1, 0, 2]
    # a text that spells the number as a decimal names it too, as the number 11.0 does (a
    # review: '11.0' matched mask_values only)
    texts = write_values(tmp_path / "texts.gpkg", ["11.0", "021", "21.00"], "str")
    assert read_polygons(texts, table, "class").polygons.values.tolist() == [0, 1, 1]


def test_numbers_of_thousands_of_digits_are_unmatched_labels_not_a_trace(tmp_path):
    """A review: int(float('1' * 400)) raised OverflowError, and a value of 5,000 digits
    hit Python's 4,300-digit limit of int()."""
    huge = "1" * 100  # the longest class name
    classes = [{"name": huge}, {"name": "Road", "mask_value": 7}, {"name": "L", "background": True}]
    table = ClassTable.from_dict({"classes": classes})
    path = write_values(tmp_path / "codes.gpkg", ["1" * 400, "1" * 5000, huge, "7"], "str")
    message = str(pytest.raises(DatasetError, read_polygons, path, table, "class").value)
    assert message == (
        f"{path}: values of 'class' that match no class name or mask_value: '{'1' * 36}..."
        f" (1), '{'1' * 36}... (1); classes: {'1' * 37}..., Road, L"
    )
    assert read_polygons(write_values(tmp_path / "ok.gpkg", [huge, "7"], "str"), table,
                         "class").polygons.values.tolist() == [0, 1]  # fmt: skip


def test_features_without_a_polygon_are_counted_and_long_values_cut(tmp_path):
    left, top = ORIGIN
    features = [
        {"type": "Feature", "geometry": mapping(box(left, top - 10, left + 5, top)),
         "properties": {"class": "Water"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [left, top]},
         "properties": {"class": "Nope"}},
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[left, top],
         [left + 9, top - 9]]}, "properties": {"class": "Road"}},
    ]  # fmt: skip
    crs = {"type": "name", "properties": {"name": "EPSG:32640"}}
    path = tmp_path / "mixed.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "crs": crs, "features": features}))
    labels = read_polygons(path, TABLE, "class")
    assert labels.dropped == 2 and labels.polygons.values.tolist() == [2]
    assert labels.to_crs(CRS.from_epsg(4326)).dropped == 2
    long = write_values(tmp_path / "long.gpkg", ["x" * 5000], "str")
    text = message(read_polygons, long, TABLE, "class")
    assert "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (1)" in text and len(text) < 300


def test_a_file_of_several_polygon_layers_is_refused_naming_them(tmp_path):
    """Found by a review: only a GeoPackage's first layer was read, so the buildings of a
    second layer were trained as background. A table without geometries (QGIS's
    layer_styles) is no layer of polygons."""
    import fiona

    schema = {"geometry": "Polygon", "properties": {"class": "str"}}
    path = tmp_path / "two.gpkg"
    left, top = ORIGIN
    for layer, name in (("roads", "Road"), ("buildings", "Building")):
        with fiona.open(path, "w", driver="GPKG", layer=layer, crs=UTM.to_wkt(),
                        schema=schema) as dst:  # fmt: skip
            dst.write({"geometry": mapping(box(left, top - 10, left + 5, top)),
                       "properties": {"class": name}})  # fmt: skip
    assert message(read_polygons, path, TABLE, "class") == (
        f"{path}: holds 2 layers of polygons (roads, buildings); aerialseg reads one: merge"
        " them into one layer (QGIS: Merge Vector Layers)"
    )
    styled = tmp_path / "styled.gpkg"
    with fiona.open(styled, "w", driver="GPKG", layer="labels", crs=UTM.to_wkt(),
                    schema=schema) as dst:  # fmt: skip
        dst.write({"geometry": mapping(box(left, top - 10, left + 5, top)),
                   "properties": {"class": "Road"}})  # fmt: skip
    table = {"geometry": "None", "properties": {"f": "str"}}
    for name in ("layer_styles", "notes"):  # the polygons need not be the first layer
        with fiona.open(styled, "w", driver="GPKG", layer=name, schema=table) as dst:
            dst.write({"geometry": None, "properties": {"f": "x"}})
    assert read_polygons(styled, TABLE, "class").polygons.values.tolist() == [1]
    points = {"geometry": "Point", "properties": {"class": "str"}}  # no layer of polygons
    with fiona.open(styled, "w", driver="GPKG", layer="wells", crs=UTM.to_wkt(),
                    schema=points) as dst:  # fmt: skip
        dst.write({"geometry": {"type": "Point", "coordinates": [left, top]},
                   "properties": {"class": "Water"}})  # fmt: skip
    assert read_polygons(styled, TABLE, "class").polygons.values.tolist() == [1]


def test_a_class_named_by_another_classs_mask_value_is_refused_for_polygons(tmp_path):
    """A label 7 would name one class and be the other's value (which one won depended on
    the file's other values). Only polygon labels match names: a model's table with names
    "1", "2" for values 0, 1 is a table all the same."""
    seven = {"name": "7", "mask_value": 1}
    table = ClassTable.from_dict(
        {
            "classes": [
                seven,
                {"name": "Road", "mask_value": 7},
                {"name": "Land", "background": True},
            ]
        }
    )
    path = write_values(tmp_path / "v.gpkg", ["Road"], "str")
    assert message(read_polygons, path, table, "class") == (
        f"{path}: class '7' is named by the mask_value of class 'Road': a label 7 would mean"
        " either; rename one"
    )
    codes = {"classes": [{"name": "1", "mask_value": 0}, {"name": "2", "mask_value": 1}]}
    assert ClassTable.from_dict(codes).names == ["1", "2"]


def test_labels_in_web_mercator_over_a_scene_across_180_degrees_are_all_kept():
    """A review: cut to the scene's outline moved into Web Mercator (a ring round the world
    there, invalid), three of four polygons beside 180°E were dropped."""
    from rasterio.warp import transform

    from aerialseg.data.polygons import PolygonLayer

    utm, mercator = CRS.from_epsg(32760), CRS.from_epsg(3857)
    (x,), (y,) = transform(WGS84_CRS, utm, [180.0], [-17.0])
    at = Affine(10, 0, x - 5000, 0, -10, y + 5000)  # 10 km across 180°E
    scene = footprint(Window(0, 0, 1000, 1000), at)
    boxes = [box(lon, -17.01, lon + 0.004, -17.005) for lon in (179.96, 179.99, -179.995, -179.97)]
    moved = [shape(transform_geom(WGS84_CRS, mercator, mapping(g))) for g in boxes]
    layer = PolygonLayer.of(mercator, moved, [1, 2, 3, 4]).to_crs(utm, scene)
    assert [
        v for g, v in zip(layer.geometries, layer.values, strict=True) if g.intersects(scene)
    ] == [1, 2, 3, 4]


def _raw_geojson(path, rings: list, values=None, field="class"):
    """A GeoJSON (no 'crs': WGS84 to readers) of polygons given by their coordinates."""
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {field: None if values is None else values[k]},
        }
        for k, ring in enumerate(rings)
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _ring(left, bottom, right, top):
    return [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]


def test_without_a_field_every_polygon_is_the_one_class_of_the_table(tmp_path):
    one = ClassTable.from_dict(
        {"classes": [{"name": "Tree"}, {"name": "Other", "background": True}]}
    )
    path = _raw_geojson(tmp_path / "t.geojson", [_ring(55, 25, 55.001, 25.001)] * 3)
    assert read_polygons(path, one, None).polygons.values.tolist() == [0, 0, 0]
    assert message(read_polygons, path, TABLE, None) == (
        f"{path}: which class is each polygon? name the attribute that says it with --label-field"
    )


def test_unmatched_values_are_listed_ten_most_common_first(tmp_path):
    values = [f"v{k}" for k in range(11) for _ in range(1 + (k == 4))]  # v4 twice
    rings = [_ring(55 + k * 1e-3, 25, 55.0005 + k * 1e-3, 25.0005) for k in range(len(values))]
    path = _raw_geojson(tmp_path / "u.geojson", rings, values)
    listed = ", ".join(["'v4' (2)"] + [f"'v{k}' (1)" for k in range(11) if k != 4][:9])
    assert message(read_polygons, path, TABLE, "class") == (
        f"{path}: values of 'class' that match no class name or mask_value: {listed};"
        " classes: Building, Road, Water, Land"
    )


def test_polygons_need_a_background_or_a_labelled_area(tmp_path, boxes):
    table = ClassTable.from_dict({"classes": [{"name": "Building"}, {"name": "Road"}]})
    path = write_polygons(tmp_path / "p.gpkg", boxes[:1])
    assert message(read_polygons, path, table, "class") == (
        "polygon labels need to know what pixels no polygon covers are: mark one class of"
        " the class table 'background: true', or give --labelled-area FILE (pixels in it"
        " that no polygon covers are then left out)"
    )


def test_degrees_are_told_from_projected_coordinates_at_their_limits(tmp_path):
    """A GeoJSON without 'crs' is WGS84: coordinates up to ±180 and ±90 are degrees, past
    them projected ones that a careless export left in, refused in one line. Longitudes
    past 180 but not 360 are labels across the antimeridian (a review: 180.001 was told to
    be projected) or data in 0..360: read, and cut at the antimeridian."""
    world = _raw_geojson(tmp_path / "w.geojson", [_ring(-180, -90, 180, 90)], ["Water"])
    assert read_polygons(world, TABLE, "class").polygons.crs == WGS84_CRS
    across = _raw_geojson(
        tmp_path / "a.geojson", [_ring(179.999, -16.501, 180.001, -16.5)], ["Water"]
    )
    (cut,) = read_polygons(across, TABLE, "class").polygons.geometries
    assert cut.equals(
        shapely.union(box(179.999, -16.501, 180, -16.5), box(-180, -16.501, -179.999, -16.5))
    )
    for k, ring in enumerate(
        [
            _ring(-360.5, 0, 10, 10),
            _ring(0, 0, 360.5, 10),
            _ring(0, -90.5, 10, 10),
            _ring(0, 0, 10, 90.5),
            _ring(0, 80, 10, 95),
        ]
    ):
        path = _raw_geojson(tmp_path / f"p{k}.geojson", [ring], ["Water"])
        (left, bottom), (right, top) = ring[0], ring[2]
        x, y = max(abs(left), abs(right)), max(abs(bottom), abs(top))
        assert message(read_polygons, path, TABLE, "class") == (
            f"{path}: coordinates up to {x:,.6g}, {y:,.6g} are not degrees, though the file's"
            " CRS is longitude and latitude (a GeoJSON without 'crs' is WGS84); give the CRS"
            " they are in with --label-crs, e.g. --label-crs EPSG:32640"
        ), ring


def test_a_crs_proj_does_not_know_is_one_line_and_gdal_prints_nothing(capfd):
    # PROJ's own "ERROR 1: ... crs not found" went to the terminal above aerialseg's line
    from aerialseg.data.polygons import parse_crs

    assert message(parse_crs, "EPSG:99999") == (
        "--label-crs 'EPSG:99999': not a CRS GDAL knows; give it as EPSG:NNNN (e.g. EPSG:32640)"
    )
    assert capfd.readouterr().err == ""


def test_an_area_takes_the_crs_given_and_counts_every_polygon_as_one(tmp_path):
    from aerialseg.data.polygons import parse_crs, read_area

    schema = {"geometry": "Polygon", "properties": {"id": "int"}}
    shp = tmp_path / "area.shp"
    import fiona

    with fiona.open(shp, "w", driver="ESRI Shapefile", schema=schema) as dst:  # no .prj
        for k in range(2):
            dst.write(
                {
                    "geometry": mapping(box(300_000 + k, 2_790_000, 300_010 + k, 2_790_010)),
                    "properties": {"id": 7},
                }
            )
    assert (
        message(read_area, shp) == f"{shp}: the polygons have no CRS; give theirs with --label-crs"
    )
    area = read_area(shp, "EPSG:32640")
    assert area.crs == UTM and area.values.tolist() == [1, 1]
    assert message(parse_crs, "nowhere") == (
        "--label-crs 'nowhere': not a CRS GDAL knows; give it as EPSG:NNNN (e.g. EPSG:32640)"
    )
    broken = tmp_path / "broken.gpkg"
    broken.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    assert message(read_area, broken).startswith(f"{broken}: cannot read polygons (")
    folder = tmp_path / "shapes"
    folder.mkdir()
    for name in ("a", "b"):  # OGR reads a folder of Shapefiles as one file of layers
        with fiona.open(
            folder / f"{name}.shp", "w", driver="ESRI Shapefile", schema=schema, crs="EPSG:32640"
        ) as dst:
            dst.write({"geometry": mapping(box(0, 0, 1, 1)), "properties": {"id": 1}})
    assert message(read_area, folder).endswith("pass one of its .shp files")


def test_a_cut_keeps_what_lies_within_a_hundredth_of_the_scenes_size():
    """Polygons are cut to the scenes' box grown by a hundredth of its diagonal (14 m for
    a 1 km square): a square 10 m past its edge is kept, one 30 m past is not."""
    from aerialseg.data.polygons import PolygonLayer

    scene = box(300_000, 2_790_000, 301_000, 2_791_000)
    near = box(301_010, 2_790_500, 301_012, 2_790_502)
    far = box(301_030, 2_790_500, 301_032, 2_790_502)
    degrees = [shape(transform_geom(UTM, WGS84_CRS, mapping(g))) for g in (near, far)]
    layer = PolygonLayer.of(WGS84_CRS, degrees, [1, 2]).to_crs(UTM, scene)
    assert layer.crs == UTM and layer.values.tolist() == [1]
    assert layer.geometries[0].area == pytest.approx(4, rel=1e-3)


def test_a_window_reads_a_polygon_in_its_first_column_only(tmp_path):
    from aerialseg.data.polygons import PolygonLayer

    left, top = ORIGIN
    first = box(left, top - 10 * PIXEL, left + PIXEL, top)  # the first column, 10 rows
    ids = PolygonLayer.of(UTM, [first], [2]).rasterize(scene_transform(), (10, 8), fill=0)
    assert ids.dtype == np.uint8 and ids[:, 0].tolist() == [2] * 10 and ids[:, 1:].max() == 0
    empty = PolygonLayer.of(UTM, [first], [2]).rasterize(scene_transform((0, 0)), (4, 4), 9)
    assert empty.dtype == np.uint8 and (empty == 9).all()
    # touching a window's edge is not labelling it
    assert not PolygonLayer.of(UTM, [first], [2]).covers_a_pixel_of(
        Window(1, 0, 9, 20), scene_transform()
    )


def test_features_without_a_polygon_are_counted_whatever_they_hold(tmp_path):
    """Points and lines were counted as left out, features with no geometry or an empty
    one were dropped without a word (a review)."""
    polygon = mapping(footprint(Window(0, 0, 50, 50), scene_transform()))
    features = [
        {"type": "Feature", "properties": {"class": "Building"}, "geometry": polygon},
        {"type": "Feature", "properties": {"class": "Water"}, "geometry": None},
        {
            "type": "Feature",
            "properties": {"class": "Water"},
            "geometry": {"type": "Point", "coordinates": list(ORIGIN)},
        },
        {
            "type": "Feature",
            "properties": {"class": "Water"},
            "geometry": {"type": "Polygon", "coordinates": []},
        },
    ]
    path = tmp_path / "mixed.geojson"
    crs = {"type": "name", "properties": {"name": "EPSG:32640"}}
    path.write_text(json.dumps({"type": "FeatureCollection", "crs": crs, "features": features}))
    labels = read_polygons(path, TABLE, "class")
    assert labels.dropped == 3 and labels.polygons.values.tolist() == [0]


def test_a_window_is_labelled_where_a_polygon_covers_a_pixel_centre_of_it(monkeypatch):
    from aerialseg.data import polygons

    left, top = ORIGIN
    transform = scene_transform()  # 0.5 m pixels

    def layer(*geometries):
        return polygons.PolygonLayer.of(UTM, list(geometries), [1] * len(geometries))

    # columns 0-9 (5 m), and 0.1 m past them: a fifth of column 10, short of its centre,
    # as a label edge is after a round trip through another CRS, or drawn past a block
    past = layer(box(left, top - 5, left + 5.1, top))
    assert past.covers_a_pixel_of(Window(0, 0, 10, 10), transform)
    assert not past.covers_a_pixel_of(Window(10, 0, 10, 10), transform)
    assert not layer(box(left, top - 5, left + 5 + 1e-9, top)).covers_a_pixel_of(
        Window(10, 0, 10, 10), transform
    )
    # 0.3 m past: column 10's centre (0.25 m in) is covered
    assert layer(box(left, top - 5, left + 5.3, top)).covers_a_pixel_of(
        Window(10, 0, 10, 10), transform
    )
    # read in strips: the one pixel covered lies in the last row of a 100-row window
    monkeypatch.setattr(polygons, "STRIP_PIXELS", 30)
    corner = layer(box(left + 4.5, top - 50, left + 5, top - 49.5))
    assert corner.covers_a_pixel_of(Window(0, 0, 10, 100), transform)
    assert not corner.covers_a_pixel_of(Window(0, 0, 9, 100), transform)
