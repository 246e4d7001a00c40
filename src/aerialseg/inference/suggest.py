"""``aerialseg suggest``: predict scenes, rank their blocks for labelling, write the tasks.

Each scene is predicted as ``aerialseg predict`` predicts it (the same windows and
calibrated confidence), band by band; its blocks tally what doubt.py ranks them by, and
pixels already labelled (the labelled area, and any label polygons) count for nothing.
The tasks, and with ``prelabel`` the model's polygons inside them, go to one GeoPackage
(tasks.py). The predicted class ids are kept in a temporary file, not in memory, until
the chosen blocks' polygons are drawn.
"""

from __future__ import annotations

import math
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.warp import transform as transform_points
from rasterio.warp import transform_geom
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry import mapping, shape

from aerialseg.data.blocks import SceneGrid, block_pixels, map_size
from aerialseg.data.classes import ClassTable
from aerialseg.data.polygons import PolygonLayer, footprint
from aerialseg.data.raster import RasterInput, input_name
from aerialseg.errors import printable
from aerialseg.inference import doubt
from aerialseg.inference.doubt import MIN_USABLE, Block, BlockTally, SuggestError
from aerialseg.models.names import SIZE_MULTIPLE

MIN_DISTANCE_BLOCKS = 2.0  # default spacing of chosen blocks' centres, in block sides
# The smallest task side: a task is trained on, in crops of 32 px at least (crop_size is a
# multiple of SIZE_MULTIPLE); a review was given 409,600 tasks of 1 px, and their
# prelabel layer was empty (polygons under 4 px are sieved away)
MIN_TASK_PIXELS = SIZE_MULTIPLE


@dataclass
class SuggestOptions:
    count: int = 20
    block_size: str = "256"  # pixels, or metres with "m" ("100m")
    strategy: str = "mixed"
    min_distance: str | None = None  # as block_size; None: MIN_DISTANCE_BLOCKS blocks
    prelabel: bool = False
    seed: int = 0


@dataclass
class Scene:
    """One predicted scene: its name, grid, CRS and block tally."""

    name: str
    tally: BlockTally
    transform: Affine  # of its pixels
    crs: CRS | None  # None for a plain image
    pixel: float  # map units per pixel (1 for a plain image)
    ids: np.ndarray | None = None  # (h, w) uint8 memmap of class ids, with prelabel


@dataclass
class Suggestion:
    scenes: list[Scene]
    tasks: list[Block]
    candidates: int
    reasons: list[str] = field(default_factory=list)
    # holds the scenes' class-id files (prelabel) until the tasks are written
    workdir: tempfile.TemporaryDirectory | None = None


def task_block(size: str, scene: SceneGrid) -> int:
    """``--block-size`` as pixels of ``scene``, refused where no block of that side can be
    a task: a task is a block at least ``MIN_USABLE`` inside the scene (a candidate of
    doubt.BlockTally), so a scene thinner than half the block has none, which would
    otherwise read as every block being labelled already."""
    side = block_pixels(size, scene)
    if side < MIN_TASK_PIXELS:
        raise SuggestError(
            f"--block-size {size} ({side} px of {scene.id}): a task is labelled and trained on,"
            f" in crops of {MIN_TASK_PIXELS} px at least; choose {MIN_TASK_PIXELS} px or more"
        )
    short, long = sorted((scene.height, scene.width))
    if min(side, short) * min(side, long) >= MIN_USABLE * side * side:
        return side
    # the largest side that fits: short / MIN_USABLE while the block is within the long
    # side, else the side of a square of the scene's area over MIN_USABLE
    fits = int(short / MIN_USABLE)
    if fits > long:
        fits = math.isqrt(int(short * long / MIN_USABLE))
    if fits < MIN_TASK_PIXELS:  # a review: "28 px or less", then "32 px or more"
        raise SuggestError(
            f"{scene.id} ({scene.width} x {scene.height} px) is too small for a task of"
            f" {MIN_TASK_PIXELS} px, half inside it: leave it out"
        )
    raise SuggestError(
        f"--block-size {size} ({side} px) does not fit the short side of {scene.id}"
        f" ({scene.width} x {scene.height} px): a task is a block at least half inside the"
        f" scene; choose a block of {fits} px or less"
    )


