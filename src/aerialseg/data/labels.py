"""Class rasters as a label source: a scene's class ids for one window at a time.

A class raster is a mask file beside its image (a dataset's GeoTIFF masks) or one raster
of classes over image rasters (``--labels classes.tif``). It holds one band of class
values, or colours (a palette band, or three bands of RGB); ``aerialseg.data.classes``
maps either to class ids. It is read with rasterio by windows, never decoded whole unless
its scene is: a 20,000 px label raster costs the memory of the windows read.

Where the raster lies on its image's pixel grid it is read as it is; a single-band raster
on another grid (resolution, extent or CRS) is warped onto the image's with nearest
sampling, a label never blended, and its pixels outside the raster's extent are ignored.
Polygons (``data/polygons.py``) are the other label source: both answer ``window``.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.features import rasterize
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_geom
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry import box, mapping

from aerialseg.data.classes import IGNORE_INDEX, ClassTable, EncodedMask, encode_mask
from aerialseg.data.raster import InputError, at_pixel_size, opening
from aerialseg.errors import DatasetError, library_reason

STRIP_ROWS = 512  # rows read at once where every step-th label of a whole raster is wanted


class GridMismatchError(DatasetError):
    """A mask of another size or pixel grid than its image, that cannot be warped onto it."""


@dataclass(frozen=True)
class Grid:
    """A scene's pixel grid as it is read: CRS (None: not georeferenced), transform, size."""

    crs: CRS | None
    transform: Affine
    width: int
    height: int


@dataclass
class RasterLabels:
    """A class raster read per window on the pixel grid of its scene (``onto``).

    ``path`` is what GDAL opens (a file, a ``/vsizip/`` entry, a URL); ``name`` names it in
    errors. ``pixel_size``: the raster resampled to it first (its modal class, or the
    nearest), as its image is."""

    path: str
    name: str
    classes: ClassTable
    onto: Grid
    pixel_size: float | None = None
    area: None = None  # labels hold wherever the raster has data
    _open: tuple | None = field(default=None, repr=False)

    def _reader(self) -> tuple:
        """(dataset read on the scene's grid, colour table or None, extent polygon or None),
        opened once per process (a GDAL handle does not survive a fork)."""
        if self._open is not None and self._open[0] == os.getpid():
            return self._open[1]
        file = open_raster(self.path, self.name)
        dataset = file
        if self.pixel_size:
            try:
                dataset = at_pixel_size(file, self.pixel_size, self.name, True, "pixel_size=")
            except InputError as err:
                raise DatasetError(str(err)) from None
        if dataset.count == 2:
            raise DatasetError(
                f"{self.name}: a mask has one band (class values) or three (colours), this one"
                f" {dataset.count}"
            )
        palette = dataset.count == 1 and dataset.colorinterp[0] == ColorInterp.palette
        colours = None
        if palette and not self.classes.by_value:
            colours = np.zeros((256, 3), np.uint8)
            for index, rgba in dataset.colormap(1).items():
                colours[index] = rgba[:3]
        extent = None
        if not _on_grid(dataset, self.onto):
            dataset, extent = self._warped(dataset)
        self._open = (os.getpid(), (dataset, colours, extent))
        return self._open[1]

    @property
    def mode(self) -> str:
        """Bands and type, e.g. "1x uint8"."""
        dataset = self._reader()[0]
        return f"{dataset.count}x {dataset.dtypes[0]}"

    def _warped(self, dataset) -> tuple:
        onto = self.onto
        if dataset.count != 1 or dataset.crs is None or onto.crs is None:
            size = f"{dataset.width}x{dataset.height}"
            if (dataset.width, dataset.height) != (onto.width, onto.height):
                raise GridMismatchError(
                    f"{self.name}: mask is {size} but its image is {onto.width}x{onto.height};"
                    " masks must match their image pixel for pixel (or be single-band"
                    " georeferenced class rasters, warped onto the image's grid)"
                )
            raise GridMismatchError(
                f"{self.name}: mask lies on another grid than its image (CRS or pixel origin"
                " and size differ); resample it onto the image's grid (gdalwarp with the"
                " image's extent, resolution and CRS)"
            )
        vrt = WarpedVRT(
            dataset, crs=onto.crs, transform=onto.transform, width=onto.width,
            height=onto.height, resampling=Resampling.nearest,
        )  # fmt: skip
        extent = transform_geom(dataset.crs, onto.crs, mapping(box(*dataset.bounds)))
        return vrt, extent

    def read(self, window: Window, step: int = 1) -> EncodedMask:
        """The class ids of ``window`` of the scene, every ``step``-th row and column."""
        dataset, colours, extent = self._reader()
        try:
            masked = dataset.nodata is not None
            if dataset.count == 1:
                values = dataset.read(1, window=window, masked=masked)[::step, ::step]
                mask = values
                if colours is not None:  # a palette's nodata stays nodata in its colours
                    nodata = np.ma.getmaskarray(values)[..., None].repeat(3, axis=-1)
                    mask = np.ma.masked_array(colours[np.ma.getdata(values)], nodata)
            else:
                mask = dataset.read([1, 2, 3], window=window, masked=masked)[:, ::step, ::step]
                mask = mask.transpose(1, 2, 0)
        except RasterioIOError as err:
            raise DatasetError(
                f"{self.name}: the file is truncated or damaged ({library_reason(err)})"
            ) from None
        encoded = encode_mask(mask, self.classes, self.name)
        if extent is not None:
            at = window_transform(window, self.onto.transform)
            shape = (int(window.height), int(window.width))
            inside = rasterize([(extent, 1)], out_shape=shape, transform=at, fill=0)
            encoded.ids[inside[::step, ::step] == 0] = IGNORE_INDEX
        return encoded

    def every(self, step: int) -> EncodedMask:
        """Every ``step``-th row and column of the whole scene's labels, read in strips of
        rows: one pass over the raster, the memory of a strip."""
        height, width = self.onto.height, self.onto.width
        strips, ignored = [], 0
        unknown: Counter = Counter()
        by_value = False
        for top in range(0, height, STRIP_ROWS):
            rows = min(STRIP_ROWS, height - top)
            part = self.read(Window(0, top, width, rows), step)
            strips.append(part.ids)
            unknown.update(part.unknown)
            ignored += part.ignored
            by_value = part.by_value
        ids = np.concatenate(strips) if strips else np.zeros((0, width), np.uint8)
        return EncodedMask(ids, unknown, ignored, by_value)


def open_raster(path: str, name: str):
    """``path`` opened with rasterio; a file it cannot read is one line naming ``name``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with opening(path):
                return rasterio.open(path)
    except RasterioIOError as err:
        reason = library_reason(err).replace(f"'{path}' ", "")
        raise DatasetError(
            f"{name}: cannot read the file ({reason}); it is damaged or not an image: replace"
            " it or remove it from the dataset"
        ) from None


def same_grid(a: tuple, b: tuple) -> bool:
    """(CRS, transform) pairs equal: the same CRS and transforms within a hundredth of a
    pixel."""
    (crs_a, transform_a), (crs_b, transform_b) = a, b
    return crs_a == crs_b and transform_a.almost_equals(
        transform_b, precision=0.01 * abs(transform_a.a)
    )


def _on_grid(dataset, onto: Grid) -> bool:
    if (dataset.width, dataset.height) != (onto.width, onto.height):
        return False
    if dataset.crs is None or onto.crs is None:
        return True  # the same size, pixel for pixel: no grid to compare
    return same_grid((dataset.crs, dataset.transform), (onto.crs, onto.transform))
