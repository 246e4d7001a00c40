"""An upload is received straight to disk, and read as what it claims to be, nothing else.

``receive_upload`` streams the ``file`` field of the multipart body into the upload's
file as it arrives, counted: one copy on disk, never more than the limit (FastAPI's own
form parsing would spool it to a temporary file first, and hold both while the request
waits for a worker).

GDAL opens whatever it recognises: a VRT or GDAL_WMS XML file names other files and URLs,
and an ENVI, AAIGrid or XYZ text file is a raster too. So an upload is first identified
by its magic bytes as TIFF (BigTIFF too), PNG or JPEG, and then opened with that one GDAL
driver only; anything else is refused (415) before GDAL sees it. None of these formats
can name another file, and the upload lies alone in a folder of its own, so GDAL has no
side file (``.aux.xml``, ``.ovr``) to find next to it either.

The server takes no URLs, so GDAL's network access is off while it reads (``NETWORK_OFF``),
whatever an upload holds: ``/vsicurl/`` and the other network file systems open nothing,
and PROJ fetches no grid. Nor does PROJ open a local one: an upload whose GeoTIFF keys
name a grid or init file by its path (``+nadgrids=/etc/passwd``, in any spelling PROJ
reads) is refused before GDAL opens it (``check_crs_reads_no_file``).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from fastapi import HTTPException, Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from aerialseg.api.geokeys import geokey_texts, named_file
from aerialseg.api.guard import mib
from aerialseg.data.raster import InputError, UnreadableInputError, image_kind
from aerialseg.errors import printable

SUFFIXES = {"GTiff": ".tif", "PNG": ".png", "JPEG": ".jpg"}  # a file of each driver's kind
NOT_AN_IMAGE = "not an image aerialseg can read (JPEG, PNG, TIFF, GeoTIFF)"
NETWORK_OFF = {
    # /vsicurl/ and the handlers built on it (/vsis3/, /vsigs/, ...) open this name only
    "CPL_VSIL_CURL_ALLOWED_FILENAME": "/aerialseg-network-is-off",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no listing of, or looking for, siblings
    "PROJ_NETWORK": "OFF",
}

FIELD = b"file"
# The body receive_upload reads, for the OpenAPI schema (FastAPI does not parse it).
UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "JPEG, PNG, TIFF or GeoTIFF",
                    }
                },
                "required": ["file"],
            }
        }
    },
}


class _FileField:
    """python-multipart callbacks that keep the bytes of the ``file`` field; ``again``: the
    body has a second one (which of two images would be predicted is not for us to guess)."""

    def __init__(self) -> None:
        self.header, self.value, self.disposition = b"", b"", b""
        self.inside, self.done, self.again = False, False, False
        self.pending: list[bytes] = []
        self.filename: bytes | None = None  # the client's name of the file, if it gave one

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.begin,
            "on_header_field": lambda data, start, end: self._add("header", data[start:end]),
            "on_header_value": lambda data, start, end: self._add("value", data[start:end]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.data,
            "on_part_end": self.end,
        }

    def _add(self, name: str, data: bytes) -> None:
        setattr(self, name, getattr(self, name) + data)

    def begin(self) -> None:
        self.disposition = b""

    def header_end(self) -> None:
        if self.header.lower() == b"content-disposition":
            self.disposition = self.value
        self.header, self.value = b"", b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        named = options.get(b"name") == FIELD
        self.again |= named and self.done
        self.inside = named and not self.done
        if self.inside:
            self.filename = options.get(b"filename")

    def data(self, data: bytes, start: int, end: int) -> None:
        if self.inside:
            self.pending.append(data[start:end])

    def end(self) -> None:
        self.done |= self.inside
        self.inside = False


async def receive_upload(request: Request, dest: Path, limit: int) -> str:
    """Write the body's ``file`` field to ``dest`` as it arrives; 413 past ``limit``
    bytes, 422 for a body that is not multipart/form-data with that field, or an empty one.
    Returns the stem to name the answer's files by (``download_stem``)."""
    kind, params = parse_options_header(request.headers.get("content-type"))
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise HTTPException(422, "send the image as multipart/form-data, in a field named file")
    field = _FileField()
    size = 0
    try:  # the parser refuses a boundary of over 256 characters (RFC 2046 allows 70)
        parser = MultipartParser(params[b"boundary"], field.callbacks())  # type: ignore[arg-type]
        with dest.open("wb") as out:
            async for chunk in request.stream():
                parser.write(chunk)
                if field.again:
                    raise HTTPException(
                        422,
                        "send one image a request: the body has a second field named file",
                        headers={"connection": "close"},
                    )
                for data in field.pending:
                    size += len(data)
                    if size > limit:  # and close: the rest of the body is not read
                        raise HTTPException(
                            413,
                            f"upload larger than the limit of {mib(limit)} MiB",
                            headers={"connection": "close"},
                        )
                    out.write(data)
                field.pending.clear()
            parser.finalize()
    except ClientDisconnect:  # the client left, or the guard cut the body: no one to tell
        raise HTTPException(400, "the upload was cut short") from None
    except FormParserError:
        raise HTTPException(
            422, "the body is not valid multipart/form-data", headers={"connection": "close"}
        ) from None
    if not field.done:
        raise HTTPException(422, "no complete field named file in the body")
    if size == 0:  # a request that names no file, or an empty one: nothing to identify
        raise HTTPException(422, "the field named file is empty (0 bytes): choose an image")
    return download_stem(field.filename)