def distance_units(text: str | None, scene: SceneGrid, block: int) -> float:
    """``--min-distance`` in ``scene``'s map units (pixels for a plain image)."""
    if text is None:
        return MIN_DISTANCE_BLOCKS * block * (scene.pixel or 1.0)
    return map_size(text, scene, "--min-distance") * (scene.pixel or 1.0)


def tally_scene(
    bands: Iterator,
    raster: RasterInput,
    num_classes: int,
    block: int,
    labelled: list[PolygonLayer],
    ids_file: Path | None,
) -> tuple[BlockTally, np.ndarray | None]:
    """Tally the predicted ``bands`` (ChunkResults with confidence) of ``raster``; with
    ``ids_file``, keep the class ids there."""
    tally = BlockTally(raster.height, raster.width, block, num_classes)
    ids = None
    if ids_file is not None:
        shape = (raster.height, raster.width)
        ids = np.lib.format.open_memmap(ids_file, mode="w+", dtype=np.uint8, shape=shape)
    transform = raster.dataset.transform
    for chunk in bands:
        win = chunk.window
        covered = None
        for layer in labelled:
            at = window_transform(win, transform)
            hit = layer.rasterize(at, chunk.ids.shape, fill=0).astype(bool)
            covered = hit if covered is None else covered | hit
        tally.add(int(win.row_off), chunk.ids, chunk.confidence, chunk.valid, covered)
        if ids is not None:
            ids[int(win.row_off) : int(win.row_off) + chunk.ids.shape[0]] = chunk.ids
    return tally, ids


def rank(
    scenes: list[Scene], classes: ClassTable, opts: SuggestOptions, distances: list[float]
) -> Suggestion:
    """Score every candidate block of ``scenes`` and choose the tasks."""
    blocks: list[Block] = []
    common = scenes[0].crs  # the tasks' CRS: every georeferenced scene's blocks meet there
    distances = list(distances)
    for i, scene in enumerate(scenes):
        t = scene.tally
        windows = [t.window(int(index)) for index in t.candidates()]
        middles = [(w.col_off + w.width / 2, w.row_off + w.height / 2) for w in windows]
        centres = [scene.transform @ m for m in middles]
        space, scale = f"image {i}", 1.0
        if scene.crs is not None:
            space, scale, centres = _in_common_space(scene, scene.crs, common, centres)
        distances[i] *= scale
        reach = math.hypot(scene.transform.a, scene.transform.d) * t.block / 2 * scale
        for index, win, (x, y) in zip(t.candidates(), windows, centres, strict=True):
            blocks.append(
                Block(
                    scene=i,
                    index=int(index),
                    window=win,
                    centre=(float(x), float(y)),
                    space=space,
                    reach=reach,
                    doubt=float(t.doubt[index] / t.usable[index]),
                    shares=t.classes[index] / t.usable[index],
                )
            )
    if not blocks:
        raise SuggestError(
            "no block left to suggest: every block is labelled already or has no data"
        )
    scored = np.array([c.scored for c in classes.classes])
    rarity = doubt.score_blocks(blocks, opts.strategy, opts.seed, scored)
    tasks = doubt.select(blocks, opts.count, distances)  # each scene's own spacing
    reasons = [doubt.reason(b, classes.names, rarity, opts.strategy) for b in tasks]
    return Suggestion(scenes, tasks, len(blocks), reasons)


def _in_common_space(scene: Scene, crs: CRS, common: CRS, centres: list) -> tuple[str, float, list]:
    """The space for block spacing of ``scene`` (in ``crs``), its units' size in that
    space's, and ``centres`` there: ``common`` (the tasks' CRS), so that overlapping scenes
    in two CRSs give no ground twice; the scene's own CRS where ``common`` cannot hold it."""
    own = (crs.to_wkt(), 1.0, centres)
    if crs == common or not centres:
        return own
    whole = footprint(Window(0, 0, scene.tally.width, scene.tally.height), scene.transform)
    try:
        there = shape(transform_geom(crs, common, mapping(whole)))
        xs, ys = transform_points(crs, common, *zip(*centres, strict=True))
    except (CPLE_BaseError, ValueError):
        return own
    if not there.is_valid or not all(map(math.isfinite, (*xs, *ys, there.area))):
        return own
    scale = math.sqrt(there.area / whole.area)
    return common.to_wkt(), scale, list(zip(xs, ys, strict=True))


