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
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioIOError
from rasterio.features import rasterize
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_geom
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry import mapping, shape

from aerialseg.data.classes import ClassTable, EncodedMask, encode_mask
from aerialseg.data.polygons import footprint
from aerialseg.data.raster import (
    InputError,
    at_pixel_size,
    check_png_end,
    is_url,
    no_georeference_warning,
    open_dataset,
    opening,
)
from aerialseg.errors import DatasetError, library_reason

STAND_IN_CRS = CRS.from_epsg(3857)  # see RasterLabels._warped
STRIP_ROWS = 512  # rows read at once where every step-th label of a whole raster is wanted
# JPEG and PNG cannot be read from the middle: a dataset's are decoded whole, and past
# PIL's own limit (179 MP) a header is a decompression bomb (a 500-byte PNG may declare
# 30,000 x 30,000 px) or a scene to cut into tiles first.
DECODED_WHOLE = ("JPEG", "PNG")
MAX_DECODED_PIXELS = 178_956_970


class GridMismatchError(DatasetError):
    """A mask of another size or pixel grid than its image, that cannot be warped onto it."""


class OversizeImageError(DatasetError):
    """A JPEG or PNG of a dataset declares more pixels than MAX_DECODED_PIXELS."""


@dataclass(frozen=True)
class Grid:
    """A scene's pixel grid as it is read: CRS (None: not georeferenced), transform, size."""

    crs: CRS | None
    transform: Affine
    width: int
    height: int


@dataclass(frozen=True)
class OpenedLabels:
    """A class raster opened on its scene's grid, and what opening it found."""

    dataset: Any  # rasterio dataset, or the WarpedVRT over it
    colours: np.ndarray | None  # a palette's RGB per value, where colours name the classes
    extent: dict | None  # the raster's extent on a warped grid (GeoJSON); None: all of it
    mode: str  # how the file stores the labels: "3x uint8", "1x uint8 palette"
    # (width, height) of a mask without a georeference stretched onto its image's size,
    # which the scene allows only where asked (resize_masks)
    resized_from: tuple[int, int] | None


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
    pixel_flag: str = "--pixel-size"  # how the user sets ``pixel_size``, for errors
    area: None = None  # labels hold wherever the raster has data
    _open: tuple[int, OpenedLabels] | None = field(default=None, repr=False)

    @property
    def mode(self) -> str:
        return self._reader().mode

    @property
    def resized_from(self) -> tuple[int, int] | None:
        return self._reader().resized_from

    def _reader(self) -> OpenedLabels:
        """The raster opened on the scene's grid, once per process (a GDAL handle does not
        survive a fork)."""
        if self._open is not None and self._open[0] == os.getpid():
            return self._open[1]
        file = open_raster(self.path, self.name)
        dataset = file
        if self.pixel_size:
            try:
                dataset = at_pixel_size(file, self.pixel_size, self.name, True, self.pixel_flag)
            except InputError as err:
                raise DatasetError(str(err)) from None
        if dataset.count == 2:
            raise DatasetError(
                f"{self.name}: a mask has one band (class values) or three (colours), this one"
                f" {dataset.count}"
            )
        palette = dataset.count == 1 and dataset.colorinterp[0] == ColorInterp.palette
        colours = None
        if dataset.count >= 3 and dataset.dtypes[0] != "uint8":  # packed 8 bits a channel
            raise DatasetError(
                f"{self.name}: a colour mask holds 8-bit bands (0-255), this one"
                f" {dataset.dtypes[0]}: save it as 8-bit RGB (for 16-bit colours,"
                " gdal_translate -ot Byte -scale 0 65535 0 255)"
            )
        if palette and not self.classes.by_value:
            colours = np.zeros((np.iinfo(dataset.dtypes[0]).max + 1, 3), np.uint8)  # 8/16-bit
            for index, rgba in dataset.colormap(1).items():
                colours[index] = rgba[:3]
        nodata = dataset.nodata
        if nodata is not None and dataset.count == 1 and colours is None:
            named = next((c for c in self.classes.classes if c.mask_value == nodata), None)
            if named is not None:  # its pixels would be left out, never learnt nor scored
                raise DatasetError(
                    f"{self.name}: its nodata value {nodata:g} is the mask_value of class"
                    f" {named.name!r}, which would be left out everywhere; unset the"
                    f" nodata (gdal_edit.py -unsetnodata) or give {named.name!r} another value"
                )
        mode = f"{dataset.count}x {dataset.dtypes[0]}" + (" palette" if palette else "")
        extent, resized_from = None, None
        if not _on_grid(dataset, self.onto):
            dataset, extent, resized_from = self._warped(dataset)
        opened = OpenedLabels(dataset, colours, extent, mode, resized_from)
        self._open = (os.getpid(), opened)
        return opened

    def _warped(self, dataset) -> tuple:
        """(the raster warped onto the scene's grid, its extent there or None, and the
        size it had where it was stretched over the image without a georeference)."""
        onto = self.onto
        if dataset.crs is None or onto.crs is None:
            # No grid places it: stretched over the image, nearest (PIL's resize picks the
            # same pixels). GDAL warps between georeferenced grids only, so both take one
            # stand-in CRS, the mask's pixels scaled onto the image's.
            scale = Affine.scale(onto.width / dataset.width, onto.height / dataset.height)
            vrt = WarpedVRT(
                dataset, src_crs=STAND_IN_CRS, src_transform=scale, crs=STAND_IN_CRS,
                transform=Affine.identity(), width=onto.width, height=onto.height,
                resampling=Resampling.nearest,
            )  # fmt: skip
            return vrt, None, (dataset.width, dataset.height)
        if dataset.count != 1:
            raise GridMismatchError(
                f"{self.name}: mask lies on another grid than its image (CRS or pixel origin"
                " and size differ); resample it onto the image's grid (gdalwarp with the"
                " image's extent, resolution and CRS)"
            )
        vrt = WarpedVRT(
            dataset, crs=onto.crs, transform=onto.transform, width=onto.width,
            height=onto.height, resampling=Resampling.nearest,
        )  # fmt: skip
        # its four corners (the bounds' box misses much of a rotated grid; the warp fills
        # what the raster does not cover with 0, a class value)
        whole = footprint(Window(0, 0, dataset.width, dataset.height), dataset.transform)
        # with points along its edges: a straight edge in degrees is a curve in metres
        along = shapely.segmentize(whole, whole.length / 256)
        extent = transform_geom(dataset.crs, onto.crs, mapping(along))
        image = footprint(Window(0, 0, onto.width, onto.height), onto.transform)
        if not shape(extent).intersection(image).area > 0:
            raise GridMismatchError(
                f"{self.name}: lies on no pixel of its image (another place, or a wrong CRS);"
                " give the class raster that covers it"
            )
        return vrt, extent, None

    def read(self, window: Window, step: int = 1) -> EncodedMask:
        """The class ids of ``window`` of the scene, every ``step``-th row and column."""
        opened = self._reader()
        dataset, colours, extent = opened.dataset, opened.colours, opened.extent
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
                if dataset.count == 4 and dataset.colorinterp[3] == ColorInterp.alpha:
                    # RGBA: transparent pixels hold no label
                    clear = dataset.read(4, window=window)[::step, ::step] == 0
                    mask = np.ma.masked_array(
                        np.ma.getdata(mask), np.ma.getmaskarray(mask) | clear[..., None]
                    )
        except RasterioIOError as err:
            raise DatasetError(
                f"{self.name}: the file is truncated or damaged ({library_reason(err)})"
            ) from None
        if extent is not None:  # where the raster does not reach: no label, not class 0
            at = window_transform(window, self.onto.transform)
            shape = (int(window.height), int(window.width))
            inside = rasterize([(extent, 1)], out_shape=shape, transform=at, fill=0)
            outside = (inside[::step, ::step] == 0).reshape(mask.shape[:2] + (1,) * (mask.ndim - 2))
            mask = np.ma.masked_array(np.ma.getdata(mask), np.ma.getmaskarray(mask) | outside)
        return encode_mask(mask, self.classes, self.name)

    def every(self, step: int) -> EncodedMask:
        """Every ``step``-th row and column of the whole scene's labels (the pixels
        ``ids[::step, ::step]`` of the whole picks), read in strips of rows: one pass over
        the raster, the memory of a strip."""
        height, width = self.onto.height, self.onto.width
        strips, ignored = [], 0
        unknown: Counter = Counter()
        by_value = False
        each = strip_rows(step)
        for top in range(0, height, each):
            rows = min(each, height - top)
            part = self.read(Window(0, top, width, rows), step)
            strips.append(part.ids)
            unknown.update(part.unknown)
            ignored += part.ignored
            by_value = part.by_value
        ids = np.concatenate(strips) if strips else np.zeros((0, width), np.uint8)
        return EncodedMask(ids, unknown, ignored, by_value)


