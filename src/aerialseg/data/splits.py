"""Train / validation / test splits, by a documented rule or from a file.

Default rule (``../shared/benchmark/PROTOCOL.md``): the test images are ``image_part_002``
and ``image_part_007`` of every tile; the validation images, used for early stopping and
checkpoint choice, are ``image_part_005`` of every tile; the rest train. Holding out whole
images (not patches of them) keeps test pixels unseen in training.

A split file is JSON with lists of pair ids under ``test`` and optionally ``val`` and
``train`` (default: every image not held out), the form of ``../shared/benchmark/split.json``.
A ``train`` list trains on a subset: images with doubtful labels left out, or fewer images
to see how quality grows with data (bench/data_curve.py).

For a dataset not named like the Dubai one, ``random_split`` (``aerialseg data split``) draws
whole images at random, reproducibly, and writes such a file. Large scenes are split by
blocks instead (data/blocks.py): the file then also lists, under ``blocks``, the part of
each scene every split may use, as ``[column, row, width, height]`` pixel windows.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rasterio.windows import Window

from aerialseg.errors import DatasetError
from aerialseg.files import read_bounded
from aerialseg.yamltext import load_json

TEST_STEMS = ("image_part_002", "image_part_007")
VAL_STEMS = ("image_part_005",)
RULE = (
    "test: image_part_002 and image_part_007 of every tile (PROTOCOL.md);"
    " val: image_part_005 of every tile; train: the rest"
)
SPLIT_NAMES = ("train", "val", "test")


class Named(Protocol):
    """What a split reads of a scene: its id, file stem and group (tile folder)."""

    @property
    def id(self) -> str: ...

    @property
    def stem(self) -> str: ...

    @property
    def group(self) -> str: ...


@dataclass(frozen=True)
class Split:
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    rule: str
    # a block split: split name -> (image id, window) of each part of a scene it may use
    blocks: dict[str, tuple[tuple[str, Window], ...]] | None = None
    # a block split: image id -> the transform (a, b, c, d, e, f) of the pixel grid its
    # windows count in, for georeferenced images (blocks.on_grids reads them on another)
    grids: dict[str, tuple[float, ...]] | None = None

    def ids(self, name: str) -> tuple[str, ...]:
        if name not in SPLIT_NAMES:
            raise DatasetError(f"unknown split {name!r}; choose one of {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)

    def parts(self, name: str) -> list[tuple[str, Window | None]]:
        """The images of split ``name`` with the window of each that it uses (None: all)."""
        if self.blocks is None:
            return [(i, None) for i in self.ids(name)]
        return list(self.blocks[name])

    def to_dict(self) -> dict:
        data: dict = {
            "rule": self.rule,
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
        }
        if self.blocks is not None:
            data["blocks"] = {
                name: [{"image": i, "window": _window_list(w)} for i, w in parts]
                for name, parts in self.blocks.items()
            }
        if self.grids:
            data["grids"] = {image: list(t) for image, t in self.grids.items()}
        return data

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def rule_split(scenes: Sequence[Named], for_training: bool = True) -> Split:
    """The default split by image name. ``for_training``: it must leave training and
    validation images (scoring needs only the split it scores)."""
    test = tuple(p.id for p in scenes if p.stem in TEST_STEMS)
    val = tuple(p.id for p in scenes if p.stem in VAL_STEMS)
    train = tuple(p.id for p in scenes if p.stem not in TEST_STEMS + VAL_STEMS)
    if for_training and (not train or not val):
        raise DatasetError(
            "the default split rule (image_part_002/005/007 of each tile) leaves no training or"
            " validation images in this dataset; pass a split file with --split ('aerialseg"
            " data split DATA --out split.json' draws one)"
        )
    return Split(train=train, val=val, test=test, rule=RULE)


def file_split(scenes: Sequence[Named], path: str | Path, for_training: bool = True) -> Split:
    """A split from a JSON file; ``val`` defaults to the rule's validation images, ``train``
    to every image neither in ``test`` nor in ``val``. ``for_training``: it must leave
    training and validation images; scoring takes a file of only what it scores."""
    path = Path(path)
    try:
        data = load_json(read_bounded(path))  # bytes: a BOM (Notepad's) is read as such
    except OSError as err:
        raise DatasetError(f"cannot read split file {path}: {err.strerror}") from None
    except (ValueError, RecursionError) as err:  # RecursionError: nested too deep
        reason = "nested too deep" if isinstance(err, RecursionError) else err
        raise DatasetError(f"split file {path} is not valid JSON: {reason}") from None
    # A list under a key of its own ("validation" for "val") was dropped, and val taken by
    # the name rule; other keys are notes (the protocol's file names its "dataset").
    listed = [k for k, v in (data.items() if isinstance(data, dict) else []) if isinstance(v, list)]
    unknown = sorted(set(listed) - set(SPLIT_NAMES))
    if unknown:
        raise DatasetError(
            f"split file {path}: a list under {unknown[0]!r}, which names no split; the"
            " lists of image paths go under train, val and test"
        )
    if isinstance(data, dict) and "blocks" in data:
        return _read_blocks(data, {p.id for p in scenes}, path, for_training)
    if not isinstance(data, dict) or not isinstance(data.get("test"), list):
        raise DatasetError(f"split file {path} needs a 'test' list of image paths")
    for key in ("test", "val", "train"):
        given = data.get(key)
        if given is not None and not (
            isinstance(given, list) and all(isinstance(i, str) for i in given)
        ):
            raise DatasetError(f"split file {path}: '{key}' must be a list of image paths")
        twice = _first_twice(given or [])
        if twice is not None:  # scored (or trained on) as often as it is listed
            raise DatasetError(f"split file {path}: '{key}' lists {twice!r} more than once")
    known = {p.id for p in scenes}
    test = tuple(data["test"])
    val_given = data.get("val")
    val = (
        tuple(val_given)
        if val_given is not None
        else tuple(p.id for p in scenes if p.stem in VAL_STEMS and p.id not in test)
    )
    # every part's, counted whole (a review: "names 2" of a split none of whose 6 were there)
    parts = {"test": test, "val": val, "train": tuple(data.get("train") or ())}
    missing = {part: [i for i in ids if i not in known] for part, ids in parts.items()}
    count = sum(len(ids) for ids in missing.values())
    if count:
        first = next(i for ids in missing.values() for i in ids)
        where = ", ".join(f"{len(ids)} in '{part}'" for part, ids in missing.items() if ids)
        raise DatasetError(
            f"split file {path} names {count} image(s) not in the dataset ({where}), e.g."
            f" {first!r}; paths are relative to the dataset root"
        )
    if set(test) & set(val):
        raise DatasetError(f"split file {path}: an image is in both 'test' and 'val'")
    held_out = set(test) | set(val)
    train_given = data.get("train")
    if train_given is None:
        train = tuple(p.id for p in scenes if p.id not in held_out)
    else:
        train = tuple(train_given)
        if held_out & set(train):
            raise DatasetError(f"split file {path}: an image is in 'train' and 'test' or 'val'")
    if for_training and (not train or not val):
        raise DatasetError(f"split file {path} leaves no training or no validation images")
    rule = str(data.get("rule", f"from {path.name}"))
    return Split(train=train, val=val, test=test, rule=rule)


def _window_list(window: Window) -> list[int]:
    return [int(window.col_off), int(window.row_off), int(window.width), int(window.height)]


def blocks_split(
    blocks: dict[str, list[tuple[str, Window]]], rule: str, grids: dict | None = None
) -> Split:
    """A Split of block parts: each split's ids are the images it has parts of;
    ``grids``: image id -> the transform its windows count in."""
    ids = {name: tuple(dict.fromkeys(i for i, _ in parts)) for name, parts in blocks.items()}
    frozen = {name: tuple(parts) for name, parts in blocks.items()}
    kept = {i: tuple(float(v) for v in t)[:6] for i, t in (grids or {}).items()}
    return Split(ids["train"], ids["val"], ids["test"], rule, frozen, kept or None)


def _block(entry: dict) -> tuple[str, Window]:
    """A block of a split file, {image, window: [column, row, width, height]}, checked."""
    image, window = entry["image"], entry["window"]
    whole = isinstance(window, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in window
    )
    if not isinstance(image, str) or not whole or len(window) != 4:
        raise TypeError(entry)
    column, row, width, height = window
    if column < 0 or row < 0 or width < 1 or height < 1:
        raise TypeError(entry)
    if max(column + width, row + height) > 2**31:  # past GDAL's largest raster
        raise TypeError(entry)
    return image, Window(column, row, width, height)


def _first_twice(items: Sequence) -> object | None:
    seen: set = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def _read_blocks(data: dict, known: set[str], path: Path, for_training: bool = True) -> Split:
    try:
        blocks = {name: [_block(b) for b in data["blocks"].get(name, [])] for name in SPLIT_NAMES}
    except (KeyError, TypeError, AttributeError):
        raise DatasetError(
            f"split file {path}: 'blocks' must map train, val and test to lists of"
            " {image, window: [column, row, width, height]}, whole numbers, the size from 1"
        ) from None
    missing = [i for parts in blocks.values() for i, _ in parts if i not in known]
    if missing:
        raise DatasetError(
            f"split file {path} names {len(missing)} block(s) of images not in the dataset,"
            f" e.g. {missing[0]!r}"
        )
    shared = _overlap(blocks)
    if shared is not None:  # the model would be scored (or chosen) on pixels it trained on
        image, first, second = shared
        raise DatasetError(
            f"split file {path}: blocks of {image!r} in {first!r} and {second!r} overlap"
            " (or one is listed twice); a test pixel may be in one block only ('aerialseg"
            " data split --block-size' makes such a split)"
        )
    if for_training and (not blocks["train"] or not blocks["val"]):
        raise DatasetError(f"split file {path} leaves no training or no validation blocks")
    grids = data.get("grids", {})  # absent from the split files of earlier releases
    if not isinstance(grids, dict) or not all(map(_is_transform, grids.values())):
        raise DatasetError(
            f"split file {path}: 'grids' must map image ids to the six numbers of a pixel"
            " grid's transform (a, b, c, d, e, f), as 'aerialseg data split' writes them"
        )
    rule = str(data.get("rule", f"blocks from {path.name}"))
    return blocks_split(blocks, rule, {i: t for i, t in grids.items() if i in known})


# What a split file's grid may say: no CRS has pixels of a billion units, or places the Earth
# further than data.raster's FARTHEST_COORDINATE from its origin (a review: a grid of
# 1e308 made the windows NaN, a traceback).
LARGEST_PIXEL = 1e9
FARTHEST_ORIGIN = 1e10


def _is_transform(value: object) -> bool:
    """Six numbers whose pixel (a, b, d, e) spans an area, within the bounds above: a
    grid's transform."""
    if not (isinstance(value, list) and len(value) == 6):
        return False
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return False
    try:
        a, b, c, d, e, f = (float(v) for v in value)  # an integer of 400 digits overflows
    except OverflowError:
        return False
    pixel = (a, b, d, e)
    return (
        all(abs(v) < LARGEST_PIXEL for v in pixel)
        and abs(c) <= FARTHEST_ORIGIN
        and abs(f) <= FARTHEST_ORIGIN
        and a * e - b * d != 0
    )


