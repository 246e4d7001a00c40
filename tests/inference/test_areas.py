"""areas: ground areas in m² in any CRS. The same scene in UTM and in longitude/latitude
gets the same areas, in the table and in the polygons; feet are converted; a plain image
is measured in pixels. Simplified polygons keep a coverage: no overlaps, no gaps."""

from __future__ import annotations

import fiona
import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_geom
from rasterio.windows import Window
from shapely.geometry import box, mapping, shape

from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.data.raster import InputError, open_input
from aerialseg.inference.areas import AreaMeasure
from aerialseg.inference.predict import NODATA, ChunkResult
from aerialseg.inference.vector import polygonize
from aerialseg.inference.writers import RasterOutputs, area_table
from tests.helpers.geotiff import TRANSFORM, UTM40N, write_geotiff
from tests.helpers.images import rgb_scene

WGS84 = CRS.from_epsg(4326)


def blocks(h: int, w: int) -> np.ndarray:
    """Class ids in four large blocks: Building, Land, Road, Water."""
    ids = np.zeros((h, w), dtype=np.uint8)
    ids[: h // 2, w // 2 :] = 1
    ids[h // 2 :, : w // 2] = 2
    ids[h // 2 :, w // 2 :] = 4
    return ids


def to_wgs84(path, out, resampling=Resampling.nearest, nodata=None):
    """``path`` warped onto longitude/latitude at about its own resolution."""
    with rasterio.open(path) as src:
        transform, w, h = calculate_default_transform(
            src.crs, WGS84, src.width, src.height, *src.bounds
        )
        profile = src.profile | {"crs": WGS84, "transform": transform, "width": w, "height": h}
        profile["nodata"] = nodata if nodata is not None else src.nodata
        with rasterio.open(out, "w", **profile) as dst:
            for band in range(1, src.count + 1):
                reproject(
                    rasterio.band(src, band),
                    rasterio.band(dst, band),
                    resampling=resampling,
                    dst_nodata=profile["nodata"],
                )
    return out


def table_areas(image, ids, tmp_path) -> dict[str, float]:
    """area_table of ``ids`` predicted over ``image`` (nodata where the image has none)."""
    raster = open_input(image)
    h, w = ids.shape
    values, valid = raster.read(Window(0, 0, w, h))
    outs = RasterOutputs(raster, DUBAI_CLASSES, tmp_path / image.stem, fmt="tif", color=False,
                         overlay=False)  # fmt: skip
    outs.write(ChunkResult(Window(0, 0, w, h), np.where(valid, ids, NODATA), values, valid))
    raster.close()
    outs.finish()
    return {r["class"]: r["area_m2"] for r in area_table(outs)}


def test_a_scene_in_longitude_latitude_has_the_areas_it_has_in_utm(tmp_path):
    h, w = 400, 300  # 200 m x 150 m at 0.5 m
    utm = write_geotiff(tmp_path / "utm.tif", rgb_scene(h, w), nodata=0)
    ids = blocks(h, w)
    labels = write_geotiff(tmp_path / "ids.tif", ids[None], nodata=NODATA)
    geo = to_wgs84(utm, tmp_path / "geo.tif", nodata=0)
    geo_ids = to_wgs84(labels, tmp_path / "geo_ids.tif", nodata=NODATA)
    with rasterio.open(geo_ids) as src:
        warped = src.read(1)
    in_utm, in_degrees = table_areas(utm, ids, tmp_path), table_areas(geo, warped, tmp_path)
    for name in ("Building", "Land", "Road", "Water"):
        assert in_utm[name] == pytest.approx(150 * 200 / 4)  # m², from the grid's own units
        # The warped blocks' edges move by up to a pixel: well within 1 % at this size.
        assert in_degrees[name] == pytest.approx(in_utm[name], rel=0.01), name
    # and the polygons, measured on their own, agree with the table
    polygons = polygonize(geo_ids, DUBAI_CLASSES, tmp_path / "geo", "gpkg", min_area=0)
    with fiona.open(polygons["polygons"]) as src:
        summed: dict[str, float] = {}
        for f in src:
            summed[f["properties"]["class"]] = (
                summed.get(f["properties"]["class"], 0.0) + f["properties"]["area_m2"]
            )
    for name, area in in_degrees.items():
        assert summed.get(name, 0.0) == pytest.approx(area, rel=1e-3), name


def test_a_polygon_keeps_its_area_in_every_crs():
    square = box(300_000, 2_800_000, 301_000, 2_801_000)  # 1 km² in UTM 40N
    utm = AreaMeasure(UTM40N, TRANSFORM, 10, 10)
    assert utm.polygon_area(square) == pytest.approx(1e6)
    degrees = shape(transform_geom(UTM40N, WGS84, mapping(shapely.segmentize(square, 10))))
    geo = AreaMeasure(WGS84, Affine(1e-5, 0, 55.0, 0, -1e-5, 25.3), 10, 10)
    # UTM's scale factor (0.9996 on the central meridian) makes its areas differ a little
    assert geo.polygon_area(degrees) == pytest.approx(1e6, rel=2e-3)
    # US survey feet, in New York, where the state plane's scale is within 1e-4 of 1
    feet = AreaMeasure(CRS.from_epsg(2263), Affine(0.5, 0, 987_000, 0, -0.5, 200_000), 10, 10)
    assert feet.polygon_area(box(0, 0, 1, 1)) == pytest.approx(0.3048006**2, rel=1e-6)
    assert feet.row_areas(0, 2) == pytest.approx([0.25 * 0.3048006**2] * 2, rel=1e-6)
    # 850 km north of New York its plane is 1.5 % past the ground: measured on the ground
    far = AreaMeasure(CRS.from_epsg(2263), TRANSFORM, 10, 10)
    assert far.row_areas(0, 1)[0] == pytest.approx(0.25 * 0.3048006**2 / 1.015, rel=2e-3)
    plain = AreaMeasure(None, Affine.identity(), 10, 10)  # a plain image: pixel coordinates
    assert (plain.unit, plain.field, plain.polygon_area(box(0, 0, 2, 3))) == ("px", "area_px", 6)
    # a transform without a CRS: polygons in its units, areas still in its pixels
    assert AreaMeasure(None, TRANSFORM, 10, 10).polygon_area(box(0, 0, 2, 3)) == 24


def test_web_mercator_pixels_are_measured_on_the_ground():
    """A review: plane areas in EPSG:3857, the CRS of web tiles, were 4 times the ground's
    at 60°N (its scale is 1 / cos(latitude) each way), in the table, the polygons' area_m2,
    --min-area and --simplify."""
    from rasterio.warp import transform as reproject_points

    mercator = CRS.from_epsg(3857)
    for lat in (30.0, 60.0):
        (x,), (y,) = reproject_points(WGS84, mercator, [10.0], [lat])
        measure = AreaMeasure(mercator, Affine(2, 0, x, 0, -2, y), 64, 64)
        quarter = np.cos(np.radians(lat)) ** 2  # of the 4 m² of a pixel's plane area
        assert measure.pixel_area() == pytest.approx(4 * quarter, rel=1e-2)
        square = box(x, y - 128, x + 128, y)  # the whole scene, as a polygon
        assert measure.polygon_area(square) == pytest.approx(64 * 64 * 4 * quarter, rel=1e-2)
        assert measure.map_length(1.0) == pytest.approx(1 / np.cos(np.radians(lat)), rel=1e-2)


def test_a_projected_place_no_forward_projection_reaches_is_refused():
    """A review: a UTM northing of 20,500 km has a longitude and latitude by PROJ's inverse
    (-121, -4.6), which GDAL then refused as it wrote GeoJSON: a traceback that stopped the
    batch."""
    from aerialseg.data.raster import InputError

    measure = AreaMeasure(UTM40N, Affine(2, 0, 300_000, 0, -2, 20_500_000), 64, 64, "far.tif")
    with pytest.raises(InputError, match="^far.tif: its georeference lies outside what its CRS"):
        measure.check_on_earth()
    for _ in range(3):  # GDAL no longer raises an error it has repeated: gives inf
        with pytest.raises(InputError, match="^far.tif: its georeference lies outside"):
            AreaMeasure(UTM40N, Affine(2, 0, 1e9, 0, -2, 2.8e6), 64, 64, "far.tif").check_on_earth()
    assert measure.pixel_area() == 4  # its plane, the one measure it has
    # pixels of no area measure 0 (a review: a ZeroDivisionError that stopped the batch)
    assert AreaMeasure(UTM40N, Affine(1e-300, 0, 4e5, 0, -1e-300, 2.8e6), 8, 8).pixel_area() == 0


@pytest.mark.parametrize(
    ("transform", "off", "holds"),
    [
        # the slack is a pixel's side, the longer of its column and row steps, at least 1
        (Affine(0.5, 0, 400_000, 0, -0.5, 2_800_000), (1.0, 0.0), True),  # exactly 1 unit
        (Affine(0.1, 0, 400_000, 0, -0.1, 2_800_000), (0.0, 0.5), True),  # under 1 unit
        (Affine(0.1, 0, 400_000, 0, -0.1, 2_800_000), (1.5, 0.0), False),  # past 1 unit
        (Affine(0.1, 0, 400_000, 0, -0.1, 2_800_000), (0.0, 1.5), False),
        (Affine(1, 0, 400_000, 0, -2, 2_800_000), (0.0, 1.9), True),  # a 2-unit row step
        (Affine(2, 0, 400_000, 0, -1, 2_800_000), (1.9, 0.0), True),  # a 2-unit column step
        (Affine(3, 0, 400_000, 0, -1, 2_800_000), (3.1, 0.0), False),
        # rotated: each step's length counts both its parts (hypot(2, 0.5) = 2.06)
        (Affine(2, 0, 400_000, 0.5, -1, 2_800_000), (2.03, 0.0), True),
        (Affine(1, 0.5, 400_000, 0, -2, 2_800_000), (0.0, 2.03), True),
    ],
)
def test_a_place_that_does_not_come_back_within_a_pixel_is_refused(
    monkeypatch, transform, off, holds
):
    """PROJ's inverse of some projections is a little off, and of a place no forward
    projection reaches, far off: within a pixel (and at least a unit) of where they were,
    the corners are on Earth; past it, refused. PROJ's way back is replaced by one that
    lands exactly ``off`` from the corners, so the edge of the slack is tested."""
    from aerialseg.data.raster import InputError
    from aerialseg.inference import areas

    real, corners = areas.reproject_points, {}

    def off_on_the_way_back(src, dst, xs, ys):
        if dst == "EPSG:4326":
            corners["xy"] = (list(xs), list(ys))
            return real(src, dst, xs, ys)
        xs, ys = corners["xy"]
        return [x + off[0] for x in xs], [y + off[1] for y in ys]

    monkeypatch.setattr(areas, "reproject_points", off_on_the_way_back)
    measure = AreaMeasure(UTM40N, transform, 64, 64, "scene.tif")
    if holds:
        measure.check_on_earth()
    else:
        with pytest.raises(InputError) as err:
            measure.check_on_earth()
        assert str(err.value) == (
            "scene.tif: its georeference lies outside what its CRS places on Earth (its"
            " corners do not map to one place and back): check the transform and the CRS"
        )


def test_pixels_in_degrees_shrink_towards_the_poles():
    def pixel_m2(lat: float) -> float:
        return AreaMeasure(WGS84, Affine(1e-4, 0, 10.0, 0, -1e-4, lat), 100, 1).pixel_area()

    # a 1e-4 degree pixel: about 11.1 m tall and 11.1 m x cos(latitude) wide
    for lat in (0.0, 45.0, 60.0):
        expected = (1e-4 * 111_320) ** 2 * np.cos(np.radians(lat))
        assert pixel_m2(lat) == pytest.approx(expected, rel=0.01), lat
    rows = AreaMeasure(WGS84, Affine(0.1, 0, 10.0, 0, -0.1, 60.0), 10, 100).row_areas(0, 100)
    assert np.all(np.diff(rows) > 0)  # southwards, from 60° N, each row's pixels are larger


@pytest.mark.parametrize("crs", [UTM40N, WGS84])
def test_simplified_polygons_keep_a_coverage(tmp_path, crs):
    rng = np.random.default_rng(3)
    # blobs of classes: many shared, jagged edges that a simplification could pull apart
    coarse = rng.integers(0, 5, (12, 12)).astype(np.uint8)
    ids = np.kron(coarse, np.ones((8, 8), dtype=np.uint8))
    ids[rng.random(ids.shape) < 0.05] = 1
    ids[:10, :10] = NODATA
    transform = TRANSFORM if crs == UTM40N else Affine(5e-6, 0, 55.0, 0, -5e-6, 25.3)
    raster = write_geotiff(
        tmp_path / "c.tif", ids[None], nodata=NODATA, crs=crs, transform=transform
    )
    written = polygonize(raster, DUBAI_CLASSES, tmp_path / "s", "gpkg", simplify=2.0, min_area=0)
    with fiona.open(written["polygons"]) as src:
        polygons = [shape(f["geometry"]) for f in src]
    union = shapely.union_all(polygons)
    overlap = sum(p.area for p in polygons) - union.area
    valid = shapely.union_all(
        [shape(g) for g, v in rasterio.features.shapes(ids, transform=transform) if v != NODATA]
    )
    assert overlap == pytest.approx(0, abs=1e-9 * union.area)
    # no gap opened: the union is exactly the pixels that have a class
    assert union.symmetric_difference(valid).area == pytest.approx(0, abs=1e-9 * union.area)
    plain = polygonize(raster, DUBAI_CLASSES, tmp_path / "p", "gpkg", min_area=0)
    with fiona.open(plain["polygons"]) as src:
        assert len(src) == len(polygons)  # each region simplified, none lost
        vertices = sum(len(shape(f["geometry"]).exterior.coords) for f in src)
    assert sum(len(p.exterior.coords) for p in polygons) < vertices


def in_small_regions(ids: np.ndarray, size: int) -> np.ndarray:
    """Pixels of 4-connected regions of one class with fewer than ``size`` pixels."""
    from scipy import ndimage

    small = np.zeros(ids.shape, dtype=bool)
    for value in np.unique(ids[ids != NODATA]):
        labels, _ = ndimage.label(ids == value)
        sizes = np.bincount(labels.ravel())
        small |= (labels > 0) & (sizes[labels] < size)
    return small


def test_min_area_sieves_the_raster_so_polygons_cover_it_without_holes(tmp_path, monkeypatch):
    """Specks under min_area merge into a neighbour in the class raster, the colour mask and
    the areas; the polygons are that raster's, so they leave no hole. The sieve runs in
    bands of rows with a margin, as on a scene too large to hold whole."""
    import aerialseg.inference.writers as writers

    monkeypatch.setattr(writers, "SIEVE_ROWS", 16)
    monkeypatch.setattr(writers, "SIEVE_MARGIN", 4)
    rng = np.random.default_rng(5)
    ids = np.kron(rng.integers(0, 5, (6, 6)), np.ones((10, 10), dtype=np.uint8)).astype(np.uint8)
    specks = rng.random(ids.shape) < 0.03
    ids[specks] = (ids[specks] + 1) % 5
    ids[:5, :5] = NODATA
    image = write_geotiff(tmp_path / "s.tif", rgb_scene(60, 60))
    raster = open_input(image)
    values, valid = raster.read(Window(0, 0, 60, 60))
    valid &= ids != NODATA
    outs = RasterOutputs(raster, DUBAI_CLASSES, tmp_path / "s", fmt="tif", color=True,
                         overlay=False, sieve_pixels=4)  # fmt: skip
    outs.write(ChunkResult(Window(0, 0, 60, 60), np.where(valid, ids, NODATA), values, valid))
    raster.close()
    written = outs.finish()
    with rasterio.open(written["classes"]) as src:
        sieved = src.read(1)
    with rasterio.open(written["color"]) as src:
        color = src.read()
    # only specks changed, and none is left (a band's margin holds any speck whole)
    changed = sieved != ids
    assert changed.any() and not (changed & ~in_small_regions(ids, 4)).any()
    assert not in_small_regions(sieved, 4).any()
    assert color[:3].transpose(1, 2, 0)[sieved != NODATA].tolist() == (
        DUBAI_CLASSES.display_palette()[sieved[sieved != NODATA]].tolist()
    )
    counts = np.bincount(sieved[sieved != NODATA], minlength=6)[:6]
    assert outs.counts.tolist() == counts.tolist()
    assert outs.areas.tolist() == pytest.approx((counts * 0.25).tolist())
    polygons = polygonize(written["classes"], DUBAI_CLASSES, tmp_path / "s", "gpkg", min_area=0)
    with fiona.open(polygons["polygons"]) as src:
        shapes_ = [shape(f["geometry"]) for f in src]
    assert min(p.area for p in shapes_) >= 4 * 0.25 - 1e-9  # no speck left
    union = shapely.union_all(shapes_)
    assert union.area == pytest.approx(((sieved != NODATA).sum()) * 0.25)
    assert sum(p.area for p in shapes_) == pytest.approx(union.area)  # no overlap


def test_areas_do_not_depend_on_how_the_rows_come(tmp_path):
    """Float sums depend on their order, and a Ray run's blocks bring the rows in other
    chunks than one process's bands: where a pixel's area varies by row (degrees, Web
    Mercator) the areas table differed in its 13th digit (a review). They are summed
    exactly."""
    h, w = 90, 70
    ids = blocks(h, w)
    image = write_geotiff(
        tmp_path / "geo.tif", rgb_scene(h, w), crs=WGS84,
        transform=Affine(1e-4, 0, 55.0, 0, -1e-4, 60.0),
    )  # fmt: skip
    tables = []
    for cuts in ([0, h], [0, 1, 8, 31, 64, h], list(range(h + 1))):
        raster = open_input(image)
        outs = RasterOutputs(raster, DUBAI_CLASSES, tmp_path / f"o{len(cuts)}", fmt="tif",
                             color=False, overlay=False)  # fmt: skip
        for top, bottom in zip(cuts, cuts[1:], strict=False):
            win = Window(0, top, w, bottom - top)
            values, valid = raster.read(win)
            outs.write(ChunkResult(win, ids[top:bottom], values, valid))
        raster.close()
        outs.finish()
        tables.append(outs.areas.tolist())
        assert len(set(outs.measure.row_areas(0, h).tolist())) > 1  # varies by row
    assert tables[0] == tables[1] == tables[2]  # to the last bit


def test_a_georeference_off_the_earth_is_told_by_its_edges_in_one_line():
    """Each limit, at and past it, and the edge where a scene crosses it: the corners and
    the middles of the edges are what is checked."""
    from aerialseg.data.raster import InputError

    def check(transform, width=60, height=10):
        AreaMeasure(WGS84, transform, width, height, "s.tif").check_on_earth()

    check(Affine(1, 0, 300, 0, -1, 90))  # from 300°E to 360°E, its top at the pole: on Earth
    with pytest.raises(InputError) as err:
        check(Affine(1, 0, 301, 0, -1, 50))  # its right edge at 361°E
    assert str(err.value) == (
        "s.tif: its georeference goes round the globe (longitudes 301 to 361): check the"
        " transform and the CRS"
    )
    with pytest.raises(InputError) as err:
        check(Affine(1, 0, 10, 0, 1, 85))  # south-up: its bottom edge at 95°N
    assert str(err.value) == (
        "s.tif: its georeference reaches past the poles (latitudes 85 to 95): check the"
        " transform and the CRS"
    )
    far = AreaMeasure(UTM40N, Affine(2, 0, 300_000, 0, -2, 20_500_000), 64, 64, "far.tif")
    with pytest.raises(InputError) as err:
        far.check_on_earth()
    assert str(err.value) == (
        "far.tif: its georeference lies outside what its CRS places on Earth (its corners"
        " do not map to one place and back): check the transform and the CRS"
    )
    profile = {"driver": "GTiff", "width": 4, "height": 4, "count": 1, "dtype": "uint8"}
    with rasterio.MemoryFile() as memory:
        south_up = memory.open(**profile, crs=WGS84, transform=Affine(1, 0, 0, 0, 1, 89))
        with south_up, pytest.raises(InputError, match="^the raster: its georeference reaches"):
            AreaMeasure.of(south_up).check_on_earth()  # named by default


def test_lengths_and_the_middle_rows_pixel():
    # a plain image: pixels, in the transform's units (2 a pixel)
    plain = AreaMeasure(None, Affine(2, 0, 0, 0, -2, 0), 10, 10)
    assert plain.map_length(3.0) == pytest.approx(6.0)
    # in degrees the pixel of the middle row (50 of 101) is the scene's pixel area
    tall = AreaMeasure(WGS84, Affine(0.1, 0, 10.0, 0, -0.1, 70.0), 10, 101)
    rows = tall.row_areas(0, 101)
    assert len(rows) == 101 and len(tall.row_areas(7, 3)) == 3
    assert tall.pixel_area() == pytest.approx(rows[50], rel=1e-12)
    assert abs(rows[50] - rows[33]) > 1e-3 * rows[50] and abs(rows[50] - rows[51]) > 0


def test_a_rotated_grid_in_degrees_measures_its_footprint():
    """Rows of a grid rotated 30° in degrees are slanted strips: their areas add up to the
    scene's footprint measured on its own equal-area plane."""
    rotated = Affine.translation(10.0, 60.0) @ Affine.rotation(30) @ Affine.scale(0.01, -0.01)
    measure = AreaMeasure(WGS84, rotated, 40, 30)
    corners = [rotated @ p for p in ((0, 0), (40, 0), (40, 30), (0, 30))]
    footprint = shapely.segmentize(shapely.Polygon(corners), 0.001)
    total = measure.row_areas(0, 30).sum() * 40
    assert total == pytest.approx(measure.polygon_area(footprint), rel=1e-4)


def test_a_raster_of_the_whole_globe_is_one_line_not_a_gdal_error():
    """A review: a 64 x 64 GeoTIFF of the whole globe (EPSG:4326) got a 500 from the
    server: its edges reach the point opposite its centre, which the scene's equal-area
    projection cannot hold ('Point outside of projection domain')."""
    world = Affine(5.625, 0, -180, 0, -2.8125, 90)
    measure = AreaMeasure(CRS.from_epsg(4326), world, 64, 64, "world.tif")
    measure.check_on_earth()  # on Earth: it is the measuring that cannot be done
    with pytest.raises(InputError) as err:
        measure.pixel_area()
    assert str(err.value) == (
        "world.tif: its area cannot be measured on one equal-area projection (Point outside"
        " of projection domain): does it cover most of the globe? Cut it into parts"
    )
