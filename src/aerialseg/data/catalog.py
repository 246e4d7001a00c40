"""One catalog opens any input form into scenes (``data/scenes.py``).

The forms, with their labels:

- a dataset of image/mask pairs: a folder in any known layout, a zip archive (read in
  place: GDAL's ``/vsizip/``) or a manifest (``data/source.py``, ``data/layouts.py``);
- image rasters (a file, a folder of them, a glob, a URL GDAL reads) with ``--labels``:
  class polygons (any vector file OGR reads) or one class raster over them.

Splits, random or by blocks, work on the catalog's scene ids and groups; checks, training
and scoring read the scenes it gives, in the bands the command reads (``Reading``). Image
paths and URLs are kept as strings: a ``Path`` would fold the ``//`` of a URL.

Raster as in Raster Vision (a scene is a raster source, a label source and an area of
interest) and TorchGeo (what to read apart from where to sample), without their
dependencies: both need a library stack this project does not carry.
"""

from __future__ import annotations

import functools
import glob
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import WindowError
from rasterio.transform import array_bounds
from rasterio.windows import Window, from_bounds
from shapely.geometry import Polygon, box

from aerialseg.data.blocks import SceneGrid, on_grids, same_grid
from aerialseg.data.classes import ClassTable
from aerialseg.data.labels import Grid, RasterLabels
from aerialseg.data.polygons import PolygonLabels, ScenePolygons, footprint, read_polygons
from aerialseg.data.raster import input_name, is_url
from aerialseg.data.scenes import RasterScene, Reading, Scene, _group
from aerialseg.data.source import DatasetSource
from aerialseg.data.splits import Split, make_split
from aerialseg.errors import DatasetError, printable
from aerialseg.files import outputs_among

SCENE_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
# GDAL's block cache for streamed scenes, MB. Its default, 5 % of RAM, kept every decoded
# tile of a 40,000 px scene that random crops touched: 23 training steps peaked at 2759 MB
# with it and 2291 MB with this (bench/streamed_training.py --child streamed, at the same
# train rate); crops seldom read a tile twice, so a small cache costs nothing. GDAL reads
# it once, at the process's first raster read: set GDAL_CACHEMAX yourself for another.
STREAMED_GDAL_CACHE_MB = 128


@dataclass(frozen=True)
class LabelSpec:
    """Labels over image rasters (the --labels flags): class polygons, or a class raster."""

    path: str  # a vector file, or a raster of classes
    field: str | None = None  # the polygons' attribute holding each one's class
    crs: str | None = None  # their CRS where the file lacks it (or has it wrong)
    labelled_area: str | None = None  # polygons of where labels hold; None: every image

    @property
    def is_raster(self) -> bool:
        return input_name(self.path).suffix.lower() in SCENE_SUFFIXES


