"""Where a dataset keeps its images and labels: folder-name pairs, or a manifest file.

Folder layouts: an image folder and its label folder side by side, optionally inside one
folder per tile (``ROOT/[GROUP/]images/NAME.jpg`` with ``ROOT/[GROUP/]masks/NAME.png``).
The names are those public datasets use (``LAYOUTS``); an image's label is the file of
the same stem in the label folder beside it.

A manifest (CSV with the header ``image,label``, or a YAML list of ``{image: ...,
label: ...}``) names the pairs one by one, with paths relative to its own folder.
"""

from __future__ import annotations

import csv
import os
import posixpath
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from aerialseg.errors import DatasetError, parse_reason
from aerialseg.files import read_bounded
from aerialseg.yamltext import load_yaml

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
MASK_SUFFIXES = (".png", ".tif", ".tiff")
MANIFEST_SUFFIXES = (".csv", ".yaml", ".yml")


@dataclass(frozen=True)
class Layout:
    images: str  # the image folder's name
    masks: str  # the label folder's name, beside it


# The Kaggle archive's names first: a folder that holds several layouts reads as this one.
LAYOUTS = (
    Layout("images", "masks"),
    Layout("image", "mask"),
    Layout("images", "labels"),
    Layout("img", "gt"),
)
LAYOUT_HINT = (
    "expected an image folder with its label folder beside it, named "
    + ", ".join(f"{layout.images}/ + {layout.masks}/" for layout in LAYOUTS)
    + " (optionally inside one folder per tile, as in the Kaggle 'Semantic segmentation of"
    " aerial imagery' archive.zip), or a manifest file: CSV with the header 'image,label' or"
    " YAML, a list of {image: ..., label: ...}, paths relative to its folder"
)


@dataclass(frozen=True)
class Found:
    """The pairs of a dataset: image and mask paths relative to ``root``, and the images
    whose mask is missing (with the mask path expected)."""

    root: str  # "." or a folder path, relative to what the user gave
    pairs: list[tuple[str, str]]
    unpaired: list[tuple[str, str]]


def _depth(root: str) -> int:
    return 0 if root == "." else len(PurePosixPath(root).parts)


def _candidates(files: list[str], layout: Layout) -> set[str]:
    """Folders that may be the root of ``layout``: the one above an image folder (flat) or
    the one above that (a folder per tile)."""
    found = set()
    for name in files:
        parts = PurePosixPath(name).parts
        if len(parts) >= 2 and parts[-2] == layout.images:
            group = PurePosixPath(*parts[:-2])
            found.add(str(group) if group.parts else ".")
            found.add(str(group.parent) if group.parts else ".")
    return found


def _below(files: list[str], root: str) -> list[str]:
    prefix = "" if root == "." else root + "/"
    return sorted(n[len(prefix) :] for n in files if n.startswith(prefix))


def _has_both(files: list[str], root: str, layout: Layout) -> bool:
    folders = {PurePosixPath(r).parts[-2:-1] for r in _below(files, root)}
    return (layout.images,) in folders and (layout.masks,) in folders


def find_in_folders(files: list[str], where: str) -> Found:
    """The shallowest root of any layout in ``files`` (paths relative to what the user
    gave, ``where`` in errors); on a tie the earlier layout of ``LAYOUTS``."""
    if not files:  # empty folders: a layout may be there, but no image to pair
        raise DatasetError(f"{where}: the dataset is empty, it holds no files; {LAYOUT_HINT}")
    roots = sorted(
        (_depth(root), index, root)
        for index, layout in enumerate(LAYOUTS)
        for root in _candidates(files, layout)
        if _has_both(files, root, layout)
    )
    if not roots:
        raise DatasetError(f"{where}: no image folder with a label folder beside it; {LAYOUT_HINT}")
    _, index, root = roots[0]
    layout = LAYOUTS[index]
    rel = _below(files, root)
    masks: dict[tuple[str, str], str] = {}
    images: dict[tuple[str, str], str] = {}
    for name in rel:
        p = PurePosixPath(name)
        if p.parent.name == layout.masks and p.suffix.lower() in MASK_SUFFIXES:
            _pair_once(masks, (str(p.parent.parent), p.stem), name, "mask", where)
    pairs, unpaired = [], []
    # a missing mask is expected as the others are stored (a review: ".png" beside .tif masks)
    suffixes = Counter(PurePosixPath(mask).suffix for mask in masks.values())
    suffix = suffixes.most_common(1)[0][0] if suffixes else ".png"
    for name in rel:
        p = PurePosixPath(name)
        if p.parent.name != layout.images or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        _pair_once(images, (str(p.parent.parent), p.stem), name, "image", where)
        mask = masks.get((str(p.parent.parent), p.stem))
        if mask is None:
            unpaired.append((name, str(p.parent.parent / layout.masks / (p.stem + suffix))))
        else:
            pairs.append((name, mask))
    return Found(root, pairs, unpaired)


