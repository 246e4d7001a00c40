"""Ground areas in square metres for a raster in any CRS, or in pixels for a plain image.

Ground areas, whatever the CRS. A projected CRS made to measure on (UTM, state planes,
national grids) gives plane areas within PLANE_TOLERANCE of the ground's, converted to m²
from its unit (metres, feet, US survey feet alike), as GIS's planimetric areas are. A
geographic CRS (longitude and latitude, as many drone exports come) has no plane to
measure on, and other projections' plane areas are not the ground's (on Web Mercator, the
CRS of web tiles, a pixel at 60°N covers a quarter of its plane area). There every shape
is projected onto a Lambert azimuthal equal-area projection centred on the scene
(GDAL/PROJ through rasterio, no extra library), whose plane areas are the ellipsoid's own,
and measured there. A pixel's area is then taken per row (a row's strip over the whole
width, divided by the width), so pixel counts are weighted per row.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
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

# Plane areas within this share of the ground's are taken as they are: UTM's are within
# 0.2 % across its zone; Web Mercator's 0.7 % off at the equator, 4 times at 60°N.
PLANE_TOLERANCE = 0.005
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
    def _plane_pixel(self) -> float:
        """A pixel's area on the plane of its transform, in square CRS units."""
        return abs(self.transform.determinant)

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
        if not all(math.isfinite(v) for v in (*lons, *lats)):  # GDAL's error, once it is
            # repeated and no longer raised ("further errors will be suppressed")
            raise InputError(
                f"{self.name}: its georeference lies outside what its CRS places on Earth:"
                " check the transform and the CRS"
            )
        if not all(abs(lat) <= 90 for lat in lats):
            raise InputError(
                f"{self.name}: its georeference reaches past the poles (latitudes"
                f" {min(lats):g} to {max(lats):g}): check the transform and the CRS"
            )
        if not all(math.isfinite(lon) and abs(lon) <= 360 for lon in lons):
            raise InputError(
                f"{self.name}: its georeference goes round the globe (longitudes"
                f" {min(lons):g} to {max(lons):g}): check the transform and the CRS"
            )
        if self.crs is None or self.crs.is_geographic:  # degrees to degrees: nothing more
            return
        # PROJ's inverse of a projection answers for points no forward one reaches (a UTM
        # northing of 20,500 km: lon -121, lat -4.6), which GDAL's writers then refuse:
        # the place must come back to where it was
        back_x, back_y = reproject_points("EPSG:4326", self.crs, lons, lats)
        t = self.transform
        # a pixel, and at least a unit: PROJ's inverse of some projections is off by a tenth
        # of a metre (Robinson), past a 10 cm pixel; a place no projection reaches is km off
        slack = max(math.hypot(t.a, t.d), math.hypot(t.b, t.e), 1.0)
        back = zip(back_x, back_y, xs, ys, strict=True)
        off = max(math.hypot(a - x, b - y) for a, b, x, y in back)
        if not off <= slack:
            raise InputError(
                f"{self.name}: its georeference lies outside what its CRS places on Earth"
                f" (its corners do not map to one place and back): check the transform and"
                " the CRS"
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
        if self.crs is None:
            return 1 / self._plane_pixel
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
        if self.crs is None:
            return np.ones(height)
        if self._on_plane:
            return np.full(height, self._plane_pixel * self._unit_squared)
        return self._strip_areas(row_off, height)

    @cached_property
    def _on_plane(self) -> bool:
        """Whether the CRS's plane areas are the ground's here, within PLANE_TOLERANCE:
        those of UTM, state planes and national grids, made to measure on, are taken as
        they are (GIS's planimetric areas); elsewhere (Web Mercator, whose plane areas are
        4 times the ground's at 60°N; world projections) every shape is measured on the
        scene's equal-area projection. A scene with no place on Earth has only its plane."""
        assert self.crs is not None
        if self.crs.is_geographic:
            return False
        plane = self._plane_pixel * self._unit_squared  # a CRS without units: raises
        if not plane > 0:  # pixels of no area (1e-300 units a side): nothing to measure
            return True
        try:
            ground = float(self._strip_areas(self.height // 2, 1)[0])
        except InputError:
            return True
        return abs(ground / plane - 1) <= PLANE_TOLERANCE

    def _strip_areas(self, row_off: int, height: int) -> np.ndarray:
        """Each row's ground area over its width: its strip the whole width wide, edges
        densified, on the scene's equal-area projection."""
        t = self.transform
        cols = np.linspace(0, self.width, EDGE_POINTS)
        rows = np.arange(row_off, row_off + height + 1, dtype=np.float64)
        c, r = np.meshgrid(cols, rows)
        xs, ys = t.c + t.a * c.ravel() + t.b * r.ravel(), t.f + t.d * c.ravel() + t.e * r.ravel()
        with self._measuring():
            ex, ey = reproject_points(self.crs, self._equal_area, xs, ys)
        edges = np.stack([ex, ey], axis=-1).reshape(len(rows), EDGE_POINTS, 2)
        rings = np.concatenate([edges[:-1], edges[1:, ::-1]], axis=1)
        return shapely.area(shapely.polygons(rings)) / self.width

    def pixel_area(self) -> float:
        """The area of a pixel of the middle row, in ``unit``."""
        return float(self.row_areas(self.height // 2, 1)[0])

    def polygon_area(self, polygon: BaseGeometry) -> float:
        """The area of ``polygon`` (in the raster's CRS, or pixels) in ``unit``."""
        if self.crs is None or self._on_plane:
            return float(polygon.area) * self._unit_squared
        return float(shape(transform_geom(self.crs, self._equal_area, mapping(polygon))).area)

    @contextmanager
    def _measuring(self):
        """Reprojecting onto the scene's equal-area projection, which holds all of the
        Earth but the point opposite the scene's centre: a raster of the whole globe
        reaches it (a review: a 500 from GDAL's 'Point outside of projection domain')."""
        try:
            yield
        except CPLE_BaseError as err:
            raise InputError(
                f"{self.name}: its area cannot be measured on one equal-area projection"
                f" ({library_reason(err)}): does it cover most of the globe? Cut it into parts"
            ) from None

    def map_length(self, length: float) -> float:
        """``length`` in metres (pixels for a plain image) in the CRS's units, as at the
        middle of the scene."""
        if self.crs is None:  # pixels, in the transform's units
            return length * math.sqrt(self._plane_pixel)
        side = math.sqrt(self._plane_pixel)  # a pixel's side in CRS units
        return length * side / math.sqrt(self.pixel_area())


SMALLEST_STEP = 1074  # every float is a whole number of 2**-1074


class AreaTotals:
    """The area of each class, summed exactly from per-row pixel counts and row areas.

    A float sum depends on its order, and rows come in chunks that differ between a single
    process's bands and a Ray run's blocks: the areas table differed in its 13th digit
    (a review) where a pixel's area varies by row. Each term is a whole number of
    2**-SMALLEST_STEP, so the sums are Python ints, exact in any order, rounded once at
    the end. Hand-written: math.fsum is exact too, but needs every term at once."""

    def __init__(self, classes: int):
        self._sums = [0] * classes

    def add(self, per_row: np.ndarray, row_areas: np.ndarray) -> None:
        """``per_row``: (rows, classes) pixel counts; ``row_areas``: a pixel's area in each
        of those rows."""
        exact = [_in_steps(area) for area in row_areas.tolist()]
        for k in range(len(self._sums)):
            column = per_row[:, k]
            self._sums[k] += sum(int(column[r]) * exact[r] for r in np.flatnonzero(column))

    def values(self) -> np.ndarray:
        return np.array([total / (1 << SMALLEST_STEP) for total in self._sums])  # rounded once


def _in_steps(value: float) -> int:
    """A finite float >= 0 as a whole number of 2**-SMALLEST_STEP, exactly."""
    numerator, denominator = value.as_integer_ratio()  # denominator: a power of 2
    return numerator << (SMALLEST_STEP - denominator.bit_length() + 1)
