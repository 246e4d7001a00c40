"""Find image/mask pairs in a dataset as users get it: the Kaggle zip or its folder, a
folder of another common layout, or a manifest (``aerialseg.data.layouts``), e.g.::

    ROOT/[GROUP/]images/NAME.jpg|png|tif   and   ROOT/[GROUP/]masks/NAME.png|tif

Each pair is a scene (``data/scenes.py``): its image and mask are read with rasterio, as
predict reads its inputs; a zip's entries in place, through GDAL's ``/vsizip/``, never
whole into memory (and one that would decompress to far more than it holds is refused
from the archive's directory before it is read: ``data.raster.check_zip_entry``).

ROOT may sit one or two folders below the path the user gives (the zip wraps it in
``Semantic segmentation dataset/``); a manifest's ROOT is its folder. Pair ids are image
paths relative to ROOT, the form ``../shared/benchmark/split.json`` uses.
"""

from __future__ import annotations

import os
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from aerialseg.data.layouts import LAYOUT_HINT, find_in_folders, is_manifest, read_manifest
from aerialseg.data.raster import ZIP_ENCRYPTED
from aerialseg.errors import DatasetError
from aerialseg.options import command_line


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
    """The image/mask pairs of one dataset in a folder, a zip archive or a manifest's folder.

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
            if "}" in str(self.path.absolute()):  # GDAL's /vsizip/{archive}/entry ends at }
                raise DatasetError(
                    f"{self.path}: GDAL cannot read inside a zip archive whose path holds a"
                    " '}'; rename it or a folder above it, or extract it and pass the folder"
                )
            try:
                with zipfile.ZipFile(self.path) as archive:
                    entries = [i for i in archive.infolist() if not i.filename.endswith("/")]
            except (zipfile.BadZipFile, OSError) as err:
                raise DatasetError(f"{self.path}: a damaged zip archive ({err})") from None
            names = [i.filename for i in entries]
            # GDAL reads no encrypted entry, and said "damaged" of each (a review)
            locked = next((i.filename for i in entries if i.flag_bits & ZIP_ENCRYPTED), None)
            if locked is not None:
                raise DatasetError(
                    f"{self.path}: its entry {locked[:200]!r} is encrypted, which GDAL cannot"
                    " read; extract the archive with its password and pass the folder"
                )
            # GDAL's /vsizip/ resolves "..": "y/../z/masks/a.tif" would open another entry
            # than the one whose sizes were checked, or alias it under a second id
            stepping = next((n for n in names if {".", ".."} & set(n.split("/"))), None)
            if stepping is not None:
                raise DatasetError(
                    f"{self.path}: its entry {stepping[:200]!r} steps through '.' or '..',"
                    " out of its folder or back in: refused, as such an archive could read or,"
                    " extracted, write where it should not; ask its maker for a clean one"
                )
            # GDAL's /vsizip/ reads "\\" as "/": "masks\\a.tif" would be read, unchecked, in
            # place of "masks/a.tif" (a review: a zip bomb so named passed)
            slanted = next((n for n in names if "\\" in n), None)
            if slanted is not None:
                raise DatasetError(
                    f"{self.path}: its entry {slanted[:200]!r} holds a backslash, which GDAL"
                    " reads as a folder separator: refused, as another entry could be read in"
                    " place of the one checked; zip the folder again (entries with '/')"
                )
            twice = next((n for n, k in Counter(names).items() if k > 1), None)
            if twice is not None:  # GDAL reads the first copy, zip tools the last
                raise DatasetError(
                    f"{self.path}: holds {twice} twice (an archive added to); extract it and"
                    " pass the folder, or zip the folder again"
                )
            found = find_in_folders(names, str(self.path))
        else:
            found = find_in_folders(_files_below(self.path), str(self.path))
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

    def gdal_path(self, rel: str) -> str:
        """The path GDAL opens ``rel`` by: a file, or a zip entry read in place
        (``/vsizip/``, a window at a time). predict takes it too, so it is also the path a
        printed command names (a review: evaluate printed none for the Dubai zip)."""
        if not self.is_zip:
            return str(self._folder / self._full(rel))
        return f"/vsizip/{{{self.path.absolute()}}}/{self._full(rel)}"

    def inspect_hint(self) -> str:
        """Where a user finds every problem, for errors that name only the first."""
        command = command_line(["aerialseg", "data", "inspect", self.path])
        return f" (run {command} to list every problem of the dataset)"


def _files_below(folder: Path) -> list[str]:
    """Every file below ``folder``, as POSIX paths relative to it, following links to
    folders (a tile folder linked in from elsewhere: Path.rglob left it out without a word,
    a review), each real folder once, so that a loop of links ends."""
    found, seen = [], set()
    for top, folders, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        at = Path(top)
        found += [(at / f).relative_to(folder).as_posix() for f in files if (at / f).is_file()]
    return found