@dataclass
class Catalog:
    """The scenes of one dataset by id, in order, and where they came from."""

    path: str
    scenes: dict[str, RasterScene]
    labels: LabelSpec | None = None
    unpaired: list[tuple[str, str]] = field(default_factory=list)  # (image, mask expected)
    hint: str = ""  # where a user finds every problem, for errors naming the first
    root: str = "."  # a dataset's root folder inside ``path``

    @property
    def entries(self) -> list[RasterScene]:
        return list(self.scenes.values())

    def grids(self) -> list[SceneGrid]:
        """Each scene's id, size and pixel width, from headers, for a block split."""
        return [entry.scene_grid() for entry in self.entries]

    def split(
        self,
        split_file: str | Path | None,
        for_training: bool = True,
        needed: tuple[str, ...] = ("train", "val"),
        convert: bool = True,
    ) -> Split:
        """The split of ``split_file`` (None: the protocol's rule) over these scenes, with
        a block split's blocks on the grids the scenes are read on (``on_grids``); one of
        the splits ``needed`` left without a pixel is an error. ``convert`` False: a block
        split cut on other grids is refused instead (``data split --keep``)."""
        split = make_split(self.entries, split_file, for_training)
        if split.blocks is None:
            return split
        recorded = split.grids or {}
        grids = {}
        for sid in dict.fromkeys(i for parts in split.blocks.values() for i, _ in parts):
            scene = self.scenes[sid]
            if scene.grid.crs is None:  # read as it is, whatever the pixel size
                continue
            if sid not in recorded:  # a split file of an earlier release: its own grid
                if scene.pixel_size and not same_grid(scene.native_transform, scene.transform):
                    raise DatasetError(
                        f"{sid}: the split file records no grid for its blocks (an earlier"
                        f" release wrote it), and the scene is read resampled to pixel size"
                        f" {scene.pixel_size:g}: make the split again with aerialseg data split"
                    )
                continue
            if not convert and not same_grid(Affine(*recorded[sid]), scene.transform):
                raise DatasetError(
                    f"{split_file}: cut on another grid of {sid} than this split's: give the"
                    " --pixel-size it was cut with (none: the scenes' own)"
                )
            grids[sid] = (scene.transform, scene.width, scene.height)
        moved = on_grids(split, grids)
        for name in needed:
            if split.parts(name) and not moved.parts(name):
                raise DatasetError(
                    f"the split's {name} blocks hold no whole pixel at this pixel size: make"
                    " larger blocks (data split --block-size) or read finer pixels"
                )
        return moved

    def georeferences(self) -> dict:
        """Scene id -> (CRS, transform) of the georeferenced scenes."""
        found = {entry.id: entry.georeference() for entry in self.entries}
        return {sid: grid for sid, grid in found.items() if grid is not None}

    def _areas(self) -> dict[str, RasterScene] | None:
        """The scenes by id where the labels have a labelled area; None without one."""
        if self.labels is None or self.labels.labelled_area is None:
            return None
        return self.scenes

    def labelled_block(self) -> Callable[[str, Window], bool] | None:
        """For a block split: whether a block of a scene holds labels (whether the
        labelled area covers a pixel of it); None: every block does."""
        scenes = self._areas()
        if scenes is None:
            return None

        def labelled(sid: str, block: Window) -> bool:
            scene = scenes[sid]
            area = scene.labels.area
            assert area is not None  # the spec names a labelled area
            return area.covers_a_pixel_of(block, scene.transform)

        return labelled

    def regions(self, split: Split, name: str) -> list | None:
        """Where split ``name``'s training crops may lie, as (scene index, window) in the
        order of ``split_scenes``: inside the labelled area where there is one (the parts
        of each area polygon's bounding box within the split's part of its scene); None
        where every pixel of the parts may be cropped. A few task blocks of a large scene
        otherwise leave nearly every crop without a label."""
        scenes = self._areas()
        if scenes is None:
            return None
        parts = split.parts(name)
        index = {i: k for k, i in enumerate(dict.fromkeys(i for i, _ in parts))}
        regions = []
        for sid, part in parts:
            scene = scenes[sid]
            limit = part if part is not None else Window(0, 0, scene.width, scene.height)
            area = scene.labels.area
            assert area is not None  # the spec names a labelled area
            for geometry in area.geometries:
                near = from_bounds(*geometry.bounds, transform=scene.transform)
                left, top = math.floor(near.col_off + 1e-6), math.floor(near.row_off + 1e-6)
                right = math.ceil(near.col_off + near.width - 1e-6)
                bottom = math.ceil(near.row_off + near.height - 1e-6)
                try:
                    region = Window(left, top, right - left, bottom - top).intersection(limit)
                except WindowError:  # no overlap
                    continue
                if region.width >= 1 and region.height >= 1:
                    regions.append((index[sid], region))
        return regions

    def read(self, ids: list[str] | tuple[str, ...], reading: Reading) -> list[Scene]:
        """The scenes ``ids``, checked first, then decoded into memory when all of them fit
        in ``reading.cache_megabytes``, else raster scenes streamed window by window."""
        chosen = [self.scenes[i] for i in ids]
        for entry in chosen:
            try:
                entry.check(reading)
            except DatasetError as err:
                raise type(err)(f"{err}{self.hint}") from None
        bands = len(reading.bands) if reading.bands else 3
        fits = sum(e.decoded_bytes(bands) for e in chosen) <= reading.cache_megabytes * 2**20
        return [e.decoded(reading) if fits else e.streamed(reading) for e in chosen]

    def split_scenes(self, split: Split, name: str, reading: Reading) -> tuple[list[Scene], list]:
        """The scenes split ``name`` uses, and its parts as (scene index, window or None)."""
        parts = split.parts(name)
        ids = list(dict.fromkeys(i for i, _ in parts))
        index = {i: k for k, i in enumerate(ids)}
        for sid, window in parts:  # from the headers, before anything is decoded
            scene = self.scenes[sid].scene_grid()
            if window is not None and (
                window.col_off + window.width > scene.width
                or window.row_off + window.height > scene.height
            ):
                box = [int(window.col_off), int(window.row_off), window.width, window.height]
                raise DatasetError(
                    f"{sid}: the split's block {box} reaches past the image ({scene.width} x"
                    f" {scene.height} px); the split was made for another image or pixel size"
                )
        return self.read(ids, reading), [(index[i], w) for i, w in parts]

    def example_image(self, split: Split) -> str | None:
        """A held-out image as a path a user can pass to ``predict`` (a zip's entry as a
        ``/vsizip/`` path); None where there is none."""
        ids = split.test or split.val or split.train
        return self.scenes[ids[0]].example if ids else None


