"""Find image/mask pairs in a dataset as users get it: the Kaggle zip or its folder.

Layout (the Kaggle "Semantic segmentation of aerial imagery" one, also fine for own data)::

    ROOT/[GROUP/]images/NAME.jpg|png|tif   and   ROOT/[GROUP/]masks/NAME.png|tif

TIFF and GeoTIFF images are read with rasterio, their bands chosen and 16-bit or float
values stretched to 8 bits as ``aerialseg predict`` does it, and their nodata pixels left
out of training. Masks are colour-coded (RGB, or a palette PNG like the Dubai ones) or
single-band rasters of class values (GeoTIFF label rasters, the class rasters predict
writes); ``aerialseg.data.classes`` maps either to class ids.

ROOT may sit one or two folders below the path the user gives (the zip wraps it in
``Semantic segmentation dataset/``). Pair ids are image paths relative to ROOT, the form
``../shared/benchmark/split.json`` uses.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import rasterio
from PIL import Image, UnidentifiedImageError
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from aerialseg.data.raster import InputError, at_pixel_size, read_bands
from aerialseg.errors import DatasetError, library_reason

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
RASTER_SUFFIXES = (".tif", ".tiff")  # read with rasterio: any band count, type, compression
MASK_SUFFIXES = (".png", ".tif", ".tiff")
LAYOUT_HINT = (
    "expected folders named images/ and masks/ (optionally inside one folder per tile),"
    " as in the Kaggle 'Semantic segmentation of aerial imagery' archive.zip"
)


@dataclass(frozen=True)
class FileHeader:
    size: tuple[int, int]  # (width, height)
    # how the pixels are stored: PIL's mode ("RGB", "P" for palette, "L"), or bands and
    # type for a TIFF ("1x uint16")
    mode: str
    grid: tuple | None  # (CRS, transform) of a georeferenced raster

    def describe_grid(self) -> str | None:
        """CRS and pixel size, e.g. "EPSG:32640, 0.5 x 0.5"; None without a georeference."""
        if self.grid is None:
            return None
        crs, transform = self.grid
        return f"{crs.to_string()}, {abs(transform.a):g} x {abs(transform.e):g}"


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


class DatasetSource:
    """Reads files of one dataset from a folder or a zip archive."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise DatasetError(f"{self.path}: no such file or folder")
        if self.path.is_file():
            if not zipfile.is_zipfile(self.path):
                raise DatasetError(
                    f"{self.path}: not a zip archive nor a folder; pass the dataset's"
                    " archive.zip or the folder it extracts to"
                )
            with zipfile.ZipFile(self.path) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
            self._files = names
        else:
            self._files = [
                p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()
            ]
        self.root = self._find_root()
        self.pairs = self._find_pairs()

    @property
    def is_zip(self) -> bool:
        return self.path.is_file()

    def _find_root(self) -> str:
        """The shallowest folder whose children (or itself) hold images/ and masks/."""
        candidates = set()
        for name in self._files:
            parts = PurePosixPath(name).parts
            if len(parts) >= 2 and parts[-2] == "images":
                group = PurePosixPath(*parts[:-2])
                # root is the group itself (flat) or the group's parent (tiled)
                candidates.add(str(group.parent) if group.parts else ".")
                candidates.add(str(group) if group.parts else ".")
        roots = sorted(
            (c for c in candidates if self._has_pairs_below(c)),
            key=lambda c: len(PurePosixPath(c).parts) if c != "." else 0,
        )
        if not roots:
            raise DatasetError(
                f"{self.path}: no images/ folder with a masks/ beside it; {LAYOUT_HINT}"
            )
        return roots[0]

    def _has_pairs_below(self, root: str) -> bool:
        prefix = "" if root == "." else root + "/"
        rel = [n[len(prefix) :] for n in self._files if n.startswith(prefix)]
        return any(PurePosixPath(r).parts[-2:-1] == ("masks",) for r in rel) and any(
            PurePosixPath(r).parts[-2:-1] == ("images",) for r in rel
        )

    def _relative_files(self) -> list[str]:
        prefix = "" if self.root == "." else self.root + "/"
        return sorted(n[len(prefix) :] for n in self._files if n.startswith(prefix))

    def _find_pairs(self) -> list[Pair]:
        files = self._relative_files()
        masks_by_key = {}
        for rel in files:
            p = PurePosixPath(rel)
            if p.parent.name == "masks" and p.suffix.lower() in MASK_SUFFIXES:
                masks_by_key[(str(p.parent.parent), p.stem)] = rel
        pairs = []
        for rel in files:
            p = PurePosixPath(rel)
            if p.parent.name != "images" or p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            mask = masks_by_key.get((str(p.parent.parent), p.stem))
            if mask is None:
                expected = p.parent.parent / "masks" / (p.stem + ".png")
                raise DatasetError(
                    f"{rel}: image has no mask (expected {expected});"
                    " add the mask or remove the image"
                )
            pairs.append(Pair(id=rel, mask=mask))
        if not pairs:
            raise DatasetError(f"{self.path}: the dataset is empty, no images found; {LAYOUT_HINT}")
        return pairs

    def _open(self, rel: str) -> Image.Image:
        full = rel if self.root == "." else f"{self.root}/{rel}"
        try:
            if self.is_zip:
                with zipfile.ZipFile(self.path) as archive:
                    data = archive.read(full)
                return Image.open(io.BytesIO(data))
            return Image.open(self.path / full)
        except (UnidentifiedImageError, OSError, zipfile.BadZipFile) as err:
            raise DatasetError(
                f"{rel}: cannot read the file ({err.__class__.__name__}: {err}); it is damaged or"
                " not an image: replace it or remove it from the dataset"
            ) from None

    def _load(self, rel: str, mode: str | None, image: Image.Image | None = None) -> np.ndarray:
        """Decode ``rel`` (or ``image``, the file already opened by ``_open``) in ``mode``."""
        image = image or self._open(rel)
        try:
            image.load()
            if mode is not None and image.mode != mode:
                image = image.convert(mode)
            return np.array(image)  # a writable copy, so torch can take it as is
        except OSError as err:
            raise DatasetError(
                f"{rel}: the file is truncated or damaged ({err}); replace it or remove it from"
                " the dataset"
            ) from None

    @contextmanager
    def _raster(
        self, rel: str, pixel_size: float | None = None, labels: bool = False
    ) -> Iterator[rasterio.io.DatasetReader]:
        """The raster ``rel``, resampled to ``pixel_size`` if given (at_pixel_size)."""
        with self._file_raster(rel) as dataset:
            if not pixel_size:
                yield dataset
                return
            try:
                resampled = at_pixel_size(dataset, pixel_size, rel, labels, "pixel_size=")
            except InputError as err:
                raise DatasetError(str(err)) from None
            try:
                yield resampled
            finally:
                if resampled is not dataset:
                    resampled.close()

    @contextmanager
    def _file_raster(self, rel: str) -> Iterator[rasterio.io.DatasetReader]:
        full = rel if self.root == "." else f"{self.root}/{rel}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                if self.is_zip:
                    with zipfile.ZipFile(self.path) as archive:
                        data = archive.read(full)
                    with rasterio.MemoryFile(data) as memory, memory.open() as dataset:
                        yield dataset
                else:
                    with rasterio.open(self.path / full) as dataset:
                        yield dataset
        except (RasterioIOError, zipfile.BadZipFile) as err:
            raise DatasetError(
                f"{rel}: cannot read the file ({library_reason(err)}); it is damaged or not an"
                " image: replace it or remove it from the dataset"
            ) from None

    def read_image(
        self,
        pair: Pair,
        bands: tuple[int, ...] | None = None,
        flag: str = "bands=",
        pixel_size: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W, bands) uint8, RGB unless ``bands`` (1-based) picks others, and the (H, W)
        valid-pixel mask of a raster that has nodata (None: every pixel is valid). ``flag``
        is how the user sets bands, for errors (``bands=`` in a training config).
        ``pixel_size``: resampled to pixels of that size (georeferenced rasters only)."""
        # PIL decodes 8-bit RGB fastest; rasterio does the rest as predict does, the alpha
        # band of an RGBA PNG included (it marks nodata)
        plain = PurePosixPath(pair.id).suffix.lower() not in RASTER_SUFFIXES
        if bands is None and pixel_size is None and plain:
            image = self._open(pair.id)
            if image.mode != "RGBA":
                return self._load(pair.id, "RGB", image), None
        with self._raster(pair.id, pixel_size) as dataset:
            try:
                values, valid = read_bands(dataset, pair.id, bands, flag)
            except InputError as err:
                raise DatasetError(str(err)) from None
        return values, None if valid.all() else valid

    def read_mask(
        self, pair: Pair, palette_as_values: bool = False, pixel_size: float | None = None
    ) -> np.ndarray:
        """(H, W, 3) uint8 colours of a colour-coded mask (RGB, or a palette PNG or TIFF), or
        the (H, W) values of a single-band one, a masked array where the raster declares
        nodata. A palette file holds values too (the class rasters predict writes):
        ``palette_as_values`` reads those instead of their colours. ``pixel_size``:
        resampled to pixels of that size (GeoTIFF masks only), labels kept whole."""
        if PurePosixPath(pair.mask).suffix.lower() in RASTER_SUFFIXES:
            with self._raster(pair.mask, pixel_size, labels=True) as dataset:
                palette = dataset.colorinterp[0] == ColorInterp.palette
                if dataset.count == 1 and palette and not palette_as_values:
                    colours = np.zeros((256, 3), np.uint8)
                    for index, rgba in dataset.colormap(1).items():
                        colours[index] = rgba[:3]
                    return colours[dataset.read(1)]
                if dataset.count == 1:
                    return dataset.read(1, masked=dataset.nodata is not None)
                if dataset.count < 3:
                    raise DatasetError(
                        f"{pair.mask}: a mask has one band (class values) or three (colours),"
                        f" this one {dataset.count}"
                    )
                return dataset.read([1, 2, 3]).transpose(1, 2, 0)
        if pixel_size:
            raise DatasetError(
                f"{pair.mask}: pixel_size= resamples GeoTIFF masks only; this one has no"
                " georeference"
            )
        image = self._open(pair.mask)
        mode = image.mode
        if mode in ("RGB", "RGBA") or (mode == "P" and not palette_as_values):
            return self._load(pair.mask, "RGB", image)
        if mode in ("1", "LA", "CMYK", "YCbCr", "LAB", "HSV"):
            raise DatasetError(
                f"{pair.mask}: a mask of {mode} pixels; masks are RGB colours, or one band of"
                " class values (8 or 16 bit)"
            )
        return self._load(pair.mask, None, image)

    def header(self, rel: str) -> FileHeader:
        """Size, pixel storage and georeference of a file, from its header only."""
        if PurePosixPath(rel).suffix.lower() in RASTER_SUFFIXES:
            with self._file_raster(rel) as dataset:
                grid = (dataset.crs, dataset.transform) if dataset.crs else None
                mode = f"{dataset.count}x {dataset.dtypes[0]}"
                return FileHeader((dataset.width, dataset.height), mode, grid)
        image = self._open(rel)
        return FileHeader(image.size, image.mode, None)

    def image_size(self, rel: str) -> tuple[int, int]:
        """(width, height) from the header only."""
        return self.header(rel).size

    def check_sizes(self, pairs: list[Pair] | None = None) -> None:
        """Raise on the first pair whose mask size, or georeferenced pixel grid, differs from
        its image's."""
        for pair in pairs or self.pairs:
            image, mask = self.header(pair.id), self.header(pair.mask)
            if image.size != mask.size:
                raise DatasetError(
                    f"{pair.mask}: mask is {mask.size[0]}x{mask.size[1]} but its image is"
                    f" {image.size[0]}x{image.size[1]};"
                    " masks must match their image pixel for pixel"
                )
            if image.grid and mask.grid and not _same_grid(image.grid, mask.grid):
                raise DatasetError(
                    f"{pair.mask}: mask lies on another grid than its image (CRS or pixel"
                    " origin and size differ); resample it onto the image's grid (gdalwarp"
                    " with the image's extent, resolution and CRS)"
                )


def _same_grid(a, b) -> bool:
    """Same CRS and a transform within a hundredth of a pixel."""
    (crs_a, transform_a), (crs_b, transform_b) = a, b
    return crs_a == crs_b and transform_a.almost_equals(
        transform_b, precision=0.01 * abs(transform_a.a)
    )
