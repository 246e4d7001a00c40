"""Scenes: what training, scoring and checks read, whatever form the dataset came in.

A scene (``RasterScene``) is an image raster read by windows with rasterio, the reader
predict uses, plus a label source: polygons (``data/polygons.py``) or a class raster
(``data/labels.py``). GeoTIFF, COG, JPEG and PNG files, ``/vsizip/`` entries and URLs
are all scenes: a COG or tiled GeoTIFF reads only the blocks under a window, a URL only
their byte ranges, a JPEG or PNG (which cannot be read from the middle) decodes whole.
So training and ``evaluate`` see the very pixels ``predict`` sees.

A decoded scene is a ``LabelledImage``, whose windows are slices; a raster scene gives the
same arrays for the same window, so the sampler does not care which it has.
``Catalog.read`` (``data/catalog.py``) keeps scenes decoded while they fit in
``cache_megabytes``, and streams the others beyond.

Bands are chosen where pixels are read (``Reading``): a scene is opened from its header
alone, so listing, splitting and checking a dataset work on any band count.
"""

from __future__ import annotations

import math
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
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from aerialseg.data.blocks import SceneGrid
from aerialseg.data.classes import IGNORE_INDEX, EncodedMask, check_unknown_share
from aerialseg.data.labels import DECODED_WHOLE, Grid, GridMismatchError, open_raster, strip_rows
from aerialseg.data.polygons import PolygonLayer
from aerialseg.data.raster import (
    InputError,
    RasterInput,
    at_pixel_size,
    band_example,
    bands_mask,
    choose_bands,
    colour_table,
    open_input,
    valid_mask,
)
from aerialseg.errors import DatasetError


@dataclass(frozen=True)
class Flags:
    """How a command's user sets what reading errors suggest changing: the evaluate
    command's flags by default, the training settings in ``TRAINING_FLAGS``."""

    max_unknown: str = "--max-unknown"
    resize_masks: str = "--resize-masks"
    bands: str = "--bands"


TRAINING_FLAGS = Flags(max_unknown="max_unknown=", resize_masks="--resize-masks", bands="bands=")


@dataclass(frozen=True)
class Reading:
    """How a command reads pixels: which bands, what it checks, how much it keeps decoded."""

    bands: tuple[int, ...] | None = None  # 1-based; None: an RGB(A) raster's three
    max_unknown: float = 0.05  # largest share of a mask in no class's colour or value
    resize_masks: bool = False  # masks of another size, no georeference: stretched to it
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

    @property
    def resized_from(self) -> tuple[int, int] | None: ...  # a mask stretched to the image

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
    image_mode: str  # "3x uint8", "4x uint16"
    grid: str | None  # CRS and pixel size
    pixel_size: float | None
    mask_mode: str  # "1x uint8", "3x uint8", "polygons"
    group: str
    size: tuple[int, int]  # (width, height)
    units: str | None = None  # of its CRS's pixel size: "degree", "metre"; None: no CRS
    no_data: int = 0  # of the pixels counted, those where the image has no data