def _overlap(blocks: dict[str, list[tuple[str, Window]]]) -> tuple[str, str, str] | None:
    """(image, split, split) of the first two blocks of one image that share test pixels,
    or are one block listed twice; None where none do. Through
    shapely's STRtree: a 20,000 px scene holds tens of thousands of blocks, too many to
    compare in pairs."""
    import shapely

    by_image: dict[str, list[tuple[str, Window]]] = defaultdict(list)
    for name, parts in blocks.items():
        for image, window in parts:
            by_image[image].append((name, window))
    for image, parts in by_image.items():
        boxes = [
            shapely.box(w.col_off, w.row_off, w.col_off + w.width, w.row_off + w.height)
            for _, w in parts
        ]
        tree = shapely.STRtree(boxes)
        for i, j in zip(*tree.query(boxes, predicate="intersects"), strict=True):
            (one, a), (other, b) = parts[i], parts[j]
            # test pixels trained on, validated on or scored twice, or a block listed twice
            # (training may reuse validation pixels: a refit on every labelled pixel does)
            clash = "test" in (one, other) or (one == other and a == b)
            if i < j and clash and boxes[i].intersection(boxes[j]).area > 0:
                return image, one, other
    return None


def seeded_rank(seed: int, text: str) -> str:
    """A text's place in an order that a seed shuffles, the same on every machine and
    Python (unlike hash())."""
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()


