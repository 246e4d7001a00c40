"""An upload is read as what it claims to be, and nothing else.

GDAL opens whatever it recognises: a VRT or GDAL_WMS XML file names other files and URLs,
and an ENVI, AAIGrid or XYZ text file is a raster too. So an upload is first identified
by its magic bytes as TIFF (BigTIFF too), PNG or JPEG, and then opened with that one GDAL
driver only; anything else is refused (415) before GDAL sees it. None of these formats
can name another file, and the upload lies alone in a folder of its own, so GDAL has no
side file (``.aux.xml``, ``.ovr``) to find next to it either.

The server takes no URLs, so GDAL's network access is off while it reads (``NETWORK_OFF``),
whatever an upload holds: ``/vsicurl/`` and the other network file systems open nothing,
and PROJ fetches no grid.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from aerialseg.data.raster import InputError, TooLargeInputError, UnreadableInputError

MAGIC = [
    (b"II*\x00", "GTiff"),  # little-endian TIFF (a COG is one)
    (b"MM\x00*", "GTiff"),
    (b"II+\x00", "GTiff"),  # BigTIFF
    (b"MM\x00+", "GTiff"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
]
NOT_AN_IMAGE = "not an image aerialseg can read (JPEG, PNG, TIFF, GeoTIFF)"
NETWORK_OFF = {
    # /vsicurl/ and the handlers built on it (/vsis3/, /vsigs/, ...) open this name only
    "CPL_VSIL_CURL_ALLOWED_FILENAME": "/aerialseg-network-is-off",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no listing of, or looking for, siblings
    "PROJ_NETWORK": "OFF",
}


def upload_driver(path: Path) -> str:
    """The one GDAL driver the upload's first bytes name; UnreadableInputError otherwise."""
    with path.open("rb") as f:
        head = f.read(16)
    if not head:
        raise UnreadableInputError("upload: the file is empty (0 bytes)")
    for magic, driver in MAGIC:
        if head.startswith(magic):
            return driver
    raise UnreadableInputError(f"upload: {NOT_AN_IMAGE}")


def check_shape(
    path: Path, driver: str, max_side: int | None, max_aspect: float | None
) -> tuple[int, int]:
    """(width, height) from the header, refused (TooLargeInputError) when a side is
    longer than ``max_side`` or the image more elongated than ``max_aspect`` : 1. A 125 KB
    TIFF may declare 2,000,000 x 20 pixels: within a pixel limit, but no PNG holds it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path, driver=driver) as ds:
                width, height = ds.width, ds.height
    except RasterioIOError:
        raise InputError(f"upload: a damaged {driver} file") from None
    size = f"the image is {width:,} x {height:,} pixels"
    if max_side is not None and max(width, height) > max_side:
        raise TooLargeInputError(f"{size}; the longest side allowed is {max_side:,}")
    if max_aspect is not None and max(width, height) > max_aspect * min(width, height):
        raise TooLargeInputError(f"{size}; sides may differ by a factor of {max_aspect:g} at most")
    return width, height
