"""The text of a TIFF upload's GeoTIFF keys, read from its bytes before GDAL opens it.

A GeoTIFF's CRS may name a file for PROJ to read (a datum grid, an init file), and PROJ
reads it as soon as GDAL opens the upload: what the server must refuse is decided from
the keys themselves. Hand-written, and on purpose small: only the directories' entries
and the two GeoTIFF tags are read, each bounded. tifffile loads every tag's values of
every image (a review: a 50 MB upload of repeated offset tags could take tens of GB), and
libgeotiff is not reachable from Python.
"""

from __future__ import annotations

import mmap
import re
import struct
from pathlib import Path

from aerialseg.data.raster import InputError, UnreadableInputError

GEO_KEY_DIRECTORY = 34735  # SHORTs: each key's id, the tag that holds its value, its span
GEO_ASCII_PARAMS = 34737  # the text of every text key, one after another
MOST_IMAGES = 64  # directories read (a COG has about 25)
MOST_ENTRIES = 4096  # of one directory
MOST_TEXT = 1 << 16  # bytes of GeoAsciiParams: citations and ESRI PE strings take a few kB
TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
              13: 4, 16: 8, 17: 8, 18: 8}  # fmt: skip
ASCII, SHORT = 2, 3


class _Damaged(Exception):
    """The bytes do not hold the structure they claim."""


def geokey_texts(path: Path) -> list[str]:
    """The text of each text GeoKey of each image of the TIFF at ``path``, as libgeotiff
    cuts it from GeoAsciiParams (by the span its directory gives, not at ``|``, which may
    stand inside one key); InputError for keys stored otherwise than libgeotiff reads them
    safely here (text as anything but ASCII, a second copy of a tag, too much of it)."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            return _texts(data)
        except InputError:  # a ValueError too
            raise
        except (_Damaged, struct.error, IndexError, ValueError, OverflowError):
            raise UnreadableInputError(
                "upload: the file is truncated or damaged (its TIFF directories)"
            ) from None


def _texts(data) -> list[str]:
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack_from(order + "H", data, 2)[0] == 43  # BigTIFF
    entry, count_format, offset_format = (20, "Q", "Q") if big else (12, "H", "I")
    value_bytes = 8 if big else 4
    offset = struct.unpack_from(order + offset_format, data, 8 if big else 4)[0]
    seen: set[int] = set()
    texts: list[str] = []
    while offset and offset not in seen:
        if len(seen) == MOST_IMAGES:
            raise InputError(f"upload: a TIFF of more than {MOST_IMAGES} images")
        seen.add(offset)
        entries = struct.unpack_from(order + count_format, data, offset)[0]
        if entries > MOST_ENTRIES:
            raise InputError(f"upload: a TIFF directory of {entries:,} entries")
        start = offset + struct.calcsize(count_format)
        tags: dict[int, bytes] = {}
        for number in range(entries):
            at = start + number * entry
            tag, kind = struct.unpack_from(order + "HH", data, at)
            if tag not in (GEO_KEY_DIRECTORY, GEO_ASCII_PARAMS):
                continue
            if tag in tags:
                raise InputError(f"upload: its TIFF tag {tag} is there twice")
            wanted = ASCII if tag == GEO_ASCII_PARAMS else SHORT
            if kind != wanted:  # a review: text stored as SHORTs passed unread
                raise InputError(f"upload: its TIFF tag {tag} is of type {kind}, not {wanted}")
            count = struct.unpack_from(order + offset_format, data, at + 4)[0]
            size = count * TYPE_BYTES[kind]
            if size > MOST_TEXT * 4:
                raise InputError(f"upload: its TIFF tag {tag} holds {size:,} bytes")
            where = at + 4 + struct.calcsize(offset_format)
            if size > value_bytes:
                where = struct.unpack_from(order + offset_format, data, where)[0]
            if where + size > len(data):
                raise _Damaged
            tags[tag] = bytes(data[where : where + size])
        texts += _key_texts(tags, order)
        next_at = start + entries * entry
        offset = struct.unpack_from(order + offset_format, data, next_at)[0]
    return texts


def _key_texts(tags: dict[int, bytes], order: str) -> list[str]:
    """Each text key's span of GeoAsciiParams, as its directory entry gives it."""
    text = tags.get(GEO_ASCII_PARAMS, b"")
    if len(text) > MOST_TEXT:
        raise InputError(f"upload: its GeoTIFF text keys hold {len(text):,} bytes")
    shorts = tags.get(GEO_KEY_DIRECTORY, b"")
    values = struct.unpack(f"{order}{len(shorts) // 2}H", shorts)
    keys = values[3] if len(values) >= 4 else 0
    found = []
    for number in range(min(keys, (len(values) - 4) // 4)):
        _, location, count, offset = values[4 + 4 * number : 8 + 4 * number]
        if location == GEO_ASCII_PARAMS:
            found.append(text[offset : offset + count].decode("latin-1"))
    return found


# Where a CRS names files for PROJ to read, in a text key: a PROJ parameter (+nadgrids=,
# +geoidgrids=, grids=, +init=, tinshift's file=, defmodel's model=) or a WKT node for
# grids (GDAL's PROJ4_GRIDS, WKT2's PARAMETERFILE). After one, the key may name no folder:
# what PROJ would read may be spelt in any way it parses (a review: the value unquoted, or
# in "(" for "["). PROJ reads ";" as a space, drops a "+" after a space and spaces before
# "=" (pj_shrink: a review passed "+nadgrids;=/path" and "+nadgrids +=/path").
FILE_NAMED = re.compile(r"(?:grids|init|file|model)[\s;+]*=|PROJ4_GRIDS|PARAMETERFILE", re.I)
# GDAL hands an ESRI PE string to PROJ's WKT parser whole (gt_wkt_srs.cpp); ESRI's names
# hold no folder, so one in such a key is refused wherever it stands
PE_STRING = re.compile(r"ESRI\s*PE\s*String", re.I)
NOT_IN_A_NAME = " \t\r\n\"'[](),|;="


def named_file(text: str) -> str | None:
    """The path a text key names where PROJ may read a file, or None. Linear in the text
    (a review: a backtracking pattern took seconds on 20 kB, holding the event loop)."""
    pe = PE_STRING.search(text)
    found = pe or FILE_NAMED.search(text)
    if found is None:
        return None
    after = 0 if pe else found.end()
    slashes = [i for i in (text.find("/", after), text.find("\\", after)) if i >= 0]
    if not slashes:
        return None
    left = right = min(slashes)
    while left > after and text[left - 1] not in NOT_IN_A_NAME:
        left -= 1
    while right < len(text) and text[right] not in NOT_IN_A_NAME:
        right += 1
    return text[left:right]
