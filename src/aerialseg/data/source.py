"""Find image/mask pairs in a dataset as users get it: the Kaggle zip or its folder, a
folder of another common layout, or a manifest (``aerialseg.data.layouts``), e.g.::

    ROOT/[GROUP/]images/NAME.jpg|png|tif   and   ROOT/[GROUP/]masks/NAME.png|tif

PNG and JPEG pairs are read here, with PIL (the decoder the Dubai set was measured with),
or GDAL where bands are chosen or an RGBA image's alpha marks nodata. Masks are
colour-coded (RGB, or a palette PNG like the Dubai ones) or single-band PNGs of class
values; ``aerialseg.data.classes`` maps either to class ids. A pair with a TIFF file is a
raster scene, read by windows (``data/scenes.py``, ``data/labels.py``).

ROOT may sit one or two folders below the path the user gives (the zip wraps it in
``Semantic segmentation dataset/``); a manifest's ROOT is its folder. Pair ids are image
paths relative to ROOT, the form ``../shared/benchmark/split.json`` uses.

A zip's entries are read in place, never whole into memory (PIL from a zipfile stream,
rasterio through GDAL's ``/vsizip/``), and one that would decompress to far more than it
holds is refused from the archive's directory before it is read (``ZIP_MAX_RATIO``).
"""

from __future__ import annotations

import shlex
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError
from rasterio.windows import Window

from aerialseg.data.layouts import LAYOUT_HINT, find_in_folders, is_manifest, read_manifest
from aerialseg.data.raster import InputError, open_input
from aerialseg.errors import DatasetError, library_reason

# a pair with a file of these is a raster scene, read by windows (data/scenes.py)
RASTER_SUFFIXES = (".tif", ".tiff")
# Pairs are decoded whole: past PIL's own limit (179 MP) a header is a decompression bomb
# (a 500-byte PNG may declare 30,000 x 30,000 px) or a scene to cut into tiles first.
MAX_PAIR_PIXELS = 178_956_970  # PIL raises DecompressionBombError past it (2 x its default)


class OversizeImageError(DatasetError):
    """A dataset file declares more pixels than a pair may have (MAX_PAIR_PIXELS)."""


# A zip entry is checked from its sizes in the archive's directory before a byte of it is
# decompressed (Python's zipfile stops an entry at its recorded size). JPEG, PNG and
# compressed TIFF barely shrink in a zip; uncompressed masks shrink 30 to 300 times (the
# Dubai masks as raw rasters), but are small: above 256 MiB, an entry 100 times its
# compressed size is a zip bomb (a 1.9 MB zip held a 1 GB entry). Past 4 GiB, no image
# or mask of a dataset is read from a zip: extract it.
ZIP_MAX_BYTES = 4 * 2**30
ZIP_MAX_RATIO = 100
ZIP_RATIO_FROM = 256 * 2**20
# how a damaged entry fails as it is read (CRC, deflate stream, end of data)
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError)


@dataclass(frozen=True)
class FileHeader:
    size: tuple[int, int]  # (width, height)
    mode: str  # how the pixels are stored: PIL's mode ("RGB", "P" for palette, "L")


@dataclass(frozen=True)
class Pair:
    id: str  # image path relative to the dataset root, e.g. "Tile 1/images/image_part_002.jpg"
    mask: str  # mask path relative to the dataset root

    @property
    def group(self) -> str:
        """The tile (folder above images/), or "" for a flat dataset."""
        return str(PurePosixPath(self.id).parent.parent)

    @property
    def stem(self) -> str:
        return PurePosixPath(self.id).stem


# PIL modes of one band of class values (8, 16 or 32 bit); "P" when read as values
VALUE_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L")


