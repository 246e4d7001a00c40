"""Ground areas in square metres for a raster in any CRS, or in pixels for a plain image.

A projected CRS gives plane areas in its own linear unit, converted to m² (metres, feet,
US survey feet alike). A geographic CRS (longitude and latitude, as web downloads and
many drone exports come) has no plane to measure on: its pixels shrink towards the poles.
There every shape is projected onto a Lambert azimuthal equal-area projection centred on
the scene (GDAL/PROJ through rasterio, no extra library), whose plane areas are the
ellipsoid's own, and measured there. A pixel's area then depends on its row only (the
grid is north-up), so pixel counts are weighted per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import shapely
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.io import DatasetReader
from rasterio.warp import transform as reproject_points
from rasterio.warp import transform_geom
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from aerialseg.data.raster import InputError
from aerialseg.errors import library_reason

EDGE_POINTS = 64  # points along each row's edges: a parallel is curved on the plane


@dataclass(frozen=True)
class AreaMeasure:
    """How the pixels and polygons of one raster (``crs``, ``transform``, size) are
    measured, in ``unit``: ``"m2"``, or ``"px"`` for a plain image."""

    crs: CRS | None
    transform: Affine
    width: int
    height: int
    name: str = "the raster"  # how errors name it

    @classmethod
    def of(cls, dataset: DatasetReader, name: str = "the raster") -> AreaMeasure:
        """The measure of an open raster's grid."""
        return cls(dataset.crs, dataset.transform, dataset.width, dataset.height, name)

    @property
    def unit(self) -> Literal["m2", "px"]:
        return "px" if self.crs is None else "m2"

    @property
    def field(self) -> str:
        """The name an area in this unit goes by in polygon attributes."""
        return f"area_{self.unit}"

    def check_on_earth(self) -> None:
        """Raise InputError where the raster's corners and edges have no longitude and
        latitude: past its CRS's domain (a 500 from GDAL when GeoJSON, which is WGS84, was
        written), past the poles, or more than a turn round the globe."""
        steps = [0, 0.5, 1]
        points = [(fx * self.width, fy * self.height) for fx in steps for fy in steps]
        xs, ys = zip(*(self.transform @ point for point in points), strict=True)
        try:
            lons, lats = reproject_points(self.crs, "EPSG:4326", xs, ys)
        except CPLE_BaseError as err:  # GDAL's "Point outside of projection domain"
            raise InputError(
                f"{self.name}: its georeference lies outside what its CRS places on Earth"
                f" ({library_reason(err)}): check the transform and the CRS"
            ) from None
        if not all(math.isfinite(lat) and abs(lat) <= 90 for lat in lats):
            raise InputError(
                f"{self.name}: its georeference reaches past the poles (latitudes"
                f" {min(lats):g} to {max(lats):g}): check the transform and the CRS"
            )
        if not all(math.isfinite(lon) and abs(lon) <= 360 for lon in lons):
            raise InputError(
                f"{self.name}: its georeference goes round the globe (longitudes"
                f" {min(lons):g} to {max(lons):g}): check the transform and the CRS"
            )

    @cached_property
    def _equal_area(self) -> CRS:
        self.check_on_earth()
        x, y = self.transform @ (self.width / 2, self.height / 2)
        lon, lat = reproject_points(self.crs, "EPSG:4326", [x], [y])
        return CRS.from_proj4(
            f"+proj=laea +lat_0={lat[0]:.8f} +lon_0={lon[0]:.8f} +datum=WGS84 +units=m"
        )

    @cached_property
    def _unit_squared(self) -> float:
        """m² per square unit of a projected CRS; for a plain image, pixels per square unit
        of its transform (1 for none: pixel coordinates)."""
        t = self.transform
        if self.crs is None:
            return 1 / abs(t.a * t.e - t.b * t.d)
        try:
            return float(self.crs.linear_units_factor[1]) ** 2
        except CRSError:  # an engineering CRS (a site grid) or a geocentric one (X, Y, Z)
            raise InputError(
                f"{self.crs.to_string() or 'its CRS'}: neither a projected nor a geographic"
                " CRS (a local or geocentric one), whose x and y aerialseg cannot measure in"
                " metres: reproject the image to a projected CRS (gdalwarp -t_srs EPSG:...)"
            ) from None

    def row_areas(self, row_off: int, height: int) -> np.ndarray:
        """The area of one pixel in each of ``height`` rows from ``row_off``, in ``unit``."""
        t = self.transform
        if self.crs is None:
            return np.ones(height)
        if not self.crs.is_geographic:
            return np.full(height, abs(t.a * t.e - t.b * t.d) * self._unit_squared)
        # Each row is a strip the whole width wide: its edges densified, projected, measured.
        cols = np.linspace(0, self.width, EDGE_POINTS)
        rows = np.arange(row_off, row_off + height + 1, dtype=np.float64)
        c, r = np.meshgrid(cols, rows)
        xs, ys = t.c + t.a * c.ravel() + t.b * r.ravel(), t.f + t.d * c.ravel() + t.e * r.ravel()
        ex, ey = reproject_points(self.crs, self._equal_area, xs, ys)
        edges = np.stack([ex, ey], axis=-1).reshape(len(rows), EDGE_POINTS, 2)
        rings = np.concatenate([edges[:-1], edges[1:, ::-1]], axis=1)
        return shapely.area(shapely.polygons(rings)) / self.width

    def pixel_area(self) -> float:
        """The area of a pixel of the middle row, in ``unit``."""
        return float(self.row_areas(self.height // 2, 1)[0])

    def polygon_area(self, polygon: BaseGeometry) -> float:
        """The area of ``polygon`` (in the raster's CRS, or pixels) in ``unit``."""
        if self.crs is None or not self.crs.is_geographic:
            return float(polygon.area) * self._unit_squared
        return float(shape(transform_geom(self.crs, self._equal_area, mapping(polygon))).area)

    def map_length(self, length: float) -> float:
        """``length`` in metres (pixels for a plain image) in the CRS's units, as at the
        middle of the scene."""
        t = self.transform
        if self.crs is None:  # pixels, in the transform's units
            return length * math.sqrt(abs(t.a * t.e - t.b * t.d))
        side = math.sqrt(abs(t.a * t.e - t.b * t.d))  # a pixel's side in CRS units
        return length * side / math.sqrt(self.pixel_area())
