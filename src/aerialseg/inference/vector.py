"""Class raster -> polygons (one feature per connected region), GeoJSON or GeoPackage.

GDAL's polygonize (through rasterio.features.shapes) reads the band itself, so the raster
need not fit in memory as an array of Python objects; shapely simplifies and measures,
fiona writes. A polygon's ``class_id`` is the raster's value under it (the class id, or the
class table's mask value). GeoPackage keeps the input's CRS; GeoJSON follows RFC 7946
(GDAL's RFC7946 option): longitude and latitude on WGS 84, with no ``crs`` member. Areas
are ground areas in m² in any CRS (``area_m2``, see areas.py), measured before that; a
plain image's are in pixels (``area_px``), and its polygons stay in pixel coordinates,
which RFC 7946 has no place for. ``simplify`` simplifies all polygons together as one
coverage (shapely's coverage_simplify), so neighbours keep their shared edges.
Each file gets a QGIS style of its name beside it (``.qml``); a GeoPackage also holds it
in its ``layer_styles`` table, which QGIS reads as the layer's default style.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import fiona
import numpy as np
import rasterio
import shapely
import shapely.affinity
from rasterio.features import shapes
from rasterio.warp import transform, transform_geom
from shapely.geometry import Polygon, mapping, shape

from aerialseg.data.classes import ClassTable
from aerialseg.data.raster import no_georeference_warning
from aerialseg.files import OutputSet
from aerialseg.inference.areas import AreaMeasure
from aerialseg.inference.styles import polygons_qml
from aerialseg.inference.writers import write_text

DRIVERS = {"geojson": ("GeoJSON", ".geojson"), "gpkg": ("GPKG", ".gpkg")}
# RFC 7946's CRS: longitude and latitude on WGS 84
LONLAT = "EPSG:4326"
# Polygons reprojected (in_lonlat) and written this many at a time: memory stays bounded
# however many regions a scene has
WRITE_BATCH = 4096
# Polygons under this many pixels are dropped unless min_area says otherwise: single
# pixels and specks of two or three, which clutter a map and an attribute table.
MIN_AREA_PIXELS = 4
# A min area past the Earth's surface (m²; no image has as many pixels) is a typo, refused
# before any work, not a threshold: 1e308 m² is infinite pixels of 0.25 m².
MAX_MIN_AREA = 5.1e14
# The table QGIS keeps a GeoPackage's styles in (the columns it reads and writes).
STYLE_FIELDS = (
    "f_table_catalog",
    "f_table_schema",
    "f_table_name",
    "f_geometry_column",
    "styleName",
    "styleQML",
    "styleSLD",
    "useAsDefault",
    "description",
    "owner",
    "ui",
    "update_time",
)


def sieve_size(dataset, min_area: float | None) -> int:
    """The sieve threshold in pixels for ``min_area`` (m², pixels for a plain image; None:
    MIN_AREA_PIXELS) over ``dataset``'s grid: regions of fewer pixels go. At most the
    scene's pixel count: a larger threshold says no more (every region is smaller than
    the scene), and in pixels it may not even be a number (1e308 m² over 0.25 m² pixels)."""
    scene = dataset.width * dataset.height
    if min_area is None:
        return min(MIN_AREA_PIXELS, scene)
    measure = AreaMeasure.of(dataset)
    pixels = min_area / measure.pixel_area() - 1e-9
    return scene if not pixels < scene else math.ceil(pixels)  # not <: inf and NaN too


def _moved(polygon: Polygon, affine) -> Polygon:
    return shapely.affinity.affine_transform(polygon, affine.to_shapely())


def in_lonlat(polygons: list[Polygon], crs) -> list[dict]:
    """``polygons`` in ``crs`` reprojected to longitude and latitude, as GeoJSON mappings:
    with one call for every point of them, and by GDAL, one at a time, cut at the
    antimeridian, those whose ring jumps across it (or circles a pole). Hand-written:
    GDAL's RFC 7946 writer reprojects too, but wrote empty polygons of a UTM scene that
    crosses the antimeridian (a review); GDAL's transform_geom of every polygon took 27 s
    of 60,509 polygons where the writer's whole run took 18 s, and this 7 s."""
    coords = shapely.get_coordinates(polygons)
    lons, lats = (np.asarray(v) for v in transform(crs, LONLAT, coords[:, 0], coords[:, 1]))
    counts = shapely.get_num_coordinates(polygons)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    jumps = np.concatenate([[False], np.abs(np.diff(lons)) > 180])
    jumps[first] = False  # from the last point of the polygon before
    crossing = np.logical_or.reduceat(jumps, first)
    moved = shapely.set_coordinates(np.array(polygons, dtype=object), np.column_stack([lons, lats]))
    return [
        transform_geom(crs, LONLAT, mapping(old), antimeridian_cutting=True)
        if cut
        else mapping(new)
        for old, new, cut in zip(polygons, moved, crossing, strict=True)
    ]


