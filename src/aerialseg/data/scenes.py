"""Scenes: what training, scoring and checks read, whatever form the dataset came in.

A scene is an image plus a label source, read one window at a time. Two kinds:

- ``RasterScene``: an image raster (GeoTIFF, COG, VRT, a ``/vsizip/`` entry, a URL) read
  by windows with rasterio, labelled by polygons (``data/polygons.py``) or a class raster
  (``data/labels.py``). A COG or tiled GeoTIFF reads only the blocks under a window, a URL
  only their byte ranges. A dataset's GeoTIFF image/mask pairs are scenes of this kind.
- ``PlainPair``: a PNG or JPEG image and its mask, which cannot be read by windows (a JPEG
  decodes whole): always decoded, with PIL, the decoder the Dubai set was measured with.

A decoded scene is a ``LabelledImage``, whose windows are slices; a raster scene gives the
same arrays for the same window, so the sampler does not care which it has.
``Catalog.read`` (``data/catalog.py``) keeps scenes decoded while they fit in
``cache_megabytes``, and streams raster scenes beyond.

Bands are chosen where pixels are read (``Reading``): a scene is opened from its header
alone, so listing, splitting and checking a dataset work on any band count.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import PurePosixPath
from typing import Protocol

import numpy as np
import torch
from affine import Affine
from rasterio.windows import Window

from aerialseg.data.blocks import SceneGrid
from aerialseg.data.classes import (
    IGNORE_INDEX,
    ClassTable,
    EncodedMask,
    check_unknown_share,
    encode_mask,
)
from aerialseg.data.labels import Grid, GridMismatchError, open_raster
from aerialseg.data.polygons import PolygonLayer
from aerialseg.data.raster import InputError, RasterInput, at_pixel_size, open_input
from aerialseg.data.source import DatasetSource, Pair
from aerialseg.errors import DatasetError


@dataclass(frozen=True)
class Flags:
    """How a command's user sets what reading errors suggest changing: the evaluate
    command's flags by default, the training settings in ``TRAINING_FLAGS``."""

    max_unknown: str = "--max-unknown"
    resize_masks: str = "--resize-masks"
    bands: str = "bands="  # evaluate reads the model's bands: only training sets them


TRAINING_FLAGS = Flags(max_unknown="max_unknown=", resize_masks="--resize-masks")


@dataclass(frozen=True)
class Reading:
    """How a command reads pixels: which bands, what it checks, how much it keeps decoded."""

    bands: tuple[int, ...] | None = None  # 1-based; None: an RGB(A) raster's three
    max_unknown: float = 0.05  # largest share of a mask in no class's colour or value
    resize_masks: bool = False  # plain masks of another size resampled to their image's
    cache_megabytes: float = 4096  # scenes kept decoded while all fit, else streamed
    flags: Flags = Flags()


@dataclass
class LabelledImage:
    """A decoded image and its labels: a scene held in memory, whose windows are slices."""

    id: str
    image: torch.Tensor  # (bands, H, W) uint8: RGB, or the bands read
    mask: torch.Tensor  # (H, W) uint8 class ids, IGNORE_INDEX where unlabelled

    @property
    def height(self) -> int:
        return int(self.mask.shape[-2])

    @property
    def width(self) -> int:
        return int(self.mask.shape[-1])

    def read(self, window: Window) -> LabelledImage:
        rows, cols = window.toslices()
        return LabelledImage(self.id, self.image[:, rows, cols], self.mask[rows, cols])

    def labels_every(self, step: int) -> torch.Tensor:
        return self.mask[::step, ::step]


class LabelSource(Protocol):
    """Class ids for windows of one scene: polygons (``polygons.ScenePolygons``) or a
    class raster (``labels.RasterLabels``), bound to the scene's grid."""

    @property
    def name(self) -> str: ...  # the file, for errors

    @property
    def area(self) -> PolygonLayer | None: ...  # where labels hold; None: where there are any

    @property
    def mode(self) -> str: ...  # how the labels are stored: "1x uint8", "polygons"

    def read(self, window: Window) -> EncodedMask: ...

    def every(self, step: int) -> EncodedMask: ...


class Scene(Protocol):
    """What crops are cut from: a LabelledImage in memory, or a RasterScene read per
    window."""

    id: str

    @property
    def height(self) -> int: ...

    @property
    def width(self) -> int: ...

    def read(self, window: Window) -> LabelledImage: ...

    def labels_every(self, step: int) -> torch.Tensor: ...


# labels of a raster scene are counted on every k-th pixel, k the least that keeps a
# scene's count under this: a 20,000 px scene is checked in seconds, the shares to 0.1 %
COUNTED_PIXELS = 64_000_000
# a streamed scene's share of unknown label colours is checked on every 8th pixel of
# every 8th row: one pass over the label file, 1/64 of its pixels kept
UNKNOWN_SAMPLE_STEP = 8


