"""Hostile files, built in a few bytes: what a header claims is not what the pixels hold."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from tests.helpers.geotiff import TRANSFORM, UTM40N


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, width: int = 30_000, height: int = 30_000) -> Path:
    """A grey PNG of a few hundred bytes whose header declares ``width`` x ``height`` px
    (900 MP by default: PIL's DecompressionBombError); its rows are all zero."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 16, 9)  # 16 rows; the others are missing
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")
    )
    return path


def wide_tiff(path: Path, width: int = 2_000_000, height: int = 20) -> Path:
    """An RGB TIFF of zeros, ``width`` x ``height`` px, written in parts (125 KB by default)."""
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 3}
    profile |= {"dtype": "uint8", "compress": "deflate"}
    step = 100_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a plain image, by design
        with rasterio.open(path, "w", **profile) as dst:
            for x in range(0, width, step):
                w = min(step, width - x)
                dst.write(np.zeros((3, height, w), np.uint8), window=Window(x, 0, w, height))
    return path


def complex_geotiff(path: Path, dtype: str = "complex64") -> Path:
    """A 3-band GeoTIFF of complex values (radar data is stored so)."""
    profile = {"driver": "GTiff", "width": 16, "height": 16, "count": 3, "dtype": dtype}
    profile |= {"crs": UTM40N, "transform": TRANSFORM}
    with rasterio.open(path, "w", **profile) as dst:
        if dtype == "complex64":
            dst.write(np.ones((3, 16, 16), np.complex64))
    return path


def vrt_of(target: Path, bands: int = 3, side: int = 64) -> str:
    """A GDAL VRT whose pixels are ``target``'s: saved under an image's name (``a.png``),
    what GDAL would read through it is a file the dataset never held."""
    sources = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{target}</SourceFilename>'
        f"<SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>"
        for b in range(1, bands + 1)
    )
    return f'<VRTDataset rasterXSize="{side}" rasterYSize="{side}">{sources}</VRTDataset>'


def _entry_of(data: bytearray, tag: int) -> tuple[int, int]:
    """Where ``tag``'s entry of the first IFD of a little-endian classic TIFF starts, and
    its TIFF type."""
    assert data[:4] == b"II*\x00", "a little-endian classic TIFF"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (entries,) = struct.unpack_from("<H", data, ifd)
    for k in range(entries):
        at = ifd + 2 + 12 * k
        found, kind = struct.unpack_from("<HH", data, at)
        if found == tag:
            return at, kind
    raise KeyError(tag)


def tiff_tag_patched(path: Path, tag: int, value: int) -> Path:
    """``path`` (a little-endian classic TIFF) with the inline value of ``tag`` in its first
    IFD set to ``value``: a header that claims what its data does not hold."""
    data = bytearray(path.read_bytes())
    at, kind = _entry_of(data, tag)
    struct.pack_into("<H" if kind == 3 else "<I", data, at + 8, value)
    path.write_bytes(bytes(data))
    return path


def tiff_tag_retyped(path: Path, tag: int, kind: int, count: int) -> Path:
    """``path`` (a little-endian classic TIFF) with ``tag`` of its first IFD said to be of
    TIFF type ``kind`` and ``count`` values, its bytes where they were: text read as SHORTs."""
    data = bytearray(path.read_bytes())
    at, _ = _entry_of(data, tag)
    struct.pack_into("<HI", data, at + 2, kind, count)
    path.write_bytes(bytes(data))
    return path


def tile_damaged(path: Path, row: int, col: int) -> Path:
    """``path`` (a tiled, compressed GeoTIFF) with tile (``row``, ``col``)'s bytes turned to
    noise: its header and every other tile read."""
    with rasterio.open(path) as src:
        offset = int(src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1))
        size = int(src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1))
    data = bytearray(path.read_bytes())
    data[offset : offset + size] = np.random.default_rng(0).bytes(size)
    path.write_bytes(bytes(data))
    return path