def _group(image: str) -> str:
    """The tile (folder above images/) of a pair, or "." for a flat dataset; of a URL, the
    same above its path, its scheme and host kept whole (PurePosixPath folded '//')."""
    scheme, sep, rest = image.partition("://")
    if not sep:
        return str(PurePosixPath(image).parent.parent)
    host, _, path = rest.partition("/")
    return f"{scheme}://{host}{str(PurePosixPath('/' + path).parent.parent).rstrip('/')}"


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
    pixel_flag: str = "--pixel-size"  # how the user sets ``pixel_size``, for errors
    bands: tuple[int, ...] | None = None  # chosen where pixels are read (with_bands)
    band_flag: str = Flags.bands  # how the reading command's user chooses them, for errors
    group: str = "."
    example: str | None = None  # the image as a path a user can pass to predict
    _opened: tuple[int, RasterInput] | None = field(default=None, repr=False)  # (pid, raster)

    @property
    def stem(self) -> str:
        return PurePosixPath(self.id).stem

    @cached_property
    def grid(self) -> Grid:
        """The scene's pixel grid as it is read (at ``pixel_size``), from the header."""
        with _header(self.path, self.name, self.pixel_size, self.pixel_flag) as ds:
            return Grid(ds.crs, ds.transform, ds.width, ds.height)

    @cached_property
    def native_transform(self) -> Affine:
        """The transform of the scene's own pixels (``transform`` at ``pixel_size``)."""
        if not self.pixel_size:
            return self.transform
        with _header(self.path, self.name) as ds:
            return ds.transform

    @cached_property
    def decodes_whole(self) -> bool:
        """A JPEG or PNG (``labels.DECODED_WHOLE``), which cannot be read from the middle."""
        with _header(self.path, self.name) as file:
            return file.driver in DECODED_WHOLE

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

    def with_bands(self, bands: tuple[int, ...] | None, flag: str = Flags.bands) -> RasterScene:
        """This scene read in ``bands``, checked against the raster now; ``flag``: how
        the user chooses them."""
        scene = replace(self, bands=bands, band_flag=flag, _opened=None)
        for known in ("grid", "decodes_whole", "labels"):  # the headers, the open labels
            if known in self.__dict__:
                scene.__dict__[known] = self.__dict__[known]
        scene.raster()
        return scene

    def bands_needed(self) -> tuple[int, int, int] | None:
        """The bands a run must be told to read this image in (``band_example``: its red,
        green and blue as far as the file says), from its header; None where the default
        three serve."""
        with _header(self.path, self.name) as ds:
            try:
                choose_bands(ds, self.name, None, palette=colour_table(ds) is not None)
            except InputError:
                return band_example(ds)
        return None

    def raster(self) -> RasterInput:
        # opened lazily and once per process: a GDAL handle does not survive a fork into
        # a data loader worker
        if self._opened is None or self._opened[0] != os.getpid():
            self._opened = (os.getpid(), self._open(self.bands, self.band_flag))
        return self._opened[1]

    def _open(self, bands: tuple[int, ...] | None, flag: str) -> RasterInput:
        """The image at the scene's pixel size in ``bands``, checked; never decoded whole
        (that is the cache's choice). Errors name the image as the user knows it."""
        try:
            return open_input(
                self.path,
                bands,
                flag,
                self.pixel_size,
                pixel_flag=self.pixel_flag,
                whole_read_pixels=0,
            )
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
        """Its id, size, pixel width in CRS units and metres per CRS unit, from the header
        (no pixel width without a georeference: a block size in metres then cannot apply)."""
        return SceneGrid.of(self.id, self.height, self.width, self.grid.crs, self.transform)

    def georeference(self) -> tuple | None:
        return (self.grid.crs, self.transform) if self.grid.crs is not None else None

    def check(self, reading: Reading) -> None:
        """Header-level problems (a mask of another size or grid, a class table that does
        not fit its values): raised here, on binding the labels and reading one pixel,
        before any scene is decoded. A mask of another size without a georeference is
        stretched over its image only where ``reading.resize_masks`` asks."""
        labels = self.labels
        labels.read(Window(0, 0, 1, 1))
        if labels.resized_from is not None and not reading.resize_masks:
            width, height = labels.resized_from
            raise GridMismatchError(
                f"{labels.name}: mask is {width}x{height} but its image is {self.width}x"
                f"{self.height}; masks must match their image pixel for pixel;"
                f" {reading.flags.resize_masks} resamples such masks to their image's size"
                " (nearest)"
            )

    def decoded(self, reading: Reading) -> LabelledImage:
        whole = Window(0, 0, self.width, self.height)  # an unreadable file fails here
        scene = self.with_bands(reading.bands, reading.flags.bands)
        labels = self.labels.read(whole)
        self._check_unknown(labels, reading)
        return scene.read(whole, labels)

    def streamed(self, reading: Reading) -> RasterScene | LabelledImage:
        if self.decodes_whole:  # each window would decode the file from its start again
            return self.decoded(reading)
        scene = self.with_bands(reading.bands, reading.flags.bands)
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
        band, where none are named: a truncated file fails), and the labels counted where
        the image has data: its mask is read whole where it has one (nodata, alpha), which
        for a nodata value decodes the bands."""
        grid = self.grid
        with self._open(reading.bands or (1,), reading.flags.bands) as raster:
            ds = raster.dataset
            image_mode = f"{ds.count}x {ds.dtypes[0]}"
            self.check(reading)
            step = 1
            while (grid.height // step) * (grid.width // step) > COUNTED_PIXELS:
                step += 1
            encoded = self.labels.every(step)
            no_data = _nodata_every(ds, reading.bands, step)
            encoded.ids[no_data] = IGNORE_INDEX
        described, pixel, units = None, None, None
        if grid.crs is not None:
            t = grid.transform  # a column's and a row's step: a rotated grid's too
            # six significant digits: six decimals made a pixel of 9.5e-6 degrees 1e-05
            pixel = float(f"{math.hypot(t.a, t.d):.6g}")
            described = f"{grid.crs.to_string()}, {pixel:g} x {math.hypot(t.b, t.e):g}"
            units = "degree" if grid.crs.is_geographic else grid.crs.linear_units
        return Look(encoded, step * step, image_mode, described, pixel,
                    self.labels.mode, self.group, (grid.width, grid.height), units,
                    int(np.broadcast_to(no_data, encoded.ids.shape).sum()))  # fmt: skip


def _nodata_every(ds, bands: tuple[int, ...] | None, step: int) -> np.ndarray | np.bool_:
    """Where the image has no data, at every ``step``-th row and column (of ``bands``, any
    of which holds data where given, else of the file's; NaN and inf in any, for float
    bands): training leaves those pixels out, so inspect does not count them as labelled
    (a review: 3 % nodata was counted as land). False, reading nothing, where GDAL says
    every pixel is valid and no band is float; else the bands are read whole, by strips."""
    chosen = tuple(sorted(set(bands or range(1, ds.count + 1))))
    if max(chosen) > ds.count:  # a palette image's three colours, of its one band
        chosen = tuple(range(1, ds.count + 1))
    # a float band's NaN and inf are no data too, as training reads them (valid_mask; a
    # review: inspect counted a half-NaN scene's every pixel as labelled)
    floats = any(np.dtype(ds.dtypes[b - 1]).kind == "f" for b in chosen)
    if not floats and all(MaskFlags.all_valid in ds.mask_flag_enums[b - 1] for b in chosen):
        return np.False_
    each, strips = strip_rows(step), []
    for top in range(0, ds.height, each):
        window = Window(0, top, ds.width, min(each, ds.height - top))
        mask = bands_mask(ds, chosen, window=window)
        if floats:
            mask = valid_mask(ds.read(list(chosen), window=window), mask)
        strips.append(mask[::step, ::step] == 0)
    return np.concatenate(strips)


@contextmanager
def _header(
    path: str, name: str, pixel_size: float | None = None, flag: str = "--pixel-size"
) -> Iterator:
    """An image raster opened for its header, at ``pixel_size`` (set by ``flag``)."""
    file = open_raster(path, name)
    with file:
        try:
            ds = at_pixel_size(file, pixel_size, name, flag=flag) if pixel_size else file
        except InputError as err:
            raise DatasetError(str(err)) from None
        try:
            yield ds
        finally:
            if ds is not file:
                ds.close()