@dataclass
class Look:
    """What ``data inspect`` learns of one scene: its labels (counted on every k-th pixel
    of a large scene: ``weight`` pixels each) and how its files store their pixels."""

    encoded: EncodedMask
    weight: int
    image_mode: str  # "RGB", "4x uint16"
    grid: str | None  # CRS and pixel size
    pixel_size: float | None
    mask_mode: str  # "P", "1x uint8", "polygons"
    group: str
    size: tuple[int, int]  # (width, height)


def _group(image: str) -> str:
    """The tile (folder above images/) of a pair, or "." for a flat dataset."""
    return str(PurePosixPath(image).parent.parent)


@dataclass
class RasterScene:
    """An image raster and its labels (polygons in the raster's CRS, or a class raster
    bound to its grid), read per window.

    ``labels_of`` binds the labels to the scene's grid on first use (a broken mask file
    fails when its scene is used, so ``data inspect`` lists every broken file in one
    run)."""

    id: str
    path: str  # what GDAL opens: a file, a /vsizip/ entry, a URL
    name: str  # how errors name the image
    labels_of: Callable[[Grid], LabelSource]
    pixel_size: float | None = None
    bands: tuple[int, ...] | None = None  # chosen where pixels are read (with_bands)
    group: str = "."
    example: str | None = None  # the image as a path a user can pass to predict
    _opened: tuple[int, RasterInput] | None = field(default=None, repr=False)  # (pid, raster)

    @property
    def stem(self) -> str:
        return PurePosixPath(self.id).stem

    @cached_property
    def grid(self) -> Grid:
        """The scene's pixel grid as it is read (at ``pixel_size``), from the header."""
        with _header(self.path, self.name, self.pixel_size) as ds:
            return Grid(ds.crs, ds.transform, ds.width, ds.height)

    @property
    def height(self) -> int:
        return self.grid.height

    @property
    def width(self) -> int:
        return self.grid.width

    @property
    def transform(self) -> Affine:
        return self.grid.transform

    @cached_property
    def labels(self) -> LabelSource:
        return self.labels_of(self.grid)

    def with_bands(self, bands: tuple[int, ...] | None) -> RasterScene:
        """This scene read in ``bands``, checked against the raster now."""
        scene = replace(self, bands=bands, _opened=None)
        for known in ("grid", "labels"):  # read once: the header, the open label source
            if known in self.__dict__:
                scene.__dict__[known] = self.__dict__[known]
        scene.raster()
        return scene

    def raster(self) -> RasterInput:
        # opened lazily and once per process: a GDAL handle does not survive a fork into
        # a data loader worker
        if self._opened is None or self._opened[0] != os.getpid():
            self._opened = (os.getpid(), self._open(self.bands, "bands="))
        return self._opened[1]

    def _open(self, bands: tuple[int, ...] | None, flag: str) -> RasterInput:
        """The image at the scene's pixel size in ``bands``, checked; never decoded whole
        (that is the cache's choice). Errors name the image as the user knows it."""
        try:
            return open_input(self.path, bands, flag, self.pixel_size, whole_read_pixels=0)
        except InputError as err:
            raise DatasetError(str(err).replace(self.path, self.name)) from None

    def read(self, window: Window, labels: EncodedMask | None = None) -> LabelledImage:
        """The image window as uint8 bands and its class ids (``labels``, where read
        already), ignored where the image has no data or outside the labelled area."""
        values, valid = self.raster().read(window)
        image = np.rint(values).astype(np.uint8)
        ids = (labels or self.labels.read(window)).ids
        ids[~valid] = IGNORE_INDEX
        return LabelledImage(self.id, torch.from_numpy(image), torch.from_numpy(ids))

    def labels_every(self, step: int) -> torch.Tensor:
        """Class ids every ``step`` pixels (rows and columns), for class-balanced crops."""
        return torch.from_numpy(self.labels.every(step).ids)

    def decoded_bytes(self, bands: int) -> int:
        return self.height * self.width * (bands + 1)

    def scene_grid(self) -> SceneGrid:
        """Its id, size and pixel width in CRS units (None without a georeference: a block
        size in metres then cannot apply)."""
        pixel = abs(self.transform.a) if self.grid.crs is not None else None
        return SceneGrid(self.id, self.height, self.width, pixel)

    def georeference(self) -> tuple | None:
        return (self.grid.crs, self.transform) if self.grid.crs is not None else None

    def check(self, reading: Reading) -> None:
        """Header-level problems (a mask of another size or grid, a class table that does
        not fit its values): raised here, on binding the labels and reading one pixel,
        before any scene is decoded."""
        self.labels.read(Window(0, 0, 1, 1))

    def decoded(self, reading: Reading) -> LabelledImage:
        whole = Window(0, 0, self.width, self.height)  # an unreadable file fails here
        scene = self.with_bands(reading.bands)
        labels = self.labels.read(whole)
        self._check_unknown(labels, reading)
        return scene.read(whole, labels)

    def streamed(self, reading: Reading) -> RasterScene:
        scene = self.with_bands(reading.bands)
        self._check_unknown(self.labels.every(UNKNOWN_SAMPLE_STEP), reading)
        return scene

    def _check_unknown(self, encoded: EncodedMask, reading: Reading) -> None:
        name, limit, flag = self.labels.name, reading.max_unknown, reading.flags.max_unknown
        check_unknown_share(encoded, name, limit, flag)

    @property
    def mask_name(self) -> str:
        try:
            return self.labels.name
        except DatasetError:  # the image's header is unreadable
            return self.name

    def look(self, reading: Reading) -> Look:
        """The header, a corner and the last block of the image in ``reading.bands`` (any
        band, where none are named: a truncated file fails), and the labels counted."""
        grid = self.grid
        raster = self._open(reading.bands or (1,), reading.flags.bands)
        image_mode = f"{raster.dataset.count}x {raster.dataset.dtypes[0]}"
        raster.close()
        step = 1
        while (grid.height // step) * (grid.width // step) > COUNTED_PIXELS:
            step += 1
        described, pixel = None, None
        if grid.crs is not None:
            pixel = round(abs(grid.transform.a), 6)
            described = f"{grid.crs.to_string()}, {pixel:g} x {abs(grid.transform.e):g}"
        return Look(self.labels.every(step), step * step, image_mode, described, pixel,
                    self.labels.mode, self.group, (grid.width, grid.height))  # fmt: skip


@dataclass
class PlainPair:
    """A PNG/JPEG image and its mask (or any pair rasterio cannot read by windows), decoded
    whole with PIL."""

    source: DatasetSource
    pair: Pair
    classes: ClassTable
    pixel_size: float | None = None

    @property
    def id(self) -> str:
        return self.pair.id

    @property
    def group(self) -> str:
        return _group(self.pair.id)

    @property
    def stem(self) -> str:
        return self.pair.stem

    @property
    def name(self) -> str:
        return self.pair.id

    @property
    def mask_name(self) -> str:
        return self.pair.mask

    def look(self, reading: Reading) -> Look:
        """Both files decoded whole: a truncated one fails."""
        self.check(reading)
        encoded = self._labels(None)
        self.source.read_image(self.pair, reading.bands, reading.flags.bands)
        image, mask = self._header, self.source.header(self.pair.mask)
        return Look(encoded, 1, image.mode, None, None, mask.mode, self.group, image.size)

    @property
    def example(self) -> str | None:
        return self.source.file_path(self.id)

    @cached_property
    def _header(self):
        return self.source.header(self.pair.id)

    def decoded_bytes(self, bands: int) -> int:
        width, height = self._header.size
        return width * height * (bands + 1)

    def scene_grid(self) -> SceneGrid:
        width, height = self._header.size
        return SceneGrid(self.id, height, width, None)

    def georeference(self) -> tuple | None:
        return None  # a PNG or JPEG has none

    def check(self, reading: Reading) -> None:
        if self.pixel_size:
            raise DatasetError(
                f"{self.pair.mask}: pixel_size= resamples GeoTIFF pairs only; this pair has no"
                " georeference"
            )
        problem = self.source.pair_problem(
            self.pair, reading.resize_masks, reading.flags.resize_masks
        )
        if problem:
            raise GridMismatchError(problem)

    def decoded(self, reading: Reading) -> LabelledImage:
        """The pair decoded; its mask resampled to the image's size where ``check`` let
        one of another size pass (``resize_masks``)."""
        encoded = self._labels(self._header.size)
        name, limit = self.pair.mask, reading.max_unknown
        check_unknown_share(encoded, name, limit, reading.flags.max_unknown)
        values, valid = self.source.read_image(self.pair, reading.bands, reading.flags.bands)
        if valid is not None:
            encoded.ids[~valid] = IGNORE_INDEX
        image = torch.from_numpy(values).permute(2, 0, 1)
        return LabelledImage(self.id, image, torch.from_numpy(encoded.ids))

    def streamed(self, reading: Reading) -> LabelledImage:
        return self.decoded(reading)  # a JPEG or PNG decodes whole anyway

    def _labels(self, size: tuple[int, int] | None) -> EncodedMask:
        mask = self.source.read_mask(self.pair, self.classes.by_value, size)
        return encode_mask(mask, self.classes, self.pair.mask)


@contextmanager
def _header(path: str, name: str, pixel_size: float | None) -> Iterator:
    """An image raster opened for its header, at ``pixel_size``."""
    file = open_raster(path, name)
    with file:
        try:
            ds = at_pixel_size(file, pixel_size, name, flag="pixel_size=") if pixel_size else file
        except InputError as err:
            raise DatasetError(str(err)) from None
        try:
            yield ds
        finally:
            if ds is not file:
                ds.close()
