"""Open any raster (JPEG, PNG, TIFF, GeoTIFF) and read windows of the bands a model takes,
for prediction and for training alike.

Band choice: three-band inputs are read as RGB as they are; RGBA uses the alpha band as the
nodata mask; anything else needs ``--bands`` (1-based, e.g. ``4,3,2``). A model trained on
other bands (``bands=[3,2,1,4]`` with near infrared) keeps them and reads them again.

Palette images (one band of indices into a colour table: a PNG saved as ``P``, a paletted
GeoTIFF) are read as the RGB their table gives, as GDAL's ``gdal_translate -expand rgb``
would: their values are colour numbers, not grey levels. ``--bands`` then picks from that
RGB (``3,2,1``). Values whose entry has alpha 0 (a PNG's transparent colours), or that
have no entry, are nodata; partial alpha is ignored, as an RGBA image's is. A pixel size
resamples their indices as class masks are (the most common, or the nearest), before
they are turned into colours.

Value scaling (models train on 8-bit values): 8-bit data is used as is. Other types
(16-bit, float) are stretched linearly per band from the 2nd to the 98th percentile of the
valid pixels, measured on a reduced read of the whole raster (on every pixel where that
read shows a band no spread), to 0..255 and clipped; this is the usual display stretch
for satellite products and keeps one scale for all windows.

Pixel size: a model trained with ``pixel_size=`` (or predict's ``--pixel-size``) reads
georeferenced rasters resampled to that ground resolution (at_pixel_size).

Nodata: GDAL's dataset mask (nodata value, alpha band or mask band) marks invalid pixels,
and so does any non-finite value (NaN, infinity) in a float band, declared or not: one NaN
would otherwise spoil the stretch of every pixel. They are predicted as nothing and
written as nodata in every output.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import posixpath
import re
import stat
import threading
import time
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import numpy as np
import rasterio
from affine import Affine
from rasterio._path import _parse_path  # what rasterio.open does to a path or URL
from rasterio.enums import ColorInterp, Interleaving, Resampling
from rasterio.env import ensure_env_with_credentials
from rasterio.errors import NodataShadowWarning, NotGeoreferencedWarning, RasterioIOError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from aerialseg.errors import AerialsegError, library_reason
from aerialseg.files import gdal_name

STRETCH_PERCENTILES = (2.0, 98.0)
STATS_SIDE = 1024  # longest side of the reduced read used for the stretch
# Rasters up to this many pixels are decoded once, whole, when opened: JPEG and PNG cannot
# be read from the middle, so each band of windows would decode the file from its start
# again. 25 MP of 8-bit RGB hold 100 MB; larger scenes are read window by window.
WHOLE_READ_PIXELS = 25_000_000
# Resampling to finer pixels adds no detail: past this factor per side it is a typo
# (--pixel-size 0.0001 made a 256 px input 2,560,000 px a side) or a model trained on far
# finer imagery, and its size grows with the square.
MAX_UPSAMPLING = 8
# Where pixels are limited (the server), how many times the limit a file resampled to
# coarser pixels may hold: it is read whole to be averaged (4 times as fine per side)
MAX_DOWNSAMPLED_AREA = 16


class InputError(AerialsegError, ValueError):
    """An input raster cannot be predicted as given."""


class UnreadableInputError(InputError):
    """The input is empty or not an image format aerialseg reads at all."""


class TooLargeInputError(InputError):
    """The input is larger, wider or longer than the caller takes (a server's limits), or
    would be once resampled."""


class UngeoreferencedError(InputError):
    """A pixel size was asked of a raster that has no georeference."""


def parse_bands(text: str | None, flag: str) -> tuple[int, ...] | None:
    """``"4,3,2"`` -> (4, 3, 2); any count of band numbers from 1. ``flag``: how the user
    gives them (the server's ``bands=``), for errors."""
    if text is None:
        return None
    try:
        bands = tuple(int(b) for b in text.split(","))
    except ValueError:
        raise InputError(f"{flag} {text!r}: give band numbers like 1,2,3") from None
    if min(bands) < 1:
        raise InputError(f"{flag} {text!r}: give band numbers (from 1) like 1,2,3")
    return bands


def band_numbers(bands, flag: str = "--bands") -> tuple[int, ...] | None:
    """``bands`` (a sequence of 1-based band numbers) as the readers take them, checked;
    None where none are chosen."""
    if bands is None or len(bands) == 0:
        return None
    whole = all(isinstance(b, int | np.integer) and not isinstance(b, bool) for b in bands)
    if not whole or min(bands) < 1:
        listed = ",".join(map(str, bands))
        raise InputError(f"{flag} {listed}: give band numbers (from 1) like 1,2,3")
    return tuple(int(b) for b in bands)


def check_pixel_size(pixel_size, flag: str = "--pixel-size") -> None:
    """A pixel size to resample to: a finite positive number of CRS units."""
    # numpy's numbers too (a review: np.float32(1.0) was "not a positive size")
    number = isinstance(pixel_size, numbers.Real) and not isinstance(pixel_size, bool | np.bool_)
    if not (number and math.isfinite(pixel_size) and pixel_size > 0):
        raise InputError(f"{flag} {pixel_size!r}: give a positive size in CRS units, e.g. 0.5")


def check_band_count(bands: tuple[int, ...] | None, model_bands: int, flag: str) -> None:
    """A user's band choice for a model that takes ``model_bands`` bands."""
    if bands is not None and len(bands) != model_bands:
        raise InputError(
            f"{flag} {','.join(map(str, bands))}: the model takes {model_bands} band(s);"
            f" give {model_bands} band numbers"
        )


@dataclass
class RasterInput:
    """An open input raster plus the decisions on how to read it."""

    path: Path | str  # str: a URL (is_url)
    dataset: rasterio.io.DatasetReader
    bands: tuple[int, ...]
    scale: tuple[np.ndarray, np.ndarray] | None  # per-band (low, high) stretch, None for 8-bit
    whole: tuple[np.ndarray, np.ndarray] | None = None  # (bands, valid mask) of a small raster
    file: rasterio.io.DatasetReader | None = None  # the file under a resampled ``dataset``
    palette: np.ndarray | None = None  # (entries, 4) RGBA of a palette image (colour_table)

    @property
    def width(self) -> int:
        return self.dataset.width

    @property
    def height(self) -> int:
        return self.dataset.height

    @property
    def georeferenced(self) -> bool:
        return self.dataset.crs is not None

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """(bands, h, w) float32 values in 0..255 and an (h, w) bool valid mask; ``window``
        lies inside the raster."""
        if self.whole is None:
            try:
                data, valid = _read_bands(self.dataset, self.bands, self.palette, window)
            except RasterioIOError as err:  # a block past the ones checked on opening
                raise InputError(
                    f"{self.path}: the file is truncated or damaged ({library_reason(err)})"
                ) from None
        else:
            rows, cols = window.toslices()
            data, valid = self.whole[0][:, rows, cols], self.whole[1][rows, cols]
        return _to_0_255(data, valid, self.scale), valid

    def close(self) -> None:
        self.dataset.close()
        if self.file is not None:
            self.file.close()

    def __enter__(self) -> RasterInput:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def at_pixel_size(
    ds, pixel_size: float, name: str, labels: bool = False, flag: str | None = "--pixel-size"
):
    """``ds`` resampled to square pixels of ``pixel_size`` CRS units over the same extent
    (a WarpedVRT; ``ds`` itself where its pixels are that size already). Images are
    averaged onto coarser pixels and interpolated bilinearly onto finer ones; ``labels``
    (class masks) take the most common value, or the nearest one. This is torchgeo's
    ``res``: a model sees every scene at the ground resolution it was trained at.
    ``flag``: how the user sets the pixel size, for hints; None where it is the model's
    and cannot be set (the server)."""
    check_pixel_size(pixel_size, flag or "pixel_size")
    if ds.crs is None:
        if ds.gcps[0]:  # a review: such rasters were said to have no georeference
            raise UngeoreferencedError(
                f"{name}: placed by ground control points, not on a pixel grid; warp it onto"
                f" one first (gdalwarp) for {flag or 'a pixel size'}"
            )
        missing, kind = (
            ("CRS", "GeoTIFF with a CRS")
            if not ds.transform.is_identity
            else ("georeference", "GeoTIFF")
        )  # a pixel grid without a CRS: in units of what is not known
        raise UngeoreferencedError(
            f"{name}: has no {missing}, so its pixel size is unknown;"
            f" {flag or 'a pixel size'} needs georeferenced rasters ({kind})"
        )
    t = ds.transform
    if t.b or t.d:
        raise InputError(f"{name}: a rotated pixel grid; warp it north-up first (gdalwarp)")
    if math.isclose(abs(t.a), pixel_size, rel_tol=1e-6) and math.isclose(
        abs(t.e), pixel_size, rel_tol=1e-6
    ):
        return ds
    # a south-up (or east-left) grid has its bounds the other way round: resampled north-up
    (left, right), (bottom, top) = (sorted(ds.bounds[0::2]), sorted(ds.bounds[1::2]))
    # One pixel larger than the scene would be a made-up ground (a 64 x 48 m scene as one
    # 1 km pixel measured 1 km²; 1e308 an area of infinity). The tolerance lets the
    # suggested size, rounded to 6 digits, through.
    largest = min(right - left, top - bottom)
    if pixel_size > largest * (1 + 1e-5):
        fix = f"{_setting(flag, f'{largest:g}')} or less" if flag else "give a larger image"
        raise InputError(
            f"{name}: the scene is {right - left:g} x {top - bottom:g} CRS units, less than"
            f" one pixel of {pixel_size:g} on a side: {fix}"
        )
    # sides as floats until they are checked: 1e-300 makes 300-digit ones, 5e-324 infinity
    cols, rows = (right - left) / pixel_size, (top - bottom) / pixel_size
    own = min(abs(t.a), abs(t.e))
    if pixel_size * MAX_UPSAMPLING < own * (1 - 1e-6):
        fix = (
            f"{_setting(flag, f'{own / MAX_UPSAMPLING:g}')} or more"
            if flag  # the model's pixel size, which the user cannot set here: the image
            else f"give an image of pixels of {pixel_size * MAX_UPSAMPLING:g} or finer"
        )
        raise TooLargeInputError(
            f"{name}: resampled to pixels of {pixel_size:g} it would be {_count(cols)} x"
            f" {_count(rows)} px, from {ds.width:,} x {ds.height:,} px of {own:g}; the limit"
            f" is {MAX_UPSAMPLING} times finer per side: {fix}"
        )
    width, height = max(1, round(cols)), max(1, round(rows))
    coarser = pixel_size > own
    if labels:
        # the most common of several colours, band by band, could be a colour of none
        resampling = Resampling.mode if coarser and ds.count == 1 else Resampling.nearest
    else:
        resampling = Resampling.average if coarser else Resampling.bilinear
    return WarpedVRT(
        ds,
        crs=ds.crs,
        transform=Affine(pixel_size, 0, left, 0, -pixel_size, top),
        width=width,
        height=height,
        resampling=resampling,
    )


def _count(pixels: float) -> str:
    """A count of pixels for a message: whole, or in powers of ten past a trillion."""
    if pixels < 1e12:
        return f"{round(pixels):,}"
    return f"{pixels:.3g}" if math.isfinite(pixels) else "more than 1e+308"


def _setting(flag: str, value: object) -> str:
    """How the user writes ``value`` for ``flag``: ``--bands 1,2,3``, ``pixel_size=0.5``,
    ``bands=[1,2,3]`` (a setting takes a list), or a query's ``?bands=1,2,3``."""
    if flag.endswith("=") and not flag.startswith("?") and "," in str(value):
        return f"{flag}[{value}]"
    return f"{flag}{value}" if flag.endswith("=") else f"{flag} {value}"


def check_shape(
    ds,
    name: str,
    max_pixels: int | None = None,
    max_side: int | None = None,
    max_aspect: float | None = None,
) -> None:
    """Raise TooLargeInputError where ``ds`` has more pixels, a longer side or a larger
    ratio of its sides than given (None: no limit)."""
    w, h = ds.width, ds.height
    size = f"{name}: the image is {w:,} x {h:,} px"
    if max_pixels is not None and w * h > max_pixels:
        raise TooLargeInputError(f"{size}, {w * h:,} pixels; the limit is {max_pixels:,}")
    if max_side is not None and max(w, h) > max_side:
        raise TooLargeInputError(f"{size}; the limit is {max_side:,} px a side")
    if max_aspect is not None and max(w, h) > max_aspect * min(w, h):
        raise TooLargeInputError(
            f"{size}, its long side {max(w, h) / min(w, h):,.0f} times its short one; the"
            f" limit is {max_aspect:g}"
        )


def valid_mask(data: np.ndarray, dataset_mask: np.ndarray) -> np.ndarray:
    """(h, w) bool: GDAL's mask says valid and every band's value is finite."""
    valid = dataset_mask > 0
    if data.dtype.kind == "f":
        valid &= np.isfinite(data).all(axis=0)
    return valid


def colour_table(ds) -> np.ndarray | None:
    """(entries, 4) uint8 RGBA by value of a one-band palette raster's colour table, with
    one transparent entry more for the values past it; None for any other raster. Applied
    by indexing it (_read_bands): rasterio has no binding of GDAL's expansion, which is a
    VRT option of gdal_translate."""
    if ds.count != 1 or ds.colorinterp[0] != ColorInterp.palette:
        return None
    try:
        table = ds.colormap(1)
    except ValueError:  # a palette interpretation without a table: read as it is
        return None
    lut = np.zeros((max(table) + 2, 4), np.uint8)  # entries not in the table: transparent
    for value, rgba in table.items():
        lut[value] = rgba
    return lut


def bands_mask(ds, bands: tuple[int, ...], **where) -> np.ndarray:
    """GDAL's dataset mask over the bands read (0: nodata), not over every band of the
    file: valid where any of ``bands`` is. A band left out that holds data made the pixels
    of the chosen bands' nodata valid, and predicted. ``where``: read_masks's window or
    out_shape."""
    chosen = sorted(set(bands))
    with warnings.catch_warnings():
        # an alpha band and a nodata value: GDAL's mask is the nodata's; rasterio's warning
        # of it reached users as a line of this file's source (a review)
        warnings.simplefilter("ignore", NodataShadowWarning)
        if len(chosen) == ds.count:
            return ds.dataset_mask(**where)
        return ds.read_masks(chosen, **where).max(axis=0)


def _read_bands(
    ds, bands: tuple[int, ...], palette: np.ndarray | None, window: Window | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``bands`` of ``ds`` (of its colours, for a ``palette`` image) in ``window`` (None:
    all) and the valid mask."""
    if palette is None:
        data = ds.read(list(bands), window=window)
        return data, valid_mask(data, bands_mask(ds, bands, window=window))
    values = ds.read(1, window=window)
    past = len(palette) - 1
    rgba = palette[np.where((values >= 0) & (values < past), values, past)]
    valid = (ds.dataset_mask(window=window) > 0) & (rgba[..., 3] > 0)
    return rgba[..., np.array(bands) - 1].transpose(2, 0, 1), valid


def display_rgb(values: np.ndarray) -> np.ndarray:
    """(bands, h, w) -> (3, h, w) for a picture: the first three bands as RGB (the order a
    model's bands start with), a single band as grey."""
    return values[:3] if values.shape[0] >= 3 else np.repeat(values[:1], 3, axis=0)


def _to_0_255(data: np.ndarray, valid: np.ndarray, scale) -> np.ndarray:
    if scale is None:
        out = data.astype(np.float32)
    else:
        # float32 holds values of up to 16 bits exactly; wider ones (32-bit, float64) are
        # stretched in float64: in float32, values of 2**24 and more round onto their
        # neighbours and float64 ones past its range become inf, and the stretch NaN
        work = np.float32 if data.dtype.itemsize <= 2 else np.float64
        # halves: the same quotient, exactly, without overflow where values span more than
        # float64 holds (1.7e308 and -1.7e308: inf / inf made every pixel NaN, a review)
        low, high = (np.divide(bound.astype(work), 2)[:, None, None] for bound in scale)
        out = np.clip((np.divide(data.astype(work), 2) - low) / (high - low) * 255, 0, 255)
        out = out.astype(np.float32, copy=False)
    out[:, ~valid] = 0
    return out


def choose_bands(
    ds,
    name: str,
    bands: tuple[int, ...] | None,
    flag: str = "--bands",
    palette: bool = False,
    models: bool = False,
) -> tuple[int, ...]:
    """``bands`` checked against the raster, or the default three; ``flag`` is how the user
    chooses bands where the error is read (``--bands`` in predict, ``bands=`` in train).
    ``palette``: ``ds`` is a palette image, read as the three bands of its colours.
    ``models``: ``bands`` are the model's, not the user's (a review: a file short of them
    was told that --bands, never given, asked for them)."""
    complex_type = next((t for t in ds.dtypes if t.startswith("complex")), None)
    if complex_type:
        raise InputError(
            f"{name}: holds complex values ({complex_type}, such as radar phase); aerialseg"
            " reads real-valued images: convert them first (e.g. their amplitude)"
        )
    if bands:
        count = 3 if palette else ds.count
        if max(bands) > count:
            listed = ",".join(map(str, bands))
            has = f"the file has {count}" + (" (the RGB of its colour table)" if palette else "")
            if models:
                raise InputError(
                    f"{name}: the model reads bands {listed}, but {has}; choose"
                    f" {len(bands)} of its bands with {flag}"
                )
            raise InputError(f"{name}: {flag} {listed} asks for band {max(bands)} but {has}")
        return bands
    if palette:
        return (1, 2, 3)
    interp = ds.colorinterp
    tagged_alpha = ds.count == 4 and interp[3] == ColorInterp.alpha
    if ds.count == 3 or (tagged_alpha and _alpha_like(ds)):
        return (1, 2, 3)
    example = _setting(flag, ",".join(map(str, band_example(ds))))
    what = (
        ", the 4th tagged alpha but holding neither transparent nor opaque values over most"
        " pixels (near-infrared?)"
        if tagged_alpha
        else ""
    )
    raise InputError(
        f"{name}: has {ds.count} band(s){what}; the model takes 3 (RGB): choose them with"
        f" {flag}, e.g. {example}"
    )


ALPHA_SAMPLE = 256  # the side of the window at a 4th band's centre that tells its kind
ALPHA_LEVELS = 16  # the most values of an alpha band with few levels (stepped, even)


def _alpha_like(ds) -> bool:
    """Whether a 4th band tagged alpha is one: in a window at its centre, transparent or
    opaque (its type's least or largest value) over most pixels, or of a few values (an
    even or stepped transparency). GDAL tags a 4-band 8-bit GeoTIFF's last band alpha
    unless told otherwise, so a B, G, R, NIR product was read as RGB without a word (a
    review); an image band holds many values between."""
    side_h, side_w = min(ALPHA_SAMPLE, ds.height), min(ALPHA_SAMPLE, ds.width)
    window = Window((ds.width - side_w) // 2, (ds.height - side_h) // 2, side_w, side_h)
    values = ds.read(4, window=window)
    if values.dtype.kind not in "ui":
        return True  # a float alpha: nothing to tell it by
    ends = (values == 0) | (values == np.iinfo(values.dtype).max)
    return bool(ends.mean() > 0.5) or len(np.unique(values)) <= ALPHA_LEVELS


def band_example(ds) -> tuple[int, int, int]:
    """Three bands to suggest where the default three do not apply: the red, green and
    blue that the file's colour interpretation names (a 4-band B, G, R, NIR GeoTIFF so
    tagged gives 3,2,1), else its one band thrice (grey, or grey and alpha), two of its
    two, or its first three."""
    interp = list(ds.colorinterp)
    rgb = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    if all(c in interp for c in rgb):
        red, green, blue = (interp.index(c) + 1 for c in rgb)
        return red, green, blue
    if ds.count == 1 or (ds.count == 2 and interp[1] == ColorInterp.alpha):
        return 1, 1, 1
    return (1, 2, 2) if ds.count == 2 else (1, 2, 3)


def _stretch(ds, bands: tuple[int, ...], whole=None) -> tuple[np.ndarray, np.ndarray]:
    """Each band's STRETCH_PERCENTILES over the valid pixels of a reduced read (at most
    STATS_SIDE a side), or over every pixel where that sample shows a band no spread: valid
    data narrower than the reduction's step (a corridor, a strip in nodata) was missed by
    it, and the whole scene read as 255 (a review). ``whole``: the decoded (data, valid)."""
    factor = max(1, max(ds.width, ds.height) // STATS_SIDE)
    shape = (max(1, ds.height // factor), max(1, ds.width // factor))
    data = ds.read(list(bands), out_shape=(len(bands), *shape)).astype(np.float64)
    lows, highs = _percentiles(data[:, valid_mask(data, bands_mask(ds, bands, out_shape=shape))])
    if factor > 1 and not (highs > lows).all():
        if whole is None:
            lows, highs = _percentiles(_valid_values(ds, bands))
        else:
            lows, highs = _percentiles(whole[0][:, whole[1]].astype(np.float64))
    # one value throughout: a span that float32 (or float64, past 2**53) still tells
    return lows, np.where(highs > lows, highs, lows + np.maximum(1.0, np.abs(lows) * 2**-20))


def _percentiles(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bands, n) values' STRETCH_PERCENTILES by band; 0 and 0 where there are none."""
    if not values.shape[1]:
        return np.zeros(len(values)), np.zeros(len(values))
    low, high = np.percentile(values, STRETCH_PERCENTILES, axis=1)
    return low, high


def _valid_values(ds, bands: tuple[int, ...]) -> np.ndarray:
    """(bands, n) float64: the valid pixels of ``ds``, read by strips of rows of about
    STATS_SIDE**2 pixels. Every step-th is kept, the step doubling whenever more than
    STATS_SIDE**2 are, so that a scene of any size is held in bounded memory."""
    rows = max(1, STATS_SIDE**2 // ds.width)
    kept, step = np.zeros((len(bands), 0)), 1
    for top in range(0, ds.height, rows):
        window = Window(0, top, ds.width, min(rows, ds.height - top))
        data = ds.read(list(bands), window=window).astype(np.float64)
        values = data[:, valid_mask(data, bands_mask(ds, bands, window=window))]
        kept = np.concatenate([kept, values[:, ::step]], axis=1)
        while kept.shape[1] > STATS_SIDE**2:
            kept, step = kept[:, ::2], step * 2
    return kept


UNIT_SLACK = 0.5  # how far past 0..1 a float array is still taken as 8-bit values / 255


def check_numbers(array: np.ndarray) -> None:
    """Refuse an array of anything but whole or real numbers (strings, bools, complex)."""
    if array.dtype.kind not in ("u", "i", "f"):
        raise InputError(
            f"an array of {array.dtype}: pass numbers (uint8 0..255, 16-bit, or float)"
        )


def read_array(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A (bands, H, W) array read as ``open_input`` reads a file of the same values:
    (bands, H, W) float32 in 0..255 and the (H, W) valid mask. A float array whose finite
    values lie in 0..1 holds 8-bit values / 255 (torchvision's ``to_tensor``), the usual
    form in notebooks: it is scaled back rather than stretched. Give or take UNIT_SLACK,
    clipped: resampling such an image (bicubic, Lanczos) overshoots 0..1 a little, and one
    pixel at 1.0001 stretched the whole image instead (a review: 18 % of pixels changed
    class); values of another range (8-bit, 16-bit, reflectance x 10,000) are far past it."""
    check_numbers(array)
    kind = array.dtype.kind
    if kind == "f":
        valid = np.isfinite(array).all(axis=0)
        finite = array[:, valid]
        if finite.size and finite.min() >= -UNIT_SLACK and finite.max() <= 1 + UNIT_SLACK:
            scaled = np.clip(array, 0, 1) * 255
            return np.where(valid, scaled, 0).astype(np.float32), valid
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array, dtype=np.float32), np.ones(array.shape[1:], bool)
    if kind == "f" and array.dtype != np.float64:
        array = array.astype(np.float32)  # float16: no GDAL type
    # Through GDAL, as a file of the same data: the same stretch, on the same reduced read.
    count, height, width = array.shape
    with rasterio.MemoryFile() as memory, no_georeference_warning():  # an array has no place
        with memory.open(
            driver="GTiff", width=width, height=height, count=count, dtype=array.dtype.name
        ) as dataset:
            dataset.write(array)
        with open_input(memory.name, bands=tuple(range(1, count + 1))) as raster:
            return raster.read(Window(0, 0, width, height))


URL_SCHEMES = ("http://", "https://", "ftp://", "s3://", "gs://", "az://", "/vsi")

# A zip entry (GDAL's /vsizip/) is checked from its sizes in the archive's directory before
# a byte of it is decompressed. JPEG, PNG and compressed TIFF barely shrink in a zip;
# uncompressed masks shrink 30 to 300 times (the Dubai masks as raw rasters), but are
# small: above 256 MiB, an entry 100 times its compressed size is a zip bomb (a 1.9 MB zip
# held a 1 GB entry). Past 4 GiB, no raster is read from a zip: extract it.
ZIP_MAX_BYTES = 4 * 2**30
ZIP_MAX_RATIO = 100
ZIP_RATIO_FROM = 256 * 2**20
# A zip entry's general-purpose flag bit 0: its data is encrypted (APPNOTE 4.4.4)
ZIP_ENCRYPTED = 0x1
ZIP_ENTRY = re.compile(r"/vsizip/\{(?P<archive>[^}]+)\}/(?P<entry>.+)")
# A server that takes the connection and never answers kept GDAL waiting for ever (its
# default has no timeout): a connection is given up after 30 s and a request after 120 s,
# unless the user's environment sets GDAL's own options (read by GDAL at each request).
os.environ.setdefault("GDAL_HTTP_CONNECTTIMEOUT", "30")
os.environ.setdefault("GDAL_HTTP_TIMEOUT", "120")


# The raster formats aerialseg reads, and no other: GDAL opens a VRT (or another format
# that names other files) whatever the file is called, so a dataset's "images/a.png" could
# put /etc/passwd, or what a URL answers, into its pixels (a review). rasterio.open takes
# one driver name; its reader takes the list that GDAL's OpenEx allows.
READ_DRIVERS = ("GTiff", "PNG", "JPEG")


@contextmanager
def no_georeference_warning() -> Iterator[None]:
    """rasterio's NotGeoreferencedWarning silenced: a photo, a plain PNG or an array has
    no georeference by design, and is read and written as pixels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


@ensure_env_with_credentials
def open_dataset(path: str | Path, driver: str | None = None) -> DatasetReader:
    """``path`` opened for reading with ``driver``, or with one of READ_DRIVERS; a local
    path that is no plain file refused first (a FIFO named a.tif blocked GDAL's open for
    ever, past Ctrl-C: a review)."""
    if not is_url(os.fspath(path)) and os.path.exists(path) and not os.path.isfile(path):
        raise InputError(f"{path}: not a file")
    allowed = [driver] if driver else list(READ_DRIVERS)
    with _gdal_warnings() as said:
        dataset = DatasetReader(_parse_path(gdal_name(path)), driver=allowed)
    try:
        # GDAL opens a TIFF whose tags it cannot read, leaving them out with a warning (a
        # review: a truncated GeoTIFF was predicted without its CRS, exit 0)
        damage = next((text for text in said if "IO error" in text), None)
        if damage is not None:
            reason = damage.rsplit(": ", 1)[-1]  # "CPLE_AppDefined in NAME: " left out
            raise UnreadableInputError(f"{path}: the file is truncated or damaged ({reason})")
        _check_layout(dataset, path)
    except InputError:
        dataset.close()
        raise
    return dataset


@contextmanager
def _gdal_warnings() -> Iterator[list[str]]:
    """The warnings GDAL gives this thread meanwhile (rasterio logs them). Hand-written:
    rasterio raises GDAL's errors but only logs its warnings."""
    said: list[str] = []
    thread = threading.get_ident()

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread and record.levelno >= logging.WARNING:
                said.append(record.getMessage())

    logger, handler = logging.getLogger("rasterio._env"), Keep()
    logger.addHandler(handler)
    try:
        yield said
    finally:
        logger.removeHandler(handler)


# No CRS places the Earth 1e10 of its units from its origin (metres span 4e7); PROJ's
# inverse projections loop for ever on coordinates of 1e20 (a review: a 16 KB GeoTIFF in
# EPSG:3857 froze the server, /healthz included, until killed).
FARTHEST_COORDINATE = 1e10
# A block (tile or strip) is decoded whole: one far larger than the image it holds is a
# damaged or hostile file (a review: a 323-byte 64 x 64 TIFF whose tiles said 40000 x
# 40000 made GDAL allocate 6 GB). Small images may have tiles larger than themselves.
BLOCK_SLACK_PIXELS = 4096 * 4096
# What one block of many bands stored together (more bytes a pixel than 16 float32 bands)
# may decode to: a 256 x 256 tile of 24,576 bands, 1.7 MB compressed, took 1.5 GB (a
# review). Blocks of fewer bands are bounded by their pixels (BLOCK_SLACK_PIXELS).
BLOCK_BYTES = 512 * 2**20
MOST_PIXEL_BYTES = 64


def _check_layout(dataset: DatasetReader, path) -> None:
    """Refuse what GDAL, PROJ or the area sums fail on far from here, from the header."""
    t = dataset.transform
    if not all(math.isfinite(v) for v in t[:6]) or t.determinant == 0:
        raise InputError(
            f"{path}: its georeference is broken (pixels {t.a:g} x {t.e:g} CRS units, the"
            f" grid turned by {t.b:g}, {t.d:g}): set it right (gdal_edit.py -a_ullr) or"
            " remove it"
        )
    corners = [t @ (x, y) for x in (0, dataset.width) for y in (0, dataset.height)]
    farthest = max(abs(v) for corner in corners for v in corner)
    if dataset.crs is not None and farthest > FARTHEST_COORDINATE:
        raise InputError(
            f"{path}: its georeference puts it {farthest:.3g} CRS units from the CRS's origin,"
            " where no CRS places the Earth: check the transform and the CRS"
        )
    room = max(4 * dataset.width * dataset.height, BLOCK_SLACK_PIXELS)
    # a pixel-interleaved block holds every band, and is decoded whole for one of them
    depth = max(_item_bytes(t) for t in dataset.dtypes)
    depth *= dataset.count if dataset.interleaving == Interleaving.pixel else 1
    for rows, cols in set(dataset.block_shapes):
        if rows * cols > room:
            raise InputError(
                f"{path}: its blocks (tiles or strips) are {cols} x {rows} px, far more than"
                f" its {dataset.width} x {dataset.height} px: a damaged file"
            )
        # a review: 1.7 MB of 24,576 bands took 1.5 GB; a large RGB image in one strip,
        # which the CLI reads as it did, is not refused (a second review)
        if depth > MOST_PIXEL_BYTES and rows * cols * depth > BLOCK_BYTES:
            raise InputError(
                f"{path}: each of its blocks decodes to {rows * cols * depth / 2**20:,.0f} MiB"
                f" ({cols} x {rows} px of {dataset.count} band(s) stored together), more than"
                f" {BLOCK_BYTES // 2**20} MiB: store its bands apart (gdal_translate -co"
                " INTERLEAVE=BAND -co TILED=YES)"
            )


def _item_bytes(dtype: str) -> int:
    try:
        return np.dtype(dtype).itemsize
    except TypeError:  # GDAL's complex integers (complex_int16), which numpy lacks
        return 8


def opening(path: str | Path):
    """The settings to open ``path`` with, once it passes ``check_zip_entry``: a URL
    without listing its folder. GDAL otherwise asks for the folder's listing to find side
    files (.aux.xml, .ovr) on every open, a request an object store answers slowly and some
    servers never (a local HTTP server kept GDAL waiting with no timeout); GDAL's advice
    for cloud rasters. Only for that open: set process-wide, it would hide a local file's
    .aux.xml (its georeference, class names)."""
    check_zip_entry(str(path))
    remote = is_url(path) and not str(path).startswith("/vsizip/")
    return rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR") if remote else nullcontext()


def check_zip_entry(path: str) -> None:
    """Refuse a ``/vsizip/{archive}/entry`` path whose entry would decompress to too much
    (ZIP_MAX_BYTES, ZIP_MAX_RATIO), from its sizes alone: nothing of it is decompressed to
    find out. Hand-written: GDAL reads an entry as far as asked, whatever its ratio."""
    found = ZIP_ENTRY.fullmatch(path)
    if found is None or not os.path.isfile(found["archive"]):
        return
    try:
        with zipfile.ZipFile(found["archive"]) as archive:
            # every entry of that name: GDAL opens the first, getinfo gives the last
            # (by normalised names: GDAL resolves "a/../b" to "b")
            entry = posixpath.normpath(found["entry"])
            infos = [i for i in archive.infolist() if posixpath.normpath(i.filename) == entry]
    except (OSError, zipfile.BadZipFile):
        return  # GDAL says what is wrong as it opens it
    if not infos:
        return
    if any(i.flag_bits & ZIP_ENCRYPTED for i in infos):  # GDAL said "damaged" (a review)
        raise InputError(
            f"{path}: the entry is encrypted, which GDAL cannot read; extract it with its password"
        )
    info = max(infos, key=lambda i: i.file_size)
    size, packed = info.file_size, info.compress_size
    if size > ZIP_MAX_BYTES or (size > ZIP_RATIO_FROM and size > ZIP_MAX_RATIO * packed):
        raise InputError(
            f"{path}: the entry would decompress to {size / 2**20:,.0f} MiB from"
            f" {packed / 2**20:,.1f} MiB, over the limits for a zip entry"
            f" ({ZIP_MAX_BYTES // 2**30} GiB, or {ZIP_MAX_RATIO} times its compressed size"
            f" above {ZIP_RATIO_FROM // 2**20} MiB): refused as a likely zip bomb; if the file"
            " is genuine, extract the archive and pass its folder"
        )


def _stalled(seconds: float) -> str:
    """What to add to GDAL's reason where the open took GDAL_HTTP_TIMEOUT or longer: a
    server that answered a few bytes and then stalled gave "Cannot read TIFF header" alone
    (a review). The timeout holds for each request, so a slow server of several requests
    may take as long: said as a possibility."""
    try:
        timeout = float(os.environ["GDAL_HTTP_TIMEOUT"])
    except (KeyError, ValueError):
        return ""
    if timeout <= 0 or seconds < 0.95 * timeout:  # curl's own clock ends it
        return ""
    return (
        f"; the read took {seconds:.0f} s, past GDAL_HTTP_TIMEOUT's {timeout:g} s for a"
        " request: the server may have stopped answering"
    )


def is_url(path: str | Path) -> bool:
    """Whether ``path`` is a URL or GDAL virtual path (``/vsis3/bucket/x.tif``) rather than
    a local file. Keep URLs as strings: ``Path`` would fold their ``//``."""
    return isinstance(path, str) and path.startswith(URL_SCHEMES)


def input_name(path: str | Path) -> PurePosixPath:
    """The file name part of a local path or a URL, for ``.name``, ``.stem``, ``.suffix``."""
    if is_url(path):
        return PurePosixPath(urlsplit(str(path)).path)
    return PurePosixPath(Path(path).as_posix())


# The end of a PNG's IEND chunk, its last: GDAL's PNG driver (3.10) reads the rows a
# truncated PNG lacks as zeros, with no error and no warning, so the file's end is checked.
PNG_END = b"IEND\xaeB`\x82"
PNG_TAIL_BYTES = 65536  # writers may append bytes after IEND; truncation loses it


def check_png_end(path: str) -> None:
    if not os.path.isfile(path):  # a /vsizip/ entry or a URL: GDAL's own checks only
        return
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - PNG_TAIL_BYTES))
        if PNG_END not in f.read():
            raise InputError(f"{path}: the file is truncated or damaged (a PNG without its end)")


# The first bytes of each kind of file aerialseg reads, and the GDAL driver of the kind
IMAGE_MAGIC = [
    (b"II*\x00", "GTiff"),  # little-endian TIFF (a COG is one)
    (b"MM\x00*", "GTiff"),
    (b"II+\x00", "GTiff"),  # BigTIFF
    (b"MM\x00+", "GTiff"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
]


def image_kind(path: str | Path) -> str | None:
    """The GDAL driver of the kind of image a local file's first bytes name, if any."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    return next((driver for magic, driver in IMAGE_MAGIC if head.startswith(magic)), None)


def open_input(
    path: str | Path,
    bands: tuple[int, ...] | None = None,
    flag: str = "--bands",
    pixel_size: float | None = None,
    max_pixels: int | None = None,
    whole_read_pixels: int | None = None,
    *,
    max_side: int | None = None,
    max_aspect: float | None = None,
    driver: str | None = None,
    pixel_flag: str | None = "--pixel-size",
    models_bands: bool = False,
) -> RasterInput:
    """Open and check an input; raises InputError with a one-line reason. ``flag``: how the
    user chooses bands, for that reason (predict's --bands, the API's bands=).
    ``pixel_size``: read it resampled to pixels of that size (at_pixel_size).
    ``max_pixels``, ``max_side`` (width or height), ``max_aspect`` (long side over short):
    refuse a larger, wider or longer raster (TooLargeInputError) from its header, before a
    pixel is decoded: a 1 MB PNG may declare 400 MP, a 125 KB TIFF 2,000,000 x 20 px.
    ``whole_read_pixels``: a raster up to this many pixels is decoded whole on opening
    (None: WHOLE_READ_PIXELS; 0: never, for training windows that each read their own
    part). ``driver``: the one GDAL driver allowed to read it (the server's uploads: the
    one their first bytes name); None: any. ``pixel_flag``: how the user sets the pixel
    size, for hints (None: it is the model's and cannot be set: the server).
    ``models_bands``: ``bands`` are the model's, not chosen with ``flag``."""
    if is_url(path):  # GDAL reads it (/vsicurl/, /vsis3/, ...); nothing to look at first
        path = str(path)
    else:
        path = Path(path)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except OSError as err:  # a loop of symbolic links, no permission, ...
            raise InputError(f"{path}: cannot open it ({err.strerror})") from None
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path}: not a file")
        if info.st_size == 0:
            raise UnreadableInputError(f"{path}: the file is empty (0 bytes)")
    started = time.monotonic()
    try:
        with no_georeference_warning(), opening(path):
            ds = open_dataset(path, driver)
    except RasterioIOError as err:
        if is_url(path):  # GDAL's reason: a 404, no answer, no range requests, ...
            reason = library_reason(err)
            if "timed out" not in reason:
                reason += _stalled(time.monotonic() - started)
            raise UnreadableInputError(f"{path}: cannot read it ({reason})") from None
        kind = image_kind(path)
        if kind is not None and kind == (driver or kind):  # a review: a cut TIFF was "not an image"
            raise UnreadableInputError(
                f"{path}: the file is truncated or damaged ({library_reason(err)})"
            ) from None
        raise UnreadableInputError(
            f"{path}: not an image aerialseg can read (JPEG, PNG, TIFF, GeoTIFF; convert"
            " another raster format, a VRT too, with gdal_translate -of COG)"
        ) from None
    file = ds
    try:
        if file.driver == "PNG":
            check_png_end(str(path))
        palette = colour_table(file)
        if pixel_size and max_pixels is not None:
            # resampling reads every pixel of the file: bounded too, not only what it gives
            # (a review: 10^10 px of sparse tiles could shrink to a legal size, read for
            # minutes)
            most = max_pixels * MAX_DOWNSAMPLED_AREA
            if file.width * file.height > most:
                raise TooLargeInputError(
                    f"{path}: the image is {file.width:,} x {file.height:,} px, read whole to"
                    f" be resampled to the model's pixel size; the limit is {most:,} pixels"
                )
        if pixel_size:
            # a palette's values are colour numbers: never averaged, like a class mask's
            ds = at_pixel_size(
                file, pixel_size, str(path), labels=palette is not None, flag=pixel_flag
            )
        check_shape(ds, str(path), max_pixels, max_side, max_aspect)
        chosen = choose_bands(ds, str(path), bands, flag, palette is not None, models_bands)
        whole = None
        if ds.width * ds.height <= (
            WHOLE_READ_PIXELS if whole_read_pixels is None else whole_read_pixels
        ):
            whole = _read_bands(ds, chosen, palette)  # a truncated file fails here
        else:
            # Read a corner block and the last one: a truncated file fails here, not mid-run.
            w, h = min(ds.width, 256), min(ds.height, 256)
            for left, top in ((0, 0), (ds.width - w, ds.height - h)):
                ds.read(1, window=Window(left, top, w, h))
        # a palette's colours are 8-bit whatever its values' type
        dtype = np.dtype("uint8" if palette is not None else ds.dtypes[chosen[0] - 1])
        scale = None if dtype == np.uint8 else _stretch(ds, chosen, whole)
    except InputError:
        ds.close()
        file.close()
        raise
    except RasterioIOError as err:
        ds.close()
        file.close()
        raise InputError(
            f"{path}: the file is truncated or damaged ({library_reason(err)})"
        ) from None
    return RasterInput(path, ds, chosen, scale, whole, None if ds is file else file, palette)