def check_calibrated(temperature: float | None, model: str) -> None:
    if temperature is None:
        raise SuggestError(
            f"{model}: this model has no confidence calibration, which suggest ranks blocks"
            " by; 'aerialseg train' fits one on the run's validation images (retrain with"
            " validation images, or fine-tune it: init_from=MODEL)"
        )


def check_scenes(
    open_scene,
    inputs: Sequence[Path | str],
    opts: SuggestOptions,
    labelled: Mapping[str, PolygonLayer],
) -> list[tuple[SceneGrid, int, float]]:
    """Each scene's grid, task block (px) and spacing, from its header: what can be refused
    is refused before any scene is predicted (a review: a labelled area of another place
    was refused after every scene had been). Scenes with and without a georeference
    together, labels over one without, a block that does not fit, and labelled polygons
    that lie outside every scene are refused."""
    found = []
    first_of: dict[bool, str] = {}  # georeferenced or not: the first scene of each
    overlapped = [False] * len(labelled)
    for path in inputs:
        with open_scene(path) as raster:
            ds, name = raster.dataset, input_name(path).name
            first_of.setdefault(ds.crs is not None, name)
            if len(first_of) > 1:  # named: the one without (a review named the other)
                raise SuggestError(
                    f"{first_of[False]} has no georeference and {first_of[True]} has one:"
                    " scenes with and without a georeference cannot be ranked together;"
                    " suggest them apart"
                )
            if labelled and ds.crs is None:
                raise SuggestError(
                    f"{name} has no georeference: labels and a labelled area cannot be placed on it"
                )
            grid = SceneGrid.of(name, raster.height, raster.width, ds.crs, ds.transform)
            block = task_block(opts.block_size, grid)
            found.append((grid, block, distance_units(opts.min_distance, grid, block)))
            whole = footprint(Window(0, 0, raster.width, raster.height), ds.transform)
            for k, layer in enumerate(labelled.values()):
                overlapped[k] |= layer.to_crs(ds.crs, whole).overlaps(whole)
    for (given, layer), hit in zip(labelled.items(), overlapped, strict=True):
        if not hit:  # named (a review: an off-scene --labelled-area was called the labels)
            raise SuggestError(
                f"{given}: its polygons ({layer.crs.to_string()}) lie outside every scene: is"
                " their CRS right, or are they of another area?"
            )
    return found


def suggest_scenes(
    open_scene,
    predict_bands,
    inputs: Sequence[Path | str],
    classes: ClassTable,
    opts: SuggestOptions,
    labelled: Mapping[str, PolygonLayer],
) -> Suggestion:
    """Predict and tally every input, then rank: ``open_scene(path)`` opens a RasterInput
    as predict does, ``predict_bands(raster)`` yields its ChunkResults with confidence.
    ``labelled``: polygon layers of what is labelled already, in any CRS, by how the
    user gave each (e.g. "area.gpkg (labelled area)")."""
    grids = check_scenes(open_scene, inputs, opts, labelled)
    scenes: list[Scene] = []
    distances: list[float] = []
    keep = tempfile.TemporaryDirectory(prefix="aerialseg-suggest-") if opts.prelabel else None
    for n, (path, (grid, block, distance)) in enumerate(zip(inputs, grids, strict=True)):
        with open_scene(path) as raster:
            ds = raster.dataset
            distances.append(distance)
            whole = footprint(Window(0, 0, raster.width, raster.height), ds.transform)
            layers = [layer.to_crs(ds.crs, whole) for layer in labelled.values()]
            ids_file = Path(keep.name) / f"{n}.npy" if keep is not None else None
            print(f"aerialseg: predicting {printable(grid.id)}", file=sys.stderr)
            tally, ids = tally_scene(
                predict_bands(raster), raster, classes.num_classes, block, layers, ids_file
            )
            scenes.append(Scene(grid.id, tally, ds.transform, ds.crs, grid.pixel or 1.0, ids))
    result = rank(scenes, classes, opts, distances)
    result.workdir = keep
    return result
