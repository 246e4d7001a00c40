"""Spatial splits: large scenes cut into a grid of blocks, dealt to train / val / test.

Neighbouring pixels look alike, so a test pixel next to a training crop is not unseen
data. Each scene is cut into square blocks (the last row and column smaller); blocks are
ordered by a hash of the seed, scene and block (the same split on any machine), and test
takes the blocks of that order until it holds its share of the pixels, validation the
next. Where a block borders one of a later split (train < val < test, diagonals
included), it gives up a strip of ``buffer`` pixels along that side, which no split
uses: training crops, which lie inside training blocks, stay at least ``buffer`` pixels
from every validation and test pixel, and test blocks are scored whole. Hand-written:
the libraries' spatial splitters (torchgeo's ``random_grid_cell_assignment``) leave no
buffer and are not stable across versions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.windows import Window

from aerialseg.data.splits import Split, blocks_split, check_shares, seeded_rank
from aerialseg.errors import DatasetError

ORDER = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class SceneGrid:
    """What a block split needs of a scene: its id, size and pixel size, and what turns
    metres into its CRS units. ``of`` builds it from a header's CRS and transform."""

    id: str
    height: int
    width: int
    pixel: float | None  # pixel width in CRS units; None without a georeference
    metres: float | None = 1.0  # metres per CRS unit; None where the unit is no length
    crs: CRS | None = None  # where it lies: scenes on one grid share their blocks
    transform: Affine | None = None

    @classmethod
    def of(cls, id: str, height: int, width: int, crs: CRS | None, transform: Affine) -> SceneGrid:
        """The grid of a scene whose header gives ``crs`` (None: no georeference) and
        ``transform``. A pixel's width is the length of one column step, which on a rotated
        grid is not the transform's ``a``; a CRS in feet converts metres by its unit
        (rasterio's ``linear_units_factor``), and a geographic one, in degrees, cannot."""
        if crs is None:
            return cls(id, height, width, None)
        try:
            metres: float | None = float(crs.linear_units_factor[1])
        except CRSError:  # geographic (degrees), or a local CRS that names no unit
            metres = None
        pixel = math.hypot(transform.a, transform.d)
        return cls(id, height, width, pixel, metres, crs, transform)


# A scene's place on the ground's lattice of blocks: the first scene of its grid, and the
# row and column of the scene's first pixel in that scene's pixels.
Place = tuple[str, int, int]


def places(scenes: list[SceneGrid], first: Iterable[str] = ()) -> dict[str, Place]:
    """Each scene's place: scenes on one grid (one CRS and pixel, their origins a whole
    number of pixels apart, within GRID_TOLERANCE: two dates of one ground, the tiles of a
    mosaic) are placed on the first one's; any other scene is a grid of its own. Scenes
    named in ``first`` come first: a kept split's, so that a scene added before them in
    the next round does not move the lattice its blocks were cut on (a review)."""
    found: dict[str, Place] = {}
    firsts: dict[tuple, list[tuple[str, Affine]]] = {}  # by CRS and pixel: grids' first scenes
    early = set(first)
    for scene in sorted(scenes, key=lambda s: s.id not in early):  # stable: else as given
        at, pixel = scene.transform, scene.pixel
        if scene.crs is None or at is None or not pixel:
            found[scene.id] = (scene.id, 0, 0)
            continue
        # the pixel's size and turn, to nine digits (GDAL's decimals differ past them):
        # scenes of two pixel sizes are two grids (a review: 0.5 m and 1 m were one)
        kind = (scene.crs.to_wkt(), *(float(f"{v:.9g}") for v in (at.a, at.b, at.d, at.e)))
        for first, first_at in firsts.setdefault(kind, []):
            col, row = ~first_at * (at.c, at.f)
            if max(abs(col - round(col)), abs(row - round(row))) <= GRID_TOLERANCE:
                found[scene.id] = (first, round(row), round(col))
                break
        else:
            firsts[kind].append((scene.id, at))
            found[scene.id] = (scene.id, 0, 0)
    return found


# a block size: pixels (512, 512px) or metres (200m)
SIZE = r"\s*(\d+(?:\.\d+)?)\s*(px|m)?\s*"


def size_text(size: str) -> str:
    """A block size as a person reads it: ``512 px``, ``200 m``."""
    match = re.fullmatch(SIZE, str(size))
    return f"{match[1]} {match[2] or 'px'}" if match else str(size)