class DatasetSource:
    """Reads files of one dataset from a folder, a zip archive or a manifest's folder.

    ``strict``: an image without its mask is an error (training, scoring); without it,
    such images are left out and listed in ``unpaired`` (``data inspect`` reports them)."""

    def __init__(self, path: str | Path, strict: bool = True):
        self.path = Path(path)
        if not self.path.exists():
            raise DatasetError(f"{self.path}: no such file or folder")
        self._folder = self.path  # where a folder's or a manifest's files are read from
        if self.path.is_file() and is_manifest(self.path):
            self._folder = self.path.parent
            found = read_manifest(self.path)
        elif self.path.is_file():
            if not zipfile.is_zipfile(self.path):
                raise DatasetError(
                    f"{self.path}: not a zip archive, a manifest (.csv, .yaml) nor a folder;"
                    f" pass the dataset's archive.zip or the folder it extracts to; {LAYOUT_HINT}"
                )
            with zipfile.ZipFile(self.path) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
            found = find_in_folders(names, str(self.path))
        else:
            files = [
                p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()
            ]
            found = find_in_folders(files, str(self.path))
        self.root = found.root
        self.pairs = [Pair(id=image, mask=mask) for image, mask in found.pairs]
        self.unpaired = found.unpaired  # (image, the mask expected)
        if strict and self.unpaired:
            image, expected = self.unpaired[0]
            raise DatasetError(
                f"{image}: image has no mask (expected {expected}); add the mask or remove the"
                f" image{self.inspect_hint()}"
            )
        if not self.pairs and not self.unpaired:
            raise DatasetError(f"{self.path}: the dataset is empty, no images found; {LAYOUT_HINT}")

    @property
    def is_zip(self) -> bool:
        return self.path.is_file() and not is_manifest(self.path)

    def where(self, rel: str) -> str:
        """How errors name a file: relative to the dataset root, or in a zip as
        ``archive.zip:Tile 1/images/x.jpg``."""
        return f"{self.path}:{self._full(rel)}" if self.is_zip else rel

    def _full(self, rel: str) -> str:
        return rel if self.root == "." else f"{self.root}/{rel}"

    def _zip_entry(self, archive: zipfile.ZipFile, rel: str) -> zipfile.ZipInfo:
        """The entry of ``rel``, refused from its sizes alone if it would decompress to too
        much (ZIP_MAX_BYTES, ZIP_MAX_RATIO): nothing of it is decompressed to find out."""
        info = archive.getinfo(self._full(rel))
        size, packed = info.file_size, info.compress_size
        if size > ZIP_MAX_BYTES or (size > ZIP_RATIO_FROM and size > ZIP_MAX_RATIO * packed):
            raise DatasetError(
                f"{self.where(rel)}: the entry would decompress to {size / 2**20:,.0f} MiB"
                f" from {packed / 2**20:,.1f} MiB, over the limits for a zip entry"
                f" ({ZIP_MAX_BYTES // 2**30} GiB, or {ZIP_MAX_RATIO} times its compressed size"
                f" above {ZIP_RATIO_FROM // 2**20} MiB): refused as a likely zip bomb; if the"
                " file is genuine, extract the archive and pass its folder"
            )
        return info

    @contextmanager
    def _open(self, rel: str) -> Iterator[Image.Image]:
        """The image ``rel`` opened by PIL, read from its file or zip entry as it is
        decoded (a zip entry is never held whole in memory)."""
        try:
            if self.is_zip:
                with zipfile.ZipFile(self.path) as archive:
                    entry = archive.open(self._zip_entry(archive, rel))
            else:
                entry = open(self._folder / self._full(rel), "rb")  # noqa: SIM115
        # zipfile: RuntimeError for an encrypted entry, NotImplementedError for Deflate64
        except (OSError, RuntimeError, NotImplementedError, *ZIP_ERRORS) as err:
            raise self._unreadable(rel, err) from None
        with entry:
            try:
                image = Image.open(entry)
            except Image.DecompressionBombError as err:
                raise OversizeImageError(  # PIL's line gives the pixels declared and its limit
                    f"{self.where(rel)}: {str(err).rstrip('.')}; replace it or remove it from"
                    " the dataset"
                ) from None
            except (UnidentifiedImageError, OSError, *ZIP_ERRORS) as err:
                raise self._unreadable(rel, err) from None
            with image:
                width, height = image.size
                if width * height > MAX_PAIR_PIXELS:  # PIL's own check may be turned off
                    raise OversizeImageError(
                        f"{self.where(rel)}: {width:,} x {height:,} px, more than the"
                        f" {MAX_PAIR_PIXELS:,} pixels a dataset image may have; cut it into"
                        " tiles or remove it"
                    )
                yield image

    def _unreadable(self, rel: str, err: BaseException) -> DatasetError:
        # PIL's own message names the file object (<_io.BytesIO object at 0x...>)
        reason = (
            "not an image format PIL reads"
            if isinstance(err, UnidentifiedImageError)
            else library_reason(err)
        )
        return DatasetError(
            f"{self.where(rel)}: cannot read the file ({reason}); it is damaged or not an"
            " image: replace it or remove it from the dataset"
        )

    def _load(self, rel: str, mode: str | None, image: Image.Image) -> np.ndarray:
        """Decode ``image``, the file ``rel`` opened by ``_open``, in ``mode``."""
        try:
            image.load()
            if mode is not None and image.mode != mode:
                image = image.convert(mode)
            return np.array(image)  # a writable copy, so torch can take it as is
        except (OSError, *ZIP_ERRORS) as err:
            raise DatasetError(
                f"{self.where(rel)}: the file is truncated or damaged ({library_reason(err)});"
                " replace it or remove it from the dataset"
            ) from None

    def file_path(self, rel: str) -> str | None:
        """``rel`` as a path a user can pass to another command; None in a zip."""
        return None if self.is_zip else str(self._folder / self._full(rel))

    def gdal_path(self, rel: str) -> str:
        """The path GDAL opens ``rel`` by: a file, or a zip entry read in place
        (``/vsizip/``, a window at a time) once its sizes pass the zip-bomb check."""
        if not self.is_zip:
            return str(self._folder / self._full(rel))
        try:
            with zipfile.ZipFile(self.path) as archive:
                self._zip_entry(archive, rel)
        except (OSError, *ZIP_ERRORS) as err:
            raise self._unreadable(rel, err) from None
        return f"/vsizip/{{{self.path.absolute()}}}/{self._full(rel)}"

    def read_image(
        self,
        pair: Pair,
        bands: tuple[int, ...] | None = None,
        flag: str = "bands=",
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W, bands) uint8, RGB unless ``bands`` (1-based) picks others, and the (H, W)
        valid-pixel mask of a raster that has nodata (None: every pixel is valid). ``flag``
        is how the user sets bands, for errors (``bands=`` in a training config)."""
        # PIL decodes 8-bit RGB fastest; GDAL does the rest as predict does, the alpha
        # band of an RGBA PNG included (it marks nodata)
        if bands is None:
            with self._open(pair.id) as image:
                if image.mode != "RGBA":
                    return self._load(pair.id, "RGB", image), None
        try:
            raster = open_input(self.gdal_path(pair.id), bands, flag)
        except InputError as err:
            raise DatasetError(str(err).replace(self.gdal_path(pair.id), pair.id)) from None
        try:
            values, valid = raster.read(Window(0, 0, raster.width, raster.height))
        finally:
            raster.close()
        image = np.rint(values).astype(np.uint8).transpose(1, 2, 0)
        return image, None if valid.all() else valid

    def read_mask(
        self,
        pair: Pair,
        palette_as_values: bool = False,
        size: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """(H, W, 3) uint8 colours of a colour-coded PNG mask (RGB, or palette), or the
        (H, W) values of a single-band one. A palette file holds values too (the class
        rasters predict writes): ``palette_as_values`` reads those instead of their colours.
        ``size``: a mask of another (width, height) is resampled to it, nearest."""
        with self._open(pair.mask) as image:
            if size is not None and image.size != size:
                image = self._resized(pair.mask, image, size)
            mode = image.mode
            if mode in ("RGB", "RGBA") or (mode == "P" and not palette_as_values):
                return self._load(pair.mask, "RGB", image)
            if mode not in VALUE_MODES:
                raise DatasetError(
                    f"{pair.mask}: a mask of {mode} pixels; masks are RGB colours, or one band"
                    " of class values (8 or 16 bit)"
                )
            return self._load(pair.mask, None, image)

    def _resized(self, rel: str, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        # nearest sampling keeps every pixel one of the mask's own colours or values
        try:
            return image.resize(size, Image.Resampling.NEAREST)
        except (OSError, *ZIP_ERRORS) as err:
            raise DatasetError(
                f"{self.where(rel)}: the file is truncated or damaged ({library_reason(err)});"
                " replace it or remove it from the dataset"
            ) from None

    def header(self, rel: str) -> FileHeader:
        """Size, pixel storage and georeference of a file, from its header only."""
        with self._open(rel) as image:
            return FileHeader(image.size, image.mode)

    def image_size(self, rel: str) -> tuple[int, int]:
        """(width, height) from the header only."""
        return self.header(rel).size

    def inspect_hint(self) -> str:
        """Where a user finds every problem, for errors that name only the first."""
        command = shlex.join(["aerialseg", "data", "inspect", str(self.path)])
        return f" ('{command}' lists every problem of the dataset)"

    def pair_problem(
        self, pair: Pair, resize_masks: bool = False, flag: str = "--resize-masks"
    ) -> str | None:
        """What is wrong between a pair's image and mask headers, or None: a mask of another
        size (but for a plain pair with ``resize_masks``), or on another georeferenced pixel
        grid. ``flag`` is how the user asks for resized masks, for the message."""
        image, mask = self.header(pair.id), self.header(pair.mask)
        if image.size != mask.size:
            if resize_masks:
                return None
            hint = f"; {flag} resamples such masks to their image's size (nearest)"
            return (
                f"{pair.mask}: mask is {mask.size[0]}x{mask.size[1]} but its image is"
                f" {image.size[0]}x{image.size[1]}; masks must match their image pixel for"
                f" pixel{hint}"
            )
        return None