def expand_scenes(images: str | list[str], labels: str | None = None) -> list[str]:
    """Image rasters named by a file, a folder (its rasters), a glob or a URL, sorted;
    ``labels``: a class raster that a folder or glob may hold, which is no scene."""
    found: list[str] = []
    # a review: scene.tif and labels.tif in one folder trained on labels.tif as an image
    labels_file = os.path.realpath(labels) if labels and not is_url(labels) else None
    for item in [images] if isinstance(images, str) else images:
        if is_url(item):
            found.append(item)
            continue
        if os.path.isdir(item):
            listed = [
                str(p)
                for p in sorted(Path(item).iterdir())
                if p.is_file() and p.suffix.lower() in SCENE_SUFFIXES
            ]
        elif any(ch in item for ch in "*?[") and not os.path.exists(item):
            listed = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
        else:
            found.append(item)
            continue
        outputs = outputs_among(listed)
        if outputs:
            print(
                f"{printable(item)}: left out {len(outputs)} file(s) that are predict's outputs"
                " of the others (NAME_classes.tif and the like)",
                file=sys.stderr,
            )
        # each path resolved once, and only where a labels file may be among them
        the_labels = {p for p in listed if labels_file and os.path.realpath(p) == labels_file}
        if the_labels:
            print(f"{printable(item)}: left out {printable(labels)}, the labels", file=sys.stderr)
        found += [p for p in listed if p not in outputs and p not in the_labels]
    if not found:
        raise DatasetError(f"{images}: no image rasters found (GeoTIFF, COG)")
    return sorted(dict.fromkeys(found))


def scene_id(path: str, root: str | None) -> str:
    """A scene's id in split files: its path relative to ``root`` (the folder given), its
    URL as it is."""
    if is_url(path) or root is None:
        return path
    return Path(os.path.relpath(path, root)).as_posix()


def is_scene_path(path: str | Path) -> bool:
    """Whether a --data path names image rasters rather than a dataset folder or zip."""
    return is_url(path) or input_name(path).suffix.lower() in SCENE_SUFFIXES