def map_size(size: str, scene: SceneGrid, flag: str = "--block-size") -> float:
    """``size`` as pixels of ``scene``, unrounded: ``512`` (pixels) or ``200m`` (metres,
    in whatever linear unit the scene's CRS has: feet too). ``flag`` names the option in
    errors."""
    match = re.fullmatch(SIZE, str(size))
    if not match:
        raise DatasetError(f"{flag} {size!r}: give pixels (512) or metres (200m)")
    value, unit = float(match[1]), match[2] or "px"
    if unit == "px":
        return value
    if scene.pixel is None:
        raise DatasetError(
            f"{flag} {size}: {scene.id} has no georeference; give the size in pixels"
        )
    if scene.metres is None:
        raise DatasetError(
            f"{flag} {size}: {scene.id} is in a CRS without a unit of length (a geographic"
            " one, in degrees), where metres are no fixed number of pixels; give the size"
            " in pixels"
        )
    return value / (scene.pixel * scene.metres)


def block_pixels(size: str, scene: SceneGrid) -> int:
    """``size`` as whole pixels of ``scene`` (see ``map_size``), from one to the scene's
    long side: a split's blocks are cut off at the scene's edges, so a block wider than a
    thin scene still holds part of it (suggest, whose tasks are blocks, asks more)."""
    pixels = round(map_size(size, scene))
    if pixels < 1:
        raise DatasetError(f"--block-size {size!r} is less than one pixel of {scene.id}")
    if pixels > scene.height and pixels > scene.width:
        raise DatasetError(
            f"--block-size {size} ({pixels} px) is larger than {scene.id}"
            f" ({scene.width} x {scene.height} px); choose a smaller block"
        )
    return pixels