def check_shares(val: float, test: float) -> None:
    """The shares a split holds out, for validation and test: what leaves some to train."""
    if not (0 < val < 1 and 0 <= test < 1 and val + test < 1):
        raise DatasetError(
            f"val {val:g} and test {test:g}: each in [0, 1), val above 0, sum below 1"
        )


def random_split(scenes: Sequence[Named], val: float, test: float, seed: int = 0) -> Split:
    """Hold out shares ``val`` and ``test`` of the images, drawn at random from every group
    (tile folder) alike, as the protocol holds out images of every tile.

    Each group's images are ordered by a hash of seed and id, and the groups are dealt out
    in turn (first images of every group, then second images, ...); test takes the first
    ``test`` share of that order and validation the next ``val`` share. A hash, not a
    random generator: the same seed gives the same split on any machine and library
    version, and adding images leaves the order of the others in their group as it was.
    Hand-written: the libraries' group splitters (scikit-learn's) keep a group together,
    the opposite of this.
    """
    check_shares(val, test)
    groups: dict[str, list[str]] = defaultdict(list)
    for scene in scenes:
        groups[scene.group].append(scene.id)
    ordered = [sorted(ids, key=lambda i: seeded_rank(seed, i)) for ids in groups.values()]
    ordered.sort(key=lambda ids: seeded_rank(seed, ids[0]))
    dealt = [
        ids[k] for k in range(max(map(len, ordered), default=0)) for ids in ordered if k < len(ids)
    ]
    n_test, n_val = round(len(dealt) * test), max(1, round(len(dealt) * val))
    if len(dealt) - n_test - n_val < 1:
        raise DatasetError(
            f"{len(dealt)} image(s) are too few for val {val:g} and test {test:g}: no image"
            " would be left to train on (large scenes split by blocks: --block-size)"
        )
    rule = (
        f"random: test {test:g} and val {val:g} of the images, drawn alike from each of"
        f" {len(groups)} group(s), seed {seed} (aerialseg data split)"
    )
    return Split(
        train=tuple(sorted(dealt[n_test + n_val :])),
        val=tuple(sorted(dealt[n_test : n_test + n_val])),
        test=tuple(sorted(dealt[:n_test])),
        rule=rule,
    )


def make_split(
    scenes: Sequence[Named], split_file: str | Path | None = None, for_training: bool = True
) -> Split:
    if split_file:
        return file_split(scenes, split_file, for_training)
    return rule_split(scenes, for_training)