def open_catalog(
    data: str | Path,
    classes: ClassTable,
    labels: LabelSpec | None = None,
    pixel_size: float | None = None,
    strict: bool = True,
    pixel_flag: str = "--pixel-size",
) -> Catalog:
    """``data`` as scenes: image/mask pairs (a dataset folder, zip or manifest), or with
    ``labels`` image rasters (file, folder, glob, URL) labelled by polygons or a class
    raster. ``strict``: an image without its mask is an error (else listed in
    ``unpaired``, for ``data inspect``). ``pixel_flag``: how the user sets ``pixel_size``
    (a training run's ``pixel_size=``), for errors."""
    os.environ.setdefault("GDAL_CACHEMAX", str(STREAMED_GDAL_CACHE_MB))
    if labels is None:
        if is_scene_path(data):
            raise DatasetError(
                f"{data}: image rasters need their labels: give the polygons or the class"
                " raster with --labels FILE (or a dataset folder of images/ and masks/)"
            )
        return _pairs(DatasetSource(data, strict), classes, pixel_size, pixel_flag)
    if labels.is_raster:
        return _over_class_raster(os.fspath(data), labels, classes, pixel_size, pixel_flag)
    return _over_polygons(os.fspath(data), labels, classes, pixel_size, pixel_flag, strict)


def _pairs(
    source: DatasetSource, classes: ClassTable, pixel_size: float | None, pixel_flag: str
) -> Catalog:
    scenes: dict[str, RasterScene] = {}
    for pair in source.pairs:
        mask_path, mask_name = source.gdal_path(pair.mask), source.where(pair.mask)

        def labels_of(grid: Grid, path=mask_path, name=mask_name) -> RasterLabels:
            return RasterLabels(path, name, classes, grid, pixel_size, pixel_flag)

        scenes[pair.id] = RasterScene(
            pair.id,
            source.gdal_path(pair.id),
            source.where(pair.id),
            labels_of,
            pixel_size,
            pixel_flag,
            group=_group(pair.id),
            example=source.gdal_path(pair.id),
        )
    hint = source.inspect_hint()
    return Catalog(str(source.path), scenes, None, source.unpaired, hint, source.root)


def _rasters(images: str, labels: str) -> tuple[list[str], str | None]:
    """The image rasters (``labels`` left out) and the folder their ids are relative to
    (None: URLs)."""
    paths = expand_scenes(images, labels)
    root = images if os.path.isdir(images) else None
    if root is None and not any(map(is_url, paths)):
        root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    return paths, root


def _over_polygons(
    images: str,
    spec: LabelSpec,
    classes: ClassTable,
    pixel_size: float | None,
    pixel_flag: str,
    strict: bool,
) -> Catalog:
    """Read the polygons, open every image's header, reproject the polygons once per CRS;
    errors (no overlap, no CRS) are raised here, before anything is written. Not
    ``strict`` (``data inspect``): an image whose header is unreadable or has no CRS stays
    in the catalog, to fail when it is looked at, with every other problem."""
    paths, root = _rasters(images, spec.path)
    labels = read_polygons(spec.path, classes, spec.field, spec.crs, spec.labelled_area)
    if labels.repaired:
        print(
            f"{spec.path}: repaired {labels.repaired} invalid polygon(s) (self-intersecting"
            " rings and the like, with make_valid)",
            file=sys.stderr,
        )
    if labels.dropped:
        print(
            f"{spec.path}: left out {labels.dropped} feature(s) with no polygon (points,"
            " lines, an empty or no geometry): they label no pixel",
            file=sys.stderr,
        )
    by_crs: dict[str, list[tuple[RasterScene, Polygon]]] = {}  # scenes, footprints by CRS
    scenes: dict[str, RasterScene] = {}
    unplaced: list[DatasetError] = []  # images polygons cannot be placed on, not strict
    for path in paths:
        sid = scene_id(path, root)
        scene = RasterScene(
            sid, path, path, _unbound, pixel_size, pixel_flag, group=_group(sid), example=path
        )
        scenes[sid] = scene
        try:
            crs = scene.grid.crs
            if crs is None:
                raise DatasetError(
                    f"{path}: the image has no georeference, so polygons cannot be placed on it"
                )
        except DatasetError as err:
            if strict:
                raise
            scene.labels_of = functools.partial(_fail, err)
            unplaced.append(err)
            continue
        whole = footprint(Window(0, 0, scene.grid.width, scene.grid.height), scene.grid.transform)
        by_crs.setdefault(crs.to_wkt(), []).append((scene, whole))
    polygons_seen = area_seen = False
    for wkt, placed in by_crs.items():
        # once per CRS, cut to where its scenes lie
        local = labels.to_crs(CRS.from_wkt(wkt), shapely.union_all([w for _, w in placed]))
        for scene, whole in placed:
            scene.labels_of = functools.partial(_polygons_on, local, spec.path)
            polygons_seen |= local.polygons.overlaps(whole)
            area_seen |= local.area is None or local.area.overlaps(whole)
    if unplaced and len(unplaced) == len(paths):  # no image to place polygons on: say why
        raise unplaced[0]
    if not polygons_seen:
        raise DatasetError(
            f"{spec.path}: no polygon lies on any of the {len(paths) - len(unplaced)}"
            " georeferenced image(s); check that the polygons and images cover the same"
            " place (and --label-crs)"
        )
    if not area_seen:
        raise DatasetError(
            f"{spec.labelled_area}: the labelled area overlaps none of the {len(paths)} image(s)"
        )
    return Catalog(images, scenes, spec)