def block_split(
    scenes: list[SceneGrid],
    size: str,
    buffer: int,
    val: float,
    test: float,
    seed: int = 0,
    labelled: Callable[[str, Window], bool] | None = None,
    kept: dict[tuple[str, int, int], str] | None = None,
) -> dict[str, list[tuple[str, Window]]]:
    """Split name -> (scene id, window) of each block's usable part, buffers taken off.
    Blocks are cut on each grid's lattice (``places``): scenes on one grid share a block
    of ground, dealt once, and buffers run across the edges between them.
    ``labelled(scene id, block)``: whether a block holds labels; blocks that hold none
    (outside a labelled area) are dealt to no split. ``kept``: (grid, block row, block
    column) -> split of blocks dealt already (``kept_blocks``): they stay where they were
    and count towards the shares; only the others are dealt."""
    check_shares(val, test)
    if buffer < 0:
        raise DatasetError(f"--buffer {buffer}: a number of pixels, 0 or more")
    placed = places(scenes, first=(grid for grid, _, _ in kept or {}))
    # a block of ground (grid, row, column) -> its side and the scenes' windows of it
    parts: dict[tuple[str, int, int], list[tuple[str, Window]]] = {}
    sides: dict[str, int] = {}
    for scene in scenes:
        side = block_pixels(size, scene)
        if 2 * buffer > side:
            # a strip only comes off blocks that touch a later split: wider than the block
            # next to it, it no longer holds blocks further off at that distance (16 px
            # blocks, a 40 px buffer: training pixels 17 px from test ones)
            raise DatasetError(
                f"--buffer {buffer} px is more than half a block ({side} px of {scene.id}),"
                " which no longer keeps training pixels that far from validation and test"
                f" ones: give --buffer {side // 2} or less (without --buffer, the crop size)"
                f" or blocks of {2 * buffer} px or more"
            )
        grid, row0, col0 = placed[scene.id]
        sides[grid] = side  # one pixel on one grid: one side
        whole = Window(0, 0, scene.width, scene.height)
        for r in range(row0 // side, (row0 + scene.height - 1) // side + 1):
            for c in range(col0 // side, (col0 + scene.width - 1) // side + 1):
                window = Window(c * side - col0, r * side - row0, side, side).intersection(whole)
                if labelled is None or labelled(scene.id, window):
                    parts.setdefault((grid, r, c), []).append((scene.id, window))
    ordered = sorted(parts, key=lambda block: seeded_rank(seed, ":".join(map(str, block))))

    def area(block: tuple[str, int, int]) -> int:  # the last row and column are smaller
        return sum(int(w.width * w.height) for _, w in parts[block])

    # The shares are of pixels, not of blocks: the thin last row and column of a scene
    # count for their area (an image of 1126 px in 512 px blocks has 9 blocks, 5 of them
    # slivers that would otherwise weigh as much as a whole block). Test, then validation,
    # takes blocks in the seeded order until it holds its share, so each gets one at least.
    total, kept = sum(area(block) for block in ordered), kept or {}
    split_of = {block: kept[block] for block in ordered if block in kept}
    queue = iter([block for block in ordered if block not in split_of])
    for name, share in (("test", test), ("val", val)):
        held = sum(area(block) for block in ordered if split_of.get(block) == name)
        while held < share * total and (block := next(queue, None)) is not None:
            split_of[block] = name
            held += area(block)
    for block in queue:
        split_of[block] = "train"
    if "train" not in split_of.values() or "val" not in split_of.values():
        more = " --block-size" if labelled is None else " --block-size, or label more blocks"
        raise DatasetError(
            f"{len(ordered)} block(s) are too few for val {val:g} and test {test:g}: choose a"
            f" smaller{more}"
        )
    out: dict[str, list[tuple[str, Window]]] = {name: [] for name in ORDER}
    for (grid, r, c), windows in parts.items():
        name, side = split_of[(grid, r, c)], sides[grid]

        def later(dr: int, dc: int, name=name, grid=grid, r=r, c=c) -> bool:
            other = split_of.get((grid, r + dr, c + dc))
            return other is not None and ORDER[other] > ORDER[name]

        # a side gives up the buffer if a block along it (or at its corners) comes later,
        # in this scene or in another on its grid; on the grid's pixels, then the scene's
        top = r * side + (buffer if any(later(-1, dc) for dc in (-1, 0, 1)) else 0)
        bottom = (r + 1) * side - (buffer if any(later(1, dc) for dc in (-1, 0, 1)) else 0)
        left = c * side + (buffer if any(later(dr, -1) for dr in (-1, 0, 1)) else 0)
        right = (c + 1) * side - (buffer if any(later(dr, 1) for dr in (-1, 0, 1)) else 0)
        for sid, window in windows:
            _, row0, col0 = placed[sid]
            usable = Window(left - col0, top - row0, right - left, bottom - top)
            if bottom > top and right > left and _overlaps(usable, window):
                out[name].append((sid, usable.intersection(window)))
    order = {scene.id: k for k, scene in enumerate(scenes)}  # scene by scene, as given
    for name in out:
        out[name].sort(key=lambda part: (order[part[0]], part[1].row_off, part[1].col_off))
    if not out["train"] or not out["val"]:
        raise DatasetError(
            f"the buffer of {buffer} px leaves no training or validation block; choose a larger"
            " --block-size or a smaller --buffer"
        )
    return out


def _overlaps(a: Window, b: Window) -> bool:
    return (
        a.col_off < b.col_off + b.width
        and b.col_off < a.col_off + a.width
        and (a.row_off < b.row_off + b.height and b.row_off < a.row_off + a.height)
    )


def write_blocks(path, blocks: dict[str, list[tuple[str, Window]]], grids: dict) -> int:
    """A GeoPackage of the blocks' usable parts (attributes: split, image) for QGIS, in
    the first scene's CRS; ``grids``: image id -> (CRS, transform). Returns the number of
    blocks written."""
    from pathlib import Path

    import fiona
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping

    from aerialseg.data.polygons import footprint

    Path(path).unlink(missing_ok=True)  # GDAL creates a GeoPackage only where none is
    crs = next(iter(grids.values()))[0]
    schema = {"geometry": "Polygon", "properties": {"split": "str", "image": "str"}}
    count = 0
    with fiona.open(
        path, "w", driver="GPKG", crs=crs.to_wkt(), schema=schema, layer="blocks"
    ) as layer:
        for name, parts in blocks.items():
            for image, window in parts:
                scene_crs, transform = grids[image]
                geom = mapping(footprint(window, transform))  # rotated on a rotated grid
                if scene_crs != crs:
                    geom = transform_geom(scene_crs, crs, geom)
                layer.write({"geometry": geom, "properties": {"split": name, "image": image}})
                count += 1
    return count


def kept_blocks(
    earlier: dict[str, list[tuple[str, Window]]], scenes: list[SceneGrid], size: str
) -> dict[tuple[str, int, int], str]:
    """The blocks of an ``earlier`` block split (split name -> parts, as ``block_split``
    gives them) by (grid, row, column) of the lattice of ``size`` (``places``), to keep
    them where they were: a round of labelling adds blocks, and a block trained on in the
    last round must not validate or test the next. The earlier split must have used
    blocks of ``size`` (a part lies in one block; its buffer is under half a block)."""
    grids = {scene.id: scene for scene in scenes}
    placed = places(scenes, first=(sid for parts in earlier.values() for sid, _ in parts))
    found: dict[tuple[str, int, int], str] = {}
    shared = {grid for sid, (grid, _, _) in placed.items() if grid != sid}
    # a split of scenes on one grid may be older than their shared blocks
    older = "; or split again without --keep: it may be older than blocks shared by scenes"
    for name, parts in earlier.items():
        for sid, window in parts:
            if sid not in grids:
                continue  # a scene of the earlier round that this one has not
            side = block_pixels(size, grids[sid])
            grid, row0, col0 = placed[sid]
            top, left = row0 + int(window.row_off), col0 + int(window.col_off)
            row, col = top // side, left // side
            last_row = (top + int(window.height) - 1) // side
            last_col = (left + int(window.width) - 1) // side
            if (row, col) != (last_row, last_col):
                raise DatasetError(
                    f"the kept split's block {sid} [{int(window.col_off)}, {int(window.row_off)},"
                    f" {int(window.width)}, {int(window.height)}] spans blocks of {size}: give"
                    " the --block-size it was split with"
                    + (older if placed[sid][0] in shared else "")
                )
            if found.setdefault((grid, row, col), name) != name:  # cut on another grid
                raise DatasetError(
                    f"the kept split has blocks of {found[(grid, row, col)]} and of {name} in"
                    f" one block of {size} of {sid}: give the --block-size (and --pixel-size)"
                    " it was split with" + (older if grid in shared else "")
                )
    return found


def on_grids(split: Split, grids: dict[str, tuple[Affine, int, int]]) -> Split:
    """``split`` with its blocks on the grids its images are read on now (``grids``: image
    id -> transform, width and height, at the run's ``pixel_size``), where the split file
    records the grid it was cut on and that differs. Each block keeps the pixels of the new
    grid that lie wholly on its ground, so blocks stay apart and their buffers keep at
    least their width on the ground. A grid is the same where its transform is within
    GRID_TOLERANCE of a pixel of the recorded one. A block left without a whole pixel is
    dropped: the caller says whether a split it needs is left empty."""
    if split.blocks is None or not split.grids:
        return split
    moved: dict[str, list[tuple[str, Window]]] = {}
    for name, parts in split.blocks.items():
        moved[name] = []
        for image, window in parts:
            if image not in split.grids or image not in grids:
                moved[name].append((image, window))
                continue
            was = Affine(*split.grids[image])
            now, width, height = grids[image]
            part = _on_grid(image, window, was, now, width, height)
            if part is not None:
                moved[name].append((image, part))
    transforms = {image: grids[image][0] for image in split.grids if image in grids}
    return blocks_split(moved, split.rule, transforms)


# Of a pixel: where two grids are one, and how far past a pixel's edge a block's may lie
# and still hold it (transforms computed by GDAL and written as decimals differ by noise).
GRID_TOLERANCE = 1e-3


def same_grid(was: Affine, now: Affine) -> bool:
    """Whether two transforms are one grid: within GRID_TOLERANCE of a pixel."""
    return was.almost_equals(now, precision=GRID_TOLERANCE * math.hypot(now.a, now.d))


def _on_grid(
    image: str, window: Window, was: Affine, now: Affine, width: int, height: int
) -> Window | None:
    """``window`` of the grid ``was`` as the pixels of grid ``now`` (``width`` x ``height``)
    wholly inside it; None where it holds none."""
    if same_grid(was, now):
        return window
    if was.b or was.d or now.b or now.d:
        raise DatasetError(
            f"{image}: the block split was cut on the image's own grid, which is rotated, and"
            " this run reads it on another (pixel_size=); train and score it at its own pixel"
            " size, or warp the image north-up (gdalwarp) and split that"
        )
    # the block's corners on the new grid, as fractional pixels
    (c0, r0), (c1, r1) = (
        ~now @ (was @ (window.col_off, window.row_off)),
        ~now @ (was @ (window.col_off + window.width, window.row_off + window.height)),
    )
    left, right = sorted((c0, c1))
    top, bottom = sorted((r0, r1))
    slack = GRID_TOLERANCE
    left, top = max(0, math.ceil(left - slack)), max(0, math.ceil(top - slack))
    right, bottom = min(width, math.floor(right + slack)), min(height, math.floor(bottom + slack))
    if right <= left or bottom <= top:
        return None
    return Window(left, top, right - left, bottom - top)
