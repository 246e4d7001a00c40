"""Large georeferenced scenes with polygon labels, read one window at a time.

A *scene* is anything training can cut windows from: ``height``, ``width`` and
``read(window) -> LabelledImage``. A decoded ``LabelledImage`` is one (the in-memory
cache: a window is a slice); a ``GeoScene`` is another, which reads the image window with
rasterio (a COG or tiled GeoTIFF reads only the blocks under it, a URL only their byte
ranges) and rasterises the polygon labels for that window. Both give the same arrays for
the same window, so the sampler does not care which it has. ``GeoData.scenes`` keeps
scenes in memory while they fit in ``cache_megabytes`` decoded, and streams them beyond.

Images may be local rasters (GeoTIFF, COG, VRT), a folder of them, a glob, or URLs GDAL
reads (``https://``, ``/vsicurl/``, ``s3://``), kept as strings: a ``Path`` would fold the
``//`` of a URL.
"""

from __future__ import annotations

import glob
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from affine import Affine
from rasterio.errors import WindowError
from rasterio.windows import Window, from_bounds
from rasterio.windows import bounds as window_bounds

from aerialseg.data.blocks import SceneGrid
from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.data.polygons import PolygonLabels, read_polygons
from aerialseg.data.raster import InputError, RasterInput, input_name, is_url, open_input
from aerialseg.data.samples import TRAINING_FLAGS, Flags, LabelledImage, Scene, load_labelled
from aerialseg.data.source import DatasetSource, Pair
from aerialseg.data.splits import Split
from aerialseg.errors import DatasetError

SCENE_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
# GDAL's block cache for streamed scenes, MB. Its default, 5 % of RAM, kept every decoded
# tile of a 40,000 px scene that random crops touched: 23 training steps peaked at 2759 MB
# with it and 2291 MB with this (bench/streamed_training.py --child streamed, at the same
# train rate); crops seldom read a tile twice, so a small cache costs nothing. GDAL reads
# it once, at the process's first raster read: set GDAL_CACHEMAX yourself for another.
STREAMED_GDAL_CACHE_MB = 128


def expand_scenes(images: str | list[str]) -> list[str]:
    """Image rasters named by a file, a folder (its rasters), a glob or a URL, sorted."""
    found: list[str] = []
    for item in [images] if isinstance(images, str) else images:
        if is_url(item):
            found.append(item)
        elif os.path.isdir(item):
            found += [
                str(p)
                for p in sorted(Path(item).iterdir())
                if p.is_file() and p.suffix.lower() in SCENE_SUFFIXES
            ]
        elif any(ch in item for ch in "*?[") and not os.path.exists(item):
            found += sorted(glob.glob(item, recursive=True))
        else:
            found.append(item)
    if not found:
        raise DatasetError(f"{images}: no image rasters found (GeoTIFF, COG, VRT)")
    return sorted(dict.fromkeys(found))


def scene_id(path: str, root: str | None) -> str:
    """A scene's id in split files: its path relative to ``root`` (the folder given), its
    URL as it is."""
    if is_url(path) or root is None:
        return path
    return Path(os.path.relpath(path, root)).as_posix()