def _pair_once(seen: dict[tuple[str, str], str], key: tuple[str, str], name: str, kind: str,
               where: str) -> None:  # fmt: skip
    """Images and masks pair by name without suffix: two files of one name (a.png and
    a.tif) would share a partner, one chosen silently or one scene in two splits."""
    if key in seen:
        raise DatasetError(
            f"{where}: {seen[key]} and {name} are two {kind}s of one name, {key[1]!r}, so"
            f" images and masks cannot pair by name; keep one of them"
        )
    seen[key] = name


def is_manifest(path: Path) -> bool:
    return path.suffix.lower() in MANIFEST_SUFFIXES


def read_manifest(path: Path) -> Found:
    """The pairs a manifest names; labels that do not exist are left unpaired, images that
    do not exist are an error (a manifest names them on purpose)."""
    rows = _manifest_rows(path)
    pairs: list[tuple[str, str]] = []
    unpaired: list[tuple[str, str]] = []
    seen: dict[str, tuple[int, str]] = {}  # the image file's real path -> (entry, as named)
    for number, (image, label) in enumerate(rows, 1):
        for value in (image, label):
            if "://" in value:  # folded by normpath into "https:/host/...", a local path
                raise DatasetError(
                    f"{path}: entry {number}: {value!r} is a URL; a manifest lists local"
                    " files, relative to its folder (pass a URL to --data with --labels)"
                )
            if not value or PurePosixPath(value).is_absolute():
                raise DatasetError(
                    f"{path}: entry {number}: {value!r} is not a relative path; give image"
                    " and label paths relative to the manifest's folder"
                )
        # One spelling per file: "a/../a/x.png" and "a/x.png" are one image, which must not
        # land in two splits under two ids.
        image, label = posixpath.normpath(image), posixpath.normpath(label)
        where = f"{path}: entry {number}"
        if not _is_file(path.parent, image, where, "image"):
            raise DatasetError(f"{where}: image {image}: no such file")
        # the file itself, so that a link or another spelling of it counts as the same
        real = os.path.realpath(path.parent / image)
        if real in seen:
            first, named = seen[real]
            also = "" if named == image else f" (as {named})"
            raise DatasetError(
                f"{path}: entry {number}: {image} is listed twice: also entry {first}{also}"
            )
        seen[real] = (number, image)
        (pairs if _is_file(path.parent, label, where, "label") else unpaired).append((image, label))
    return Found(".", pairs, unpaired)


def _is_file(folder: Path, name: str, where: str, kind: str) -> bool:
    """Whether ``name`` in ``folder`` is a file; a name the file system cannot take (longer than it
    allows: Path.is_file raises there) and a folder (a review: "no such file") are one
    line."""
    path = folder / name
    try:
        found = path.is_file()
    except OSError as err:
        raise DatasetError(f"{where}: {str(path)[:100]}...: {err.strerror}") from None
    if not found and path.is_dir():
        raise DatasetError(f"{where}: {kind} {name} is a folder; an entry names one file")
    return found


def _manifest_rows(path: Path) -> list[tuple[str, str]]:
    try:
        text = read_bounded(path).decode("utf-8-sig")  # a BOM: Excel writes CSV so
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read manifest {path}: {err}") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not {"image", "label"} <= set(reader.fieldnames or []):
            raise DatasetError(
                f"{path}: a manifest CSV needs the header line 'image,label', not"
                f" {','.join(reader.fieldnames or []) or 'an empty file'!r}"
            )
        return [(row["image"] or "", row["label"] or "") for row in reader]
    try:
        data = load_yaml(text)
    except yaml.YAMLError as err:
        raise DatasetError(f"manifest {path} is not valid YAML: {parse_reason(err)}") from None
    entries = data if isinstance(data, list) else None
    if entries is None or not all(
        isinstance(e, dict) and isinstance(e.get("image"), str) and isinstance(e.get("label"), str)
        for e in entries
    ):
        raise DatasetError(
            f"{path}: a manifest YAML is a list of entries {{image: PATH, label: PATH}}"
        )
    return [(e["image"], e["label"]) for e in entries]