def polygonize(
    class_raster: Path,
    classes: ClassTable,
    out_stem: Path,
    fmt: str,
    *,
    simplify: float = 0.0,
    min_area: float | None = None,
    into: OutputSet | None = None,
    grid: tuple | None = None,
) -> dict[str, Path]:
    """Write one polygon per region of equal class, and its style; returns both files
    (``polygons``, ``polygons_style``). ``simplify`` is a length in metres, ``min_area``
    an area in m² (pixels for a plain image, in both); ``min_area`` None drops polygons
    under MIN_AREA_PIXELS pixels, 0 keeps all. ``into``: the output set they belong to
    (None: renamed into place at once). ``grid``: the class raster's (CRS, transform)
    where its file does not hold them (a staged PNG, its georeference in a sidecar under
    another name)."""
    driver, suffix = DRIVERS[fmt]
    final = out_stem.with_name(out_stem.name + "_polygons" + suffix)
    outputs = into if into is not None else OutputSet(out_stem.parent, out_stem.name)
    tmp = outputs.temp(final, f"tmp{suffix}")  # the suffix tells fiona the format
    codes, nodata, _ = classes.raster_coding()
    names = {int(code): classes.names[i] for i, code in enumerate(codes[: classes.num_classes])}
    with no_georeference_warning():  # polygons of a plain image are in pixels, by design
        src = rasterio.open(class_raster)
    try:
        with src:
            crs, transform = grid if grid is not None else (src.crs, src.transform)
            measure = AreaMeasure(crs, transform, src.width, src.height)
            # RFC 7946 needs a place on Earth: a plain image's polygons stay in pixels
            to_lonlat = fmt == "geojson" and crs is not None
            options = {"RFC7946": "YES"} if to_lonlat else {}
            if min_area is None:
                min_area = MIN_AREA_PIXELS * measure.pixel_area()
            # GDAL polygonizes a band in its file's own coordinates; moved onto ``grid``'s
            moved = transform * ~src.transform
            regions: Iterable[tuple[Polygon, int]] = (
                (shape(geom) if moved.is_identity else _moved(shape(geom), moved), int(value))
                for geom, value in shapes(rasterio.band(src, 1), transform=src.transform)
                if int(value) != nodata  # no input there: no polygon
            )
            if simplify > 0:
                # Simplified together, shared edges stay shared: no gaps, no overlaps. This
                # needs every polygon at once; without it they stream.
                kept = list(regions)
                # The outline (the image's edge, nodata) stays as it is: the union of the
                # polygons remains exactly the pixels that have a class.
                simple = shapely.coverage_simplify(
                    [poly for poly, _ in kept],
                    measure.map_length(simplify),
                    simplify_boundary=False,
                )
                regions = zip(simple, (value for _, value in kept), strict=True)
            schema = {
                # cut at the antimeridian, a polygon is a MultiPolygon (GeoJSON has no
                # layer type to keep)
                "geometry": "Unknown" if to_lonlat else "Polygon",
                "properties": {"class_id": "int", "class": "str", measure.field: "float"},
            }
            with fiona.open(
                tmp,
                "w",
                driver=driver,
                schema=schema,
                layer="polygons",
                crs=LONLAT if to_lonlat else crs.to_wkt() if crs else None,
                **options,
            ) as sink:
                measured = (
                    (poly, value, area)
                    for poly, value in regions
                    if not poly.is_empty and (area := measure.polygon_area(poly)) >= min_area
                )
                while batch := list(itertools.islice(measured, WRITE_BATCH)):
                    polygons = [poly for poly, _, _ in batch]
                    if to_lonlat:
                        geometries = in_lonlat(polygons, crs)
                    else:
                        geometries = [mapping(poly) for poly in polygons]
                    sink.writerecords(
                        {
                            "geometry": geometry,
                            "properties": {
                                "class_id": value,
                                "class": names[value],
                                measure.field: area,
                            },
                        }
                        for geometry, (_, value, area) in zip(geometries, batch, strict=True)
                    )
        style = polygons_qml(classes)
        if fmt == "gpkg":
            description = "class colours and names of the model that predicted them"
            store_styles(tmp, [("polygons", "aerialseg classes", style, description)])
        qml = write_text(final.with_suffix(".qml"), style, outputs)
    except BaseException:
        outputs.abort()
        raise
    if into is None:
        outputs.commit()
    return {"polygons": final, "polygons_style": qml}


def store_styles(gpkg: Path, styles: list[tuple[str, str, str, str]]) -> None:
    """Add each (layer, style name, QML, description) to the GeoPackage as that layer's
    default QGIS style."""
    fields = dict.fromkeys(STYLE_FIELDS, "str") | {
        "useAsDefault": "bool",
        "update_time": "datetime",
    }
    schema = {"geometry": "None", "properties": fields}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    with fiona.open(gpkg, "w", driver="GPKG", layer="layer_styles", schema=schema) as table:
        for layer, name, qml, description in styles:
            row: dict = dict.fromkeys(STYLE_FIELDS, "")
            row.update(
                f_table_name=layer,
                f_geometry_column="geom",  # the geometry column OGR's GeoPackage driver names
                styleName=name,
                styleQML=qml,
                styleSLD=None,
                useAsDefault=True,
                description=description,
                update_time=now,
            )
            table.write({"geometry": None, "properties": row})