def _fail(err: DatasetError, grid: Grid):
    raise err


def _unbound(grid: Grid):
    raise AssertionError("labels are bound once the scene's CRS is known")


def _polygons_on(labels: PolygonLabels, name: str, grid: Grid) -> ScenePolygons:
    return ScenePolygons(labels, grid.transform, grid.height, grid.width, name)


def _over_class_raster(
    images: str, spec: LabelSpec, classes: ClassTable, pixel_size: float | None, pixel_flag: str
) -> Catalog:
    """Image rasters labelled by one class raster, warped onto each image's grid where it
    lies on another."""
    for flag, value in (
        ("--label-field", spec.field),
        ("--label-crs", spec.crs),
        ("--labelled-area", spec.labelled_area),
    ):
        if value is not None:
            raise DatasetError(
                f"{flag} describes polygon labels; {spec.path} is a class raster, whose"
                " pixels hold the classes and whose nodata marks where labels do not hold"
            )
    paths, root = _rasters(images, spec.path)
    label_grid = RasterScene("labels", spec.path, spec.path, _unbound).grid
    scenes: dict[str, RasterScene] = {}
    for path in paths:
        sid = scene_id(path, root)

        def labels_of(grid: Grid) -> RasterLabels:
            return RasterLabels(spec.path, spec.path, classes, grid, pixel_size, pixel_flag)

        scene = RasterScene(
            sid, path, path, labels_of, pixel_size, pixel_flag, group=_group(sid), example=path
        )
        scenes[sid] = scene
    if not any(_overlaps(label_grid, e.grid) for e in scenes.values()):
        raise DatasetError(
            f"{spec.path}: the class raster lies on none of the {len(paths)} image(s); check"
            " that it and the images cover the same place"
        )
    return Catalog(images, scenes, spec)


def _bounds(grid: Grid) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of all four corners (two are not the box of a rotated
    grid), in that order on a south-up or east-left grid too."""
    west, south, east, north = array_bounds(grid.height, grid.width, grid.transform)
    return min(west, east), min(south, north), max(west, east), max(south, north)


def _overlaps(labels: Grid, image: Grid) -> bool:
    """Whether a class raster reaches an image: the same pixel grid's size without a
    georeference, overlapping extents (in the image's CRS) with one."""
    if labels.crs is None or image.crs is None:
        return (labels.width, labels.height) == (image.width, image.height)
    from rasterio.warp import transform_bounds

    there = transform_bounds(labels.crs, image.crs, *_bounds(labels))
    return box(*there).intersects(box(*_bounds(image)))