def strip_rows(step: int) -> int:
    """Rows of a strip read for every ``step``-th row: a multiple of ``step``, so each
    strip's ``[::step]`` is the whole's."""
    return max(step, STRIP_ROWS // step * step)


def open_raster(path: str, name: str):
    """``path`` opened with rasterio; a file it cannot read, or a JPEG or PNG too large to
    decode, is one line naming ``name``."""
    try:
        with no_georeference_warning(), opening(path):
            dataset = open_dataset(path)
    except InputError as err:  # a zip entry refused from its sizes
        raise DatasetError(str(err).replace(path, name)) from None
    except RasterioIOError as err:
        reason = library_reason(err).replace(f"'{path}' ", "")
        # a review: a refused connection or a 404 was called a damaged file (a file the
        # server sends whole is still judged as a file); where GDAL's last answer for the
        # URL is cached, a refused connection reads "does not exist in the file system"
        transport = re.search(
            r"CURL error|HTTP response code|could not connect|does not exist in the file system",
            reason,
            re.I,
        )
        if is_url(path) and "/vsizip/" not in path and transport:
            raise DatasetError(
                f"{name}: cannot read it from its server ({reason}); check the URL, that the"
                " server is up, and that it serves byte ranges (HTTP Range requests)"
            ) from None
        raise DatasetError(
            f"{name}: cannot read the file ({reason}); it is damaged, or not a GeoTIFF, PNG or"
            " JPEG (convert a VRT or another format with gdal_translate -of COG): replace it or"
            " remove it from the dataset"
        ) from None
    try:
        if dataset.driver == "PNG":
            check_png_end(path)
    except InputError as err:
        dataset.close()
        raise DatasetError(f"{str(err).replace(path, name)}; replace it or remove it") from None
    width, height = dataset.width, dataset.height
    if dataset.driver in DECODED_WHOLE and width * height > MAX_DECODED_PIXELS:
        dataset.close()
        raise OversizeImageError(
            f"{name}: {width:,} x {height:,} px, more than the {MAX_DECODED_PIXELS:,} pixels"
            " a JPEG or PNG of a dataset may have (they are decoded whole); cut it into"
            " tiles or remove it"
        )
    return dataset


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
