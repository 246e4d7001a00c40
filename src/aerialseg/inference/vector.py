"""Class raster -> polygons (one feature per connected region), GeoJSON or GeoPackage.

GDAL's polygonize (through rasterio.features.shapes) reads the band itself, so the raster
need not fit in memory as an array of Python objects; shapely simplifies and measures,
fiona writes with the input's CRS.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import fiona
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import shapes
from shapely.geometry import mapping, shape

from aerialseg.data.classes import ClassTable
from aerialseg.files import temp_path

DRIVERS = {"geojson": ("GeoJSON", ".geojson"), "gpkg": ("GPKG", ".gpkg")}
SCHEMA = {"geometry": "Polygon", "properties": {"class_id": "int", "class": "str", "area": "float"}}


def polygonize(
    class_raster: Path,
    classes: ClassTable,
    out_stem: Path,
    fmt: str,
    *,
    simplify: float = 0.0,
    min_area: float = 0.0,
) -> Path:
    """Write one polygon per region of equal class. ``simplify`` and ``min_area`` are in
    map units (metres for a projected CRS, pixels for a plain image)."""
    driver, suffix = DRIVERS[fmt]
    final = out_stem.with_name(out_stem.name + "_polygons" + suffix)
    tmp = temp_path(final, f"tmp{suffix}")  # the suffix tells fiona the format
    codes, nodata, _ = classes.raster_coding()
    class_of = {int(code): i for i, code in enumerate(codes[: classes.num_classes])}
    with warnings.catch_warnings():  # polygons of a plain image are in pixels, by design
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        src = rasterio.open(class_raster)
    with src:
        crs = src.crs
        band = rasterio.band(src, 1)
        with fiona.open(
            tmp,
            "w",
            driver=driver,
            schema=SCHEMA,
            layer="polygons",
            crs=crs.to_wkt() if crs else None,
        ) as sink:
            for geom, value in shapes(band, transform=src.transform):
                if int(value) == nodata:  # no input there: no polygon
                    continue
                cls = class_of[int(value)]
                poly = shape(geom)
                if simplify > 0:
                    poly = poly.simplify(simplify, preserve_topology=True)
                if poly.is_empty or poly.area < min_area:
                    continue
                sink.write(
                    {
                        "geometry": mapping(poly),
                        "properties": {
                            "class_id": cls,
                            "class": classes.names[cls],
                            "area": float(poly.area),
                        },
                    }
                )
    os.replace(tmp, final)
    return final