@dataclass
class GeoScene:
    """One image raster and its polygon labels (in the raster's CRS), read per window."""

    id: str
    path: str  # a local path or a URL
    labels: PolygonLabels
    bands: tuple[int, ...] | None
    pixel_size: float | None
    height: int
    width: int
    transform: Affine
    _raster: RasterInput | None = field(default=None, repr=False)
    _pid: int = field(default=0, repr=False)

    def raster(self) -> RasterInput:
        # opened lazily and once per process: a GDAL handle does not survive a fork into
        # a data loader worker; never decoded whole (that is the cache's choice)
        if self._raster is None or self._pid != os.getpid():
            self._raster = open_raster(self.path, self.bands, self.pixel_size)
            self._pid = os.getpid()
        return self._raster

    def read(self, window: Window) -> LabelledImage:
        """The image window as uint8 bands and its class ids, ignored where the image has
        no data or outside the labelled area."""
        values, valid = self.raster().read(window)
        image = np.rint(values).astype(np.uint8)
        ids = self.labels.window(self.transform, window)
        ids[~valid] = IGNORE_INDEX
        return LabelledImage(self.id, torch.from_numpy(image), torch.from_numpy(ids))

    def labels_every(self, step: int) -> torch.Tensor:
        """Class ids every ``step`` pixels (rows and columns), for class-balanced crops."""
        # coarse pixel (i, j) centred on pixel (i * step, j * step)'s centre: the pixels
        # an in-memory mask[::step, ::step] picks (image nodata aside)
        shift = 0.5 - step / 2
        coarse = self.transform @ Affine.translation(shift, shift) @ Affine.scale(step)
        h, w = -(-self.height // step), -(-self.width // step)
        return torch.from_numpy(self.labels.window(coarse, Window(0, 0, w, h)))

    def decoded_bytes(self) -> int:
        bands = len(self.bands) if self.bands else 3
        return self.height * self.width * (bands + 1)


def open_raster(path: str, bands: tuple[int, ...] | None, pixel_size: float | None) -> RasterInput:
    try:
        return open_input(path, bands, "bands=", pixel_size, whole_read_pixels=0)
    except InputError as err:
        raise DatasetError(str(err)) from None


@dataclass(frozen=True)
class PolygonSpec:
    """Where polygon labels are and how to read them (train/evaluate's --labels flags)."""

    path: str  # the vector file
    field: str | None = None  # the attribute holding each polygon's class
    crs: str | None = None  # their CRS where the file lacks it (or has it wrong)
    labelled_area: str | None = None  # polygons of where labels hold; None: every image


@dataclass
class GeoData:
    """Image rasters labelled by one polygon file: the training data of one's own area."""

    images: str | list[str]
    polygons: PolygonSpec
    classes: ClassTable
    scenes_by_id: dict[str, GeoScene] = field(default_factory=dict)

    @property
    def labels(self) -> str:
        return self.polygons.path

    def open(self, bands: tuple[int, ...] | None = None, pixel_size: float | None = None):
        """Read the polygons, open every image's header, reproject the polygons once per
        CRS; errors (no overlap, no CRS) are raised here, before anything is written."""
        os.environ.setdefault("GDAL_CACHEMAX", str(STREAMED_GDAL_CACHE_MB))
        paths = expand_scenes(self.images)
        root = self.images if isinstance(self.images, str) and os.path.isdir(self.images) else None
        if root is None and not any(map(is_url, paths)):
            root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
        spec = self.polygons
        labels = read_polygons(spec.path, self.classes, spec.field, spec.crs, spec.labelled_area)
        if labels.repaired:
            print(
                f"{spec.path}: repaired {labels.repaired} invalid polygon(s) (self-intersecting"
                " rings and the like, with make_valid)",
                file=sys.stderr,
            )
        by_crs: dict[str, PolygonLabels] = {}
        polygons_seen = area_seen = False
        for path in paths:
            raster = open_raster(path, bands, pixel_size)
            ds = raster.dataset
            if ds.crs is None:
                raster.close()
                raise DatasetError(
                    f"{path}: the image has no georeference, so polygons cannot be placed on it"
                )
            local = by_crs.setdefault(ds.crs.to_wkt(), labels.to_crs(ds.crs))
            polygons_seen |= local.polygons.overlaps(tuple(ds.bounds))
            area_seen |= local.area is None or local.area.overlaps(tuple(ds.bounds))
            sid = scene_id(path, root)
            self.scenes_by_id[sid] = GeoScene(
                sid, path, local, bands, pixel_size, ds.height, ds.width, ds.transform
            )
            raster.close()
        if not polygons_seen:
            raise DatasetError(
                f"{self.labels}: no polygon lies on any of the {len(paths)} image(s); check"
                " that the polygons and images cover the same place (and --label-crs)"
            )
        if not area_seen:
            raise DatasetError(
                f"{spec.labelled_area}: the labelled area overlaps none of the {len(paths)}"
                " image(s)"
            )
        return self

    @property
    def pairs(self) -> list[Pair]:
        """The scenes as pairs for whole-image splits (splits.py)."""
        return [Pair(id=sid, mask=self.labels) for sid in self.scenes_by_id]

    def scenes(
        self, ids: list[str] | tuple[str, ...], cache_megabytes: float
    ) -> list[LabelledImage | GeoScene]:
        """The scenes ``ids``, decoded into memory when all of them fit in
        ``cache_megabytes``, else streamed window by window."""
        chosen = [self.scenes_by_id[i] for i in ids]
        if sum(s.decoded_bytes() for s in chosen) > cache_megabytes * 2**20:
            return list(chosen)
        return [s.read(Window(0, 0, s.width, s.height)) for s in chosen]


def is_scene_path(path: str | Path) -> bool:
    """Whether a --data path names image rasters rather than a dataset folder or zip."""
    return is_url(path) or input_name(path).suffix.lower() in SCENE_SUFFIXES


def open_dataset(
    data: str | Path,
    classes: ClassTable,
    polygons: PolygonSpec | None = None,
    bands: tuple[int, ...] | None = None,
    pixel_size: float | None = None,
) -> DatasetSource | GeoData:
    """``data`` as image/mask pairs (a dataset folder or zip), or with ``polygons`` as
    image rasters (file, folder, glob, URL) labelled by a polygon file."""
    if polygons is None:
        if is_scene_path(data):
            raise DatasetError(
                f"{data}: image rasters need their labels: give the polygons with --labels FILE"
                " (or a dataset folder of images/ and masks/)"
            )
        return DatasetSource(data)
    return GeoData(os.fspath(data), polygons, classes).open(bands, pixel_size)


def scene_grids(data: DatasetSource | GeoData) -> list[SceneGrid]:
    """Each image's id, size and pixel width, from headers, for a block split."""
    if isinstance(data, GeoData):
        return [
            SceneGrid(s.id, s.height, s.width, abs(s.transform.a))
            for s in data.scenes_by_id.values()
        ]
    grids = []
    for pair in data.pairs:
        header = data.header(pair.id)
        pixel = abs(header.grid[1].a) if header.grid else None
        grids.append(SceneGrid(pair.id, header.size[1], header.size[0], pixel))
    return grids


def georeferences(data: DatasetSource | GeoData) -> dict:
    """Image id -> (CRS, transform) of the georeferenced images."""
    if isinstance(data, GeoData):
        return {s.id: (s.raster().dataset.crs, s.transform) for s in data.scenes_by_id.values()}
    found = {}
    for pair in data.pairs:
        header = data.header(pair.id)
        if header.grid:
            found[pair.id] = header.grid
    return found


def labelled_scenes(
    data: DatasetSource | GeoData,
    ids: list[str] | tuple[str, ...],
    classes: ClassTable,
    cfg,
    desc: str,
    flags: Flags = TRAINING_FLAGS,
) -> list[Scene]:
    """The scenes ``ids`` of ``data``, read as ``cfg`` (a TrainConfig) says: image/mask
    pairs decoded and checked (they are collections of images that fit), scenes with
    polygon labels in memory while they fit in ``cfg.cache_megabytes``, else streamed.
    ``flags``: how the calling command's user changes what the errors name."""
    if isinstance(data, GeoData):
        return list(data.scenes(ids, cfg.cache_megabytes))
    return list(
        load_labelled(
            data,
            ids,
            classes,
            cfg.max_unknown,
            desc,
            cfg.band_tuple,
            cfg.pixel_size,
            cfg.resize_masks,
            flags,
        )
    )


def labelled_regions(data: DatasetSource | GeoData, split: Split, name: str) -> list | None:
    """Where split ``name``'s training crops may lie, as (scene index, window) in the order
    of ``split_scenes``: inside the labelled area where polygon labels have one (the parts
    of each area polygon's bounding box within the split's part of its scene); None
    where every pixel of the parts may be cropped. A few task blocks of a large scene
    otherwise leave nearly every crop without a label."""
    if not isinstance(data, GeoData) or data.polygons.labelled_area is None:
        return None
    parts = split.parts(name)
    index = {i: k for k, i in enumerate(dict.fromkeys(i for i, _ in parts))}
    regions = []
    for sid, part in parts:
        scene = data.scenes_by_id[sid]
        whole = Window(0, 0, scene.width, scene.height)
        limit = part if part is not None else whole
        area = scene.labels.area
        assert area is not None  # the spec names a labelled area
        for geometry in area.geometries:
            near = from_bounds(*geometry.bounds, transform=scene.transform)
            left, top = math.floor(near.col_off + 1e-6), math.floor(near.row_off + 1e-6)
            right = math.ceil(near.col_off + near.width - 1e-6)
            bottom = math.ceil(near.row_off + near.height - 1e-6)
            box = Window(left, top, right - left, bottom - top)
            try:
                region = box.intersection(limit)
            except WindowError:  # no overlap
                continue
            if region.width >= 1 and region.height >= 1:
                regions.append((index[sid], region))
    return regions


def labelled_blocks(data: DatasetSource | GeoData):
    """For a block split: whether a block of a scene holds labels (where polygon labels
    have a labelled area: whether the area covers part of it); None: every block does."""
    if not isinstance(data, GeoData) or data.polygons.labelled_area is None:
        return None

    def labelled(sid: str, block: Window) -> bool:
        scene = data.scenes_by_id[sid]
        assert scene.labels.area is not None  # the spec names a labelled area
        return scene.labels.area.covers_part_of(window_bounds(block, scene.transform))

    return labelled


def split_scenes(
    data: DatasetSource | GeoData,
    split: Split,
    name: str,
    classes: ClassTable,
    cfg,
    flags: Flags = TRAINING_FLAGS,
) -> tuple[list[Scene], list]:
    """The scenes split ``name`` uses, and its parts as (scene index, window or None)."""
    parts = split.parts(name)
    ids = list(dict.fromkeys(i for i, _ in parts))
    index = {i: k for k, i in enumerate(ids)}
    scenes = labelled_scenes(data, ids, classes, cfg, f"{name} images", flags)
    return scenes, [(index[i], w) for i, w in parts]
