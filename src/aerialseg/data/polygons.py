"""Polygon labels: a vector file of class polygons, rasterised onto an image's pixel grid
one window at a time.

The file (GeoPackage, Shapefile, GeoJSON, FlatGeobuf: whatever GDAL's OGR reads) is read
once; each polygon's class comes from an attribute (``--label-field``) whose values are
matched to the class table by class name, or by ``mask_value`` for numbers. Invalid
geometries are repaired (shapely's ``make_valid``) and counted. Polygons are reprojected
once per image CRS and kept in a spatial index (an STRtree), so rasterising a window
touches only the polygons over it: memory and time follow the window, not the layer.

Rasterising uses ``rasterio.features.rasterize`` (GDAL's pixel-centre rule) on the window's
own transform, which is the scene's transform shifted by whole pixels: a window equals the
whole scene rasterised and cut to it. Where polygons overlap, the later one in the file wins,
as in one rasterize call over all of them.

Hand-written rather than torchgeo's VectorDataset: that one re-reads the whole vector file
for every sample (``gpd.read_file`` in ``__getitem__``), seconds a sample for 100,000
polygons, and brings geopandas, pyproj and kornia; this reads the file once with fiona,
which the project has.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple, TypeAlias
from xml.sax.saxutils import escape, quoteattr

import fiona
import numpy as np
import rasterio.features
import shapely
import shapely.affinity
from affine import Affine
from fiona.errors import FionaError
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.warp import transform_geom
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry import Polygon, mapping, shape

from aerialseg.data.classes import IGNORE_INDEX, ClassTable, EncodedMask, name_key
from aerialseg.errors import DatasetError, library_reason, shown


def parse_crs(text: str, flag: str = "--label-crs") -> CRS:
    """A CRS from what a user types: EPSG:32640, a WKT or PROJ string."""
    try:
        # inside an Env, GDAL's errors go to Python's logging: without it PROJ printed its
        # own "ERROR 1: ... crs not found" line above the one below
        with rasterio.Env():
            return CRS.from_user_input(text)
    except (CRSError, ValueError):
        raise DatasetError(
            f"{flag} {text!r}: not a CRS GDAL knows; give it as EPSG:NNNN (e.g. EPSG:32640)"
        ) from None


def footprint(window: Window, transform: Affine) -> Polygon:
    """The ground ``window`` of a grid on ``transform`` covers: its four corners through
    the transform. The box of two opposite corners (rasterio's ``windows.bounds``) is that
    only on a north-up grid; on a rotated one it misses much of the window, and at 45° it is
    a line."""
    col, row = float(window.col_off), float(window.row_off)
    pixels = shapely.box(col, row, col + float(window.width), row + float(window.height))
    return shapely.affinity.affine_transform(pixels, transform.to_shapely())


# where a layer is asked about: a box (left, bottom, right, top), or a footprint
Region: TypeAlias = tuple[float, float, float, float] | shapely.Geometry
# the most pixels rasterised at once where only whether any is covered is asked
STRIP_PIXELS = 4_000_000


def _region(where: Region) -> shapely.Geometry:
    return where if isinstance(where, shapely.Geometry) else shapely.box(*where)


@dataclass(frozen=True)
class PolygonLayer:
    """Polygons with a value each, in one CRS, indexed for window queries."""

    crs: CRS
    geometries: np.ndarray  # shapely geometries
    values: np.ndarray  # int per geometry: a class id, or 1 for an area
    tree: shapely.STRtree

    @classmethod
    def of(cls, crs: CRS, geometries: list, values: list[int]) -> PolygonLayer:
        array = np.empty(len(geometries), dtype=object)
        array[:] = geometries
        return cls(crs, array, np.asarray(values, dtype=np.int64), shapely.STRtree(array))

    def to_crs(self, crs: CRS, within: shapely.Geometry | None = None) -> PolygonLayer:
        """The layer in ``crs``. ``within`` (in ``crs``): where it will be read (the
        footprints of the scenes in ``crs``); polygons are cut to its bounding box first,
        so that one reaching far past it (a labelled area round the globe) is not moved
        where ``crs`` places nothing.

        GDAL's OGR transform moves vertices only, and a straight edge in one CRS is a
        curve in another (a parallel on UTM): edges are first cut into segments of about a
        kilometre (a chord's error under 2 cm), so a box of degrees lands where its edges
        run, not 370 m off at the middle of a 2-degree side."""
        layer = self if crs == self.crs else self._moved(crs, within)
        return layer._across_antimeridian(within) if within is not None else layer

    def _moved(self, crs: CRS, within: shapely.Geometry | None) -> PolygonLayer:
        geometries, values = list(self.geometries), self.values
        window = self._bounds_of(within, crs) if within is not None else None
        if window is not None:
            # a box of 4 corners: cutting by the scenes' own outline cost polygons x its
            # vertices (25 s for 20,000 polygons over 1,000 scattered scenes: a review)
            inside = shapely.contains_properly(window, self.geometries)
            cut = np.where(inside, self.geometries, shapely.intersection(self.geometries, window))
            parts = [None if g.is_empty else _polygonal(g) for g in cut]
            keep = [i for i, g in enumerate(parts) if g is not None and not g.is_empty]
            geometries, values = [parts[i] for i in keep], values[keep]
        dense = [mapping(_densified(g, self.crs)) for g in geometries]
        moved = transform_geom(self.crs, crs, dense) if dense else []
        return PolygonLayer.of(crs, [shape(g) for g in moved], list(values))

    def _across_antimeridian(self, within: shapely.Geometry) -> PolygonLayer:
        """The layer, in degrees, with copies of its polygons 360 degrees east (west) where
        ``within`` runs past 180 (-180): a scene across the antimeridian in longitudes
        179..181, as GDAL writes one, whose labels lie at -180..-179 (GeoJSON cut at the
        antimeridian, RFC 7946), lost those labels (a review). Labels in degrees are read
        within -180..180 (_cut_at_antimeridian), so a copy overlaps no original."""
        left, _, right, _ = within.bounds
        shifts = [shift for shift, past in ((360.0, right > 180), (-360.0, left < -180)) if past]
        if not self.crs.is_geographic or not shifts or not len(self.geometries):
            return self
        copies = [shapely.transform(self.geometries, lambda xy, d=d: xy + (d, 0.0)) for d in shifts]
        geometries = np.concatenate([self.geometries, *copies])
        return PolygonLayer.of(
            self.crs, list(geometries), list(np.tile(self.values, 1 + len(shifts)))
        )

    def _bounds_of(self, within: shapely.Geometry, crs: CRS) -> Polygon | None:
        """The box, in this layer's CRS, round ``within`` (in ``crs``) and a hundredth of
        its size more; None where it has none there: outside this CRS's domain, or across
        a seam (a UTM scene over 180°E in Web Mercator is a ring round the world), where
        nothing is cut."""
        try:
            region = shape(transform_geom(crs, self.crs, mapping(_densified(within, crs))))
        except (CPLE_BaseError, ValueError):
            return None
        left, bottom, right, top = region.bounds
        if not region.is_valid or not all(map(math.isfinite, (left, bottom, right, top))):
            return None
        margin = 0.01 * math.hypot(right - left, top - bottom)
        return shapely.box(left - margin, bottom - margin, right + margin, top + margin)

    def overlaps(self, where: Region) -> bool:
        """Whether a polygon meets ``where`` (a box, or a window's ``footprint`` on a rotated
        grid), not just its bounding box does."""
        return len(self.tree.query(_region(where), predicate="intersects")) > 0

    def covers_a_pixel_of(self, window: Window, transform: Affine) -> bool:
        """Whether the polygons cover the centre of a pixel of ``window`` on the grid of
        ``transform``: whether they label a pixel there, as training rasterises them. A
        polygon that strays into the window by less than half a pixel labels none of it: an
        edge moved through another CRS and back, or drawn a little past a task's block,
        made the blocks beside a labelling round's tasks count as labelled, and val and test
        got empty blocks (a review). Read in strips of at most STRIP_PIXELS."""
        hits = self.tree.query(footprint(window, transform), predicate="intersects")
        if len(hits) == 0:
            return False
        width, height = int(window.width), int(window.height)
        rows = max(1, STRIP_PIXELS // width)
        for top in range(0, height, rows):
            strip = Window(window.col_off, window.row_off + top, width, min(rows, height - top))
            inside = rasterio.features.rasterize(
                ((g, 1) for g in self.geometries[hits]),
                out_shape=(int(strip.height), width),
                transform=window_transform(strip, transform),
                fill=0,
                dtype="uint8",
            )
            if inside.any():
                return True
        return False

    def rasterize(self, transform: Affine, shape_hw: tuple[int, int], fill: int) -> np.ndarray:
        """(h, w) uint8 of the polygons' values on the grid of ``transform``, ``fill``
        where none lies."""
        h, w = shape_hw
        # the window's whole footprint: a rotated grid's corners are not two of its box's
        region = footprint(Window(0, 0, w, h), transform)
        hits = np.sort(self.tree.query(region))  # in file order: the later polygon wins
        if len(hits) == 0:
            return np.full((h, w), fill, dtype=np.uint8)
        shapes = zip(self.geometries[hits], self.values[hits].tolist(), strict=True)
        return rasterio.features.rasterize(
            shapes, out_shape=(h, w), transform=transform, fill=fill, dtype="uint8"
        )


@dataclass(frozen=True)
class PolygonLabels:
    """Class polygons (values: class ids) and where they hold (the labelled area)."""

    polygons: PolygonLayer
    area: PolygonLayer | None  # None: wherever there is an image
    background: int | None  # class id of pixels no polygon covers, inside the area
    repaired: int  # invalid geometries repaired on reading
    dropped: int = 0  # features with no polygon (points, lines, no geometry): no label

    def to_crs(self, crs: CRS, within: shapely.Geometry | None = None) -> PolygonLabels:
        """The labels in ``crs``, cut to ``within`` (PolygonLayer.to_crs)."""
        area = self.area.to_crs(crs, within) if self.area is not None else None
        return replace(self, polygons=self.polygons.to_crs(crs, within), area=area)

    def window(self, transform: Affine, win: Window) -> np.ndarray:
        """(h, w) uint8 class ids of ``win`` of a scene on ``transform``: a polygon's class,
        else the background class inside the labelled area, else IGNORE_INDEX."""
        at, hw = window_transform(win, transform), (int(win.height), int(win.width))
        uncovered = IGNORE_INDEX if self.background is None else self.background
        ids = self.polygons.rasterize(at, hw, fill=uncovered)
        if self.area is not None:
            inside = self.area.rasterize(at, hw, fill=0).astype(bool)
            ids[~inside] = IGNORE_INDEX
        return ids


@dataclass(frozen=True)
class ScenePolygons:
    """Polygon labels bound to one scene's grid: a label source (data/labels.py has the
    other, class rasters) that reads class ids by window."""

    labels: PolygonLabels  # in the scene's CRS
    transform: Affine
    height: int
    width: int
    name: str  # the vector file, for errors

    @property
    def area(self) -> PolygonLayer | None:
        return self.labels.area

    mode = "polygons"  # how the labels are stored, for data inspect
    resized_from = None  # polygons lie on any grid

    def read(self, window: Window) -> EncodedMask:
        return EncodedMask(self.labels.window(self.transform, window), Counter(), 0)

    def every(self, step: int) -> EncodedMask:
        """Every ``step``-th row and column of the scene's labels."""
        # coarse pixel (i, j) centred on pixel (i * step, j * step)'s centre: the pixels
        # an in-memory mask[::step, ::step] picks
        shift = 0.5 - step / 2
        coarse = self.transform @ Affine.translation(shift, shift) @ Affine.scale(step)
        h, w = -(-self.height // step), -(-self.width // step)
        return EncodedMask(self.labels.window(coarse, Window(0, 0, w, h)), Counter(), 0)


def read_polygons(
    path: str | Path,
    classes: ClassTable,
    field: str | None,
    label_crs: str | None = None,
    labelled_area: str | Path | None = None,
) -> PolygonLabels:
    """Read class polygons from ``path``, their class from attribute ``field``.

    Raises DatasetError, in one line, on: a missing field (listing those there are), values
    that match no class (listed with counts), a CRS that is missing or plainly wrong, no
    polygon left after repair, and a labelled area without a background class."""
    background = classes.background_id
    if labelled_area is None and background is None:
        raise DatasetError(
            "polygon labels need to know what pixels no polygon covers are: mark one class of"
            " the class table 'background: true', or give --labelled-area FILE (pixels in it"
            " that no polygon covers are then left out)"
        )
    crs_override = parse_crs(label_crs) if label_crs else None
    read = _read_layer(path, field, crs_override)
    ids = _class_ids(read.values, classes, field, path)
    polygons = PolygonLayer.of(read.crs, read.geometries, ids)
    area = None
    if labelled_area is not None:
        # --label-crs names the labels' CRS; the area file's own CRS stands where it has one
        area = read_area(labelled_area, fallback=crs_override)
    return PolygonLabels(polygons, area, background, read.repaired, read.dropped)


def read_area(
    path: str | Path,
    label_crs: str | None = None,
    fallback: CRS | None = None,
    field: str | None = None,
    classes: ClassTable | None = None,
) -> PolygonLayer:
    """The polygons of ``path`` as an area (every value 1), whatever their attributes;
    ``field``: an attribute the file must have (the labels' class field), whose values
    must name a class of ``classes`` where given, as training reads them."""
    read = _read_layer(path, field, parse_crs(label_crs) if label_crs else None, fallback)
    if classes is not None:
        _class_ids(read.values, classes, field, path)
    return PolygonLayer.of(read.crs, read.geometries, [1] * len(read.geometries))


class _Layer(NamedTuple):
    geometries: list  # polygonal: the polygons of a geometry collection
    values: list  # (feature id, the field's value or None) of each
    crs: CRS
    repaired: int  # invalid geometries repaired
    dropped: int  # features with no polygon (points, lines, an empty or no geometry)


def _read_layer(
    path: str | Path, field: str | None, crs_override: CRS | None, fallback: CRS | None = None
) -> _Layer:
    """The polygons of a vector file's one layer with geometries. ``crs_override``
    replaces the file's CRS; ``fallback`` stands only where the file has none, or says
    WGS84 of coordinates that are not degrees (past ±360 or ±90: those within are
    degrees, cut at the antimeridian)."""
    try:
        with fiona.open(path, layer=_only_layer(path), ARRAY_AS_STRING="YES") as layer:
            fields = list(layer.schema["properties"])
            if field is not None and field not in fields:
                raise DatasetError(
                    f"{path}: no field {field!r}; its fields are {', '.join(fields) or 'none'}"
                    " (choose one with --label-field)"
                )
            crs = crs_override or (CRS.from_wkt(layer.crs_wkt) if layer.crs_wkt else None)
            if field is not None and layer.schema["properties"][field] == "json":
                records = _json_field_records(path, layer.name, field)
            else:
                records = [
                    (r.id, r.geometry, r.properties[field] if field else None) for r in layer
                ]
    except (FionaError, OSError) as err:
        raise DatasetError(f"{path}: cannot read polygons ({library_reason(err)})") from None
    crs = crs or fallback
    if crs is None:
        raise DatasetError(f"{path}: the polygons have no CRS; give theirs with --label-crs")
    geometries, values, repaired, dropped = [], [], 0, 0
    for fid, geometry, value in records:
        if geometry is None:  # a feature without a geometry: an attribute row
            dropped += 1
            continue
        with warnings.catch_warnings():  # a NaN vertex: said below, in the error
            warnings.simplefilter("ignore", RuntimeWarning)
            geom = shape(geometry)
        if not np.isfinite(shapely.get_coordinates(geom)).all():  # GEOS fails on them
            raise DatasetError(
                f"{path}: feature {fid} has a coordinate that is not a number (NaN or"
                " infinite); fix or remove it"
            )
        if not geom.is_valid:
            geom, repaired = shapely.make_valid(geom), repaired + 1
        polygonal = _polygonal(geom)
        if polygonal is not None and not polygonal.is_empty:
            geometries.append(polygonal)
            values.append((fid, value))
        else:  # points, lines, or nothing
            dropped += 1
    if not geometries:
        raise DatasetError(f"{path}: no polygon in the file (or none left after repair)")
    if crs.is_geographic:
        if not _in_degrees(geometries, LONGITUDES_PAST_180) and crs_override is None:
            if fallback is None:
                _refuse_as_not_degrees(path, geometries)
            crs = fallback
        elif _in_degrees(geometries, LONGITUDES_PAST_180):
            geometries = _cut_at_antimeridian(geometries)
    return _Layer(geometries, values, crs, repaired, dropped)


def _only_layer(path: str | Path) -> str | None:
    """The name of the file's one layer with geometries (a GeoPackage may hold tables
    without, such as QGIS's layer_styles); None for a file of one layer, or one fiona
    cannot list (opening it then says why). Several such layers are an error: reading the
    first alone would take every other layer's polygons for background."""
    try:
        names = fiona.listlayers(path)
    except (FionaError, OSError):
        return None
    if len(names) < 2:
        return None
    spatial = []
    for name in names:
        with fiona.open(path, layer=name) as layer:
            kind = str(layer.schema.get("geometry"))
            if "Polygon" in kind or kind in ("Unknown", "GeometryCollection", "Any"):
                spatial.append(name)
    if len(spatial) > 1:
        how = (  # a folder of Shapefiles is read by OGR as one file of layers
            "pass one of its .shp files"
            if Path(path).is_dir()
            else "merge them into one layer (QGIS: Merge Vector Layers)"
        )
        raise DatasetError(
            f"{path}: holds {len(spatial)} layers of polygons ({', '.join(spatial[:10])});"
            f" aerialseg reads one: {how}"
        )
    return spatial[0] if spatial else None


def _json_field_records(path: str | Path, layer: str, field: str) -> list[tuple]:
    """(id, geometry, value) of each feature whose ``field`` GDAL types as JSON: a GeoJSON
    property that mixes names and numbers ("Building", 7). GDAL gives such values as text,
    strings unquoted, which fiona's JSON decoding fails on; an OGR VRT of the layer reads
    the field as plain text, and each value that parses as JSON (7, 3.5, true, [1, 2]) is
    taken as what it says, any other as a name. (GDAL 3.11's OGR_SCHEMA open option would
    do this; fiona's wheels bring 3.9.)"""
    source = Path(path).absolute() if Path(path).exists() else path
    vrt = (
        '<OGRVRTDataSource><OGRVRTLayer name="labels">'
        f"<SrcDataSource>{escape(str(source))}</SrcDataSource>"
        '<OpenOptions><OOI key="ARRAY_AS_STRING">YES</OOI></OpenOptions>'
        f"<SrcLayer>{escape(layer)}</SrcLayer>"
        f'<Field name={quoteattr(field)} type="String" subtype="None"/>'
        "</OGRVRTLayer></OGRVRTDataSource>"
    )
    with fiona.open(vrt, driver="OGR_VRT", allow_unsupported_drivers=True) as text_layer:
        return [(r.id, r.geometry, _from_json_text(r.properties[field])) for r in text_layer]


def _from_json_text(text: str | None):
    try:
        return text if text is None else json.loads(text)
    except ValueError:
        return text


def _polygonal(geom):
    """The polygons of a geometry, None where it has none: a geometry collection's
    polygons (make_valid also returns them, with lines and points), merged."""
    if geom.geom_type == "GeometryCollection":
        parts = [p for g in geom.geoms if (p := _polygonal(g)) is not None]
        return shapely.union_all(parts) if parts else None
    return geom if geom.geom_type.endswith("Polygon") else None


SEGMENT_METRES = 1000.0  # the longest edge moved between CRSs as a straight line


def _densified(geometry, crs: CRS):
    """``geometry`` (in ``crs``) with no edge longer than about SEGMENT_METRES."""
    if crs.is_geographic:
        step = SEGMENT_METRES / 111_320  # metres in a degree of latitude
    else:
        try:
            step = SEGMENT_METRES / float(crs.linear_units_factor[1])
        except CRSError:  # an engineering CRS: another cannot be reached from it anyway
            return geometry
    return shapely.segmentize(geometry, step)


# Longitudes up to 360 east or west are degrees: labels digitised over a scene that runs
# past 180 (QGIS keeps the scene's own 179.99..180.01), data in 0..360, and suggest's own
# tasks of such a scene
LONGITUDES_PAST_180 = 360.0


def _in_degrees(geometries: list, longitudes: float = 180.0) -> bool:
    left, bottom, right, top = shapely.total_bounds(np.asarray(geometries, dtype=object))
    return (
        math.isfinite(left)
        and left >= -longitudes
        and right <= longitudes
        and bottom >= -90
        and top <= 90
    )


def _cut_at_antimeridian(geometries: list) -> list:
    """Polygons in degrees with their parts past ±180 moved 360 degrees back: within
    -180..180, as RFC 7946 has them, where a scene finds them (a scene past 180 also reads
    them 360 over: PolygonLayer._across_antimeridian). Read as they were, their parts past
    180 missed every scene, and one from 179 to 181 was a band round the world in any
    projected CRS."""
    out = []
    for geometry in geometries:
        left, _, right, _ = geometry.bounds
        if left >= -180 and right <= 180:
            out.append(geometry)
            continue
        parts = [
            shapely.transform(
                shapely.intersection(geometry, shapely.box(-180 - d, -90, 180 - d, 90)),
                lambda xy, d=d: xy + (d, 0.0),
            )
            for d in (-360.0, 0.0, 360.0)
        ]
        cut = _polygonal(shapely.GeometryCollection(parts))
        out.append(geometry if cut is None else cut)  # None: no area to cut
    return out


def _refuse_as_not_degrees(path: str | Path, geometries: list) -> None:
    """A layer read as WGS84 (a GeoJSON without 'crs' is WGS84 by RFC 7946) whose
    coordinates cannot be degrees was written in a projected CRS and lost its name."""
    left, bottom, right, top = shapely.total_bounds(np.asarray(geometries, dtype=object))
    raise DatasetError(
        f"{path}: coordinates up to {max(abs(left), abs(right)):,.6g},"
        f" {max(abs(bottom), abs(top)):,.6g} are not degrees, though the file's CRS is"
        " longitude and latitude (a GeoJSON without 'crs' is WGS84); give the CRS they are"
        " in with --label-crs, e.g. --label-crs EPSG:32640"
    )


def _class_ids(values: list, classes: ClassTable, field: str | None, path) -> list[int]:
    """The class id of each polygon from its (feature id, field value): a text matched to a
    class name (any case) or, as a whole number, to a class's mask_value. Unmatched values
    are an error, and so are values of another type (3.5, true, a list)."""
    if field is None:
        if classes.num_classes - (classes.background_id is not None) != 1:
            raise DatasetError(
                f"{path}: which class is each polygon? name the attribute that says it with"
                " --label-field"
            )
        return [next(i for i, c in enumerate(classes.classes) if not c.background)] * len(values)
    by_name = {name_key(c.name): i for i, c in enumerate(classes.classes)}
    by_value = {c.mask_value: i for i, c in enumerate(classes.classes) if c.mask_value is not None}
    for key, i in by_name.items():  # a label "7" (or 7) would name one class, be another's
        number = _whole(key)
        other = None if number is None else by_value.get(number)
        if other is not None and other != i:
            raise DatasetError(
                f"{path}: class {classes.names[i]!r} is named by the mask_value of class"
                f" {classes.names[other]!r}: a label {key} would mean either; rename one"
            )
    ids: list[int] = []
    unmatched: Counter = Counter()
    for fid, value in values:
        label = _label(value, fid, field, path)
        found = _match(label, by_name, by_value)
        if found is None:
            unmatched[label] += 1
        else:
            ids.append(found)
    if unmatched:
        listed = ", ".join(f"{shown(v)} ({n})" for v, n in unmatched.most_common(10))
        raise DatasetError(
            f"{path}: values of {field!r} that match no class name or mask_value: {listed};"
            f" classes: {', '.join(_cut(name) for name in classes.names)}"
        )
    return ids


def _cut(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."


def _match(label: str | int | None, by_name: dict, by_value: dict) -> int | None:
    if label is None:
        return None
    # A whole number is a mask_value, else a class named by it (CORINE codes, say); a text
    # is a name, else the number it spells ("7", "7.0"). ClassTable refuses a name that is
    # another class's mask_value, so a label means the same as a number or as a text (a
    # GeoJSON field of names and numbers is read as JSON, where "7" is 7).
    if isinstance(label, str):
        if name_key(label) in by_name:
            return by_name[name_key(label)]
        number = _whole(label)
        if number is None:
            return None
        label = number  # "11.0": mask_value 11, else the class named 11
    return by_value.get(label, by_name.get(str(label)))


def _whole(text: str) -> int | None:
    """The whole number a text spells in ASCII digits ("7", "007", "7.0"), None for any
    other text; past 18 digits no mask_value (int() refuses 4,300 digits, float() is inf)."""
    found = re.fullmatch(r"0*(\d{1,18})(\.0*)?", text, flags=re.ASCII)
    return int(found.group(1)) if found else None


def _label(value, fid, field: str, path) -> str | int | None:
    """A field value as a class name (text) or a mask_value (a whole number, 7 or 7.0);
    None stays None (no value: unmatched)."""
    if value is None or isinstance(value, str):
        return None if value is None else value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    said = json.dumps(value, default=str)  # as the file says it: true, [1, 2]
    said = said if len(said) <= 40 else said[:37] + "..."  # a list of 100,000 numbers
    raise DatasetError(
        f"{path}: feature {fid}: {field!r} is {said}, neither a class name nor a whole-number"
        " mask_value; give each polygon one of those"
    )