STEM_BYTES = 120  # leaves room for "_classes.tif.aux.xml" within a name's 255 bytes


def download_stem(filename: bytes | None) -> str:
    """The stem of the client's file name, safe to name files by: its last path part
    without the suffix, letters, digits, ``.``, ``-`` and ``_`` only, STEM_BYTES bytes
    of UTF-8 at most; ``upload`` where nothing is left (a review: the zipped mask of
    every upload held upload_classes.png, so two unzipped into one folder overwrote each
    other)."""
    text = unicodedata.normalize("NFC", (filename or b"").decode("utf-8", "replace"))
    name = text.replace("\\", "/").rsplit("/", 1)[-1]  # macOS sends accents decomposed
    stem = re.sub(r"[^\w.-]+", "_", name.rsplit(".", 1)[0] if "." in name[1:] else name)
    # bytes, not characters: a file name takes 255 bytes, and 80 CJK characters are 240
    short = stem.strip("._").encode()[:STEM_BYTES].decode("utf-8", "ignore")
    return short.strip("._") or "upload"


def check_crs_reads_no_file(path: Path) -> None:
    """InputError (422) where a TIFF upload's GeoTIFF keys name a file by its path where
    a CRS names files: PROJ would open it on the server (a review: a GeoTIFF naming
    +nadgrids=/etc/passwd had it opened, and one naming a FIFO froze every request). Read
    from the upload's bytes (geokeys.py), before GDAL opens it: its opening already makes
    PROJ read the grids its CRS names. Grids named without a folder are PROJ's own data
    (EPSG:3857's @null). Neither GDAL nor PROJ has a switch that keeps PROJ to its own
    data folder."""
    if image_kind(path) != "GTiff":  # JPEG and PNG hold no CRS GDAL reads
        return
    for text in geokey_texts(path):
        named = named_file(text)
        if named is not None:
            raise InputError(
                f"upload: its CRS names a file for PROJ to read ({printable(named[:200])}); the"
                " server reads nothing but the upload: give the image its CRS by EPSG code"
                " (gdal_edit.py -a_srs EPSG:NNNN)"
            )


def upload_driver(path: Path) -> str:
    """The one GDAL driver the upload's first bytes name; UnreadableInputError otherwise."""
    driver = image_kind(path)
    if driver is None:
        raise UnreadableInputError(f"upload: {NOT_AN_IMAGE}")
    return driver
