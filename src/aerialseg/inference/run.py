"""``aerialseg predict``: many inputs, one progress bar, every output per input.

A bad input is reported and skipped; the others are still predicted. Every output is
written under a temporary name; an input's outputs are renamed into place together when
all are complete (files.OutputSet), and a set that a killed run left half renamed is
completed when the next run prepares the folder. Outputs are named after their
input; inputs that share a name (``Tile 6/images/x.jpg``, ``Tile 8/images/x.jpg``) get
their folders in it, so none overwrites another.
"""

from __future__ import annotations

import glob
import math
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import rasterio
import torch
from tqdm import tqdm

from aerialseg.data.raster import (
    InputError,
    RasterInput,
    TooLargeInputError,
    UngeoreferencedError,
    band_numbers,
    check_pixel_size,
    input_name,
    is_url,
    open_input,
)
from aerialseg.errors import AerialsegError, ConfigError, printable
from aerialseg.files import (
    NAME_MAX,
    OutputSet,
    earlier_outputs,
    finish_sets,
    outputs_among,
    sweep,
)
from aerialseg.inference.areas import AreaMeasure
from aerialseg.inference.predict import (
    ChunkResult,
    Predictor,
    check_batch_size,
    check_overlap,
)
from aerialseg.inference.vector import MAX_MIN_AREA, polygonize, sieve_size
from aerialseg.inference.writers import (
    PNG_MAX_SIDE,
    RasterOutputs,
    area_table,
    aux_path,
    write_areas,
)
from aerialseg.models.spec import ModelSpec

RASTER_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
GDAL_CACHE_MB = 64  # a row band touches ~8 MB of 256 px tiles
# Memory grows with a scene's width times one window (predict.py): a 2,000,000 x 20 px
# TIFF of 125 KB would take 49 GB at 512 px windows; some 170,000 px across fit.
MAX_ROW_BAND_BYTES = 4 * 2**30


@dataclass
class PredictOptions:
    # + color, overlay, confidence, image (the input as 8-bit RGB, for a viewer)
    outputs: frozenset[str] = frozenset({"classes", "areas"})
    class_format: str = "auto"  # auto: GeoTIFF for georeferenced or TIFF input, else PNG
    vector: str | None = None  # geojson | gpkg
    simplify: float = 0.0
    # with vector: regions smaller (m²) merge into a neighbour; None: MIN_AREA_PIXELS; 0 keeps all
    min_area: float | None = None
    bands: tuple[int, ...] | None = None
    pixel_size: float | None = None  # None: the model's, else the input's own
    tta: bool = False
    batch_size: int | None = None  # None: default_batch_size(device, the engine's precision)
    overlap: float | None = None  # None: the model's own
    progress: bool = True  # a bar per large scene (off in the server: its log is no terminal)
    # refuse larger, wider or longer inputs, from their header (the server)
    max_pixels: int | None = None
    max_side: int | None = None
    max_aspect: float | None = None
    band_flag: str = "--bands"  # how the caller's user chooses bands, for error messages
    pixel_flag: str | None = "--pixel-size"  # likewise; None: the model's, not settable
    vector_flag: str = "--vector"  # how the caller's user asks for polygons, likewise
    driver: str | None = None  # the one GDAL driver allowed to read inputs (the server)

    def __post_init__(self) -> None:
        # checked as the options are made, for every caller, before a file is opened or a
        # folder made
        band_numbers(self.bands, self.band_flag)
        if self.pixel_size is not None:
            check_pixel_size(self.pixel_size)
        check_batch_size(self.batch_size)
        check_overlap(self.overlap)
        for name, value in (("simplify", self.simplify), ("min_area", self.min_area)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} {value!r}: give a size of 0 or more")
        shaping = {"simplify": self.simplify != 0, "min_area": self.min_area is not None}
        given = [name for name, on in shaping.items() if on]
        if given and self.vector is None:  # not ignored without a word (a review)
            raise ConfigError(
                f"{' and '.join(given)}: {'shapes' if len(given) == 1 else 'shape'} the"
                f" polygons; give {self.vector_flag} too"
            )
        if self.min_area is not None and self.min_area > MAX_MIN_AREA:
            raise ConfigError(
                f"min_area {self.min_area!r}: more than the Earth's surface"
                f" ({MAX_MIN_AREA / 1e6:,.0f} km²): give the area of the smallest region to keep"
            )


@dataclass
class PredictSummary:
    done: dict[str, dict[str, Path]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def expand_inputs(items: list[str]) -> list[Path]:
    """Files, folders (their images, not recursive) and glob patterns -> sorted files, each
    once however many ways it was named (``a/x.jpg``, ``./a/x.jpg``, ``/abs/a/x.jpg``).
    What is named as an image but is no file (a broken link, a loop of links) is kept, to
    be reported when it is predicted (a review: skipped without a word)."""
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found.extend(
                p for p in path.iterdir() if not p.is_dir() and p.suffix.lower() in RASTER_SUFFIXES
            )
        elif any(ch in item for ch in "*?[") and not path.exists():
            found.extend(Path(p) for p in glob.glob(item, recursive=True) if not Path(p).is_dir())
        else:
            found.append(path)  # a missing file is reported when it is predicted
    unique: dict[str, Path] = {}
    for path in found:
        # realpath, not resolve(): a loop of symbolic links is the input's error, said when
        # it is predicted, not a crash here
        unique.setdefault(os.path.realpath(path), path)  # the first spelling given is kept
    return sorted(unique.values())


def output_names(paths: list[Path]) -> dict[Path, str]:
    """The name each input's outputs start with: its stem, or for inputs sharing a stem
    their folders below the group's common folder too, joined by ``__``
    (``Tile 6__images__x``), and where that still collides (``x.jpg``, ``x.tif``) the suffix."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        groups[path.stem].append(path)
    names: dict[Path, str] = {}
    for stem, group in groups.items():
        if len(group) == 1:
            names[group[0]] = stem
            continue
        root = Path(os.path.commonpath([p.absolute().parent for p in group]))
        named = {p: "__".join((*p.absolute().parent.relative_to(root).parts, stem)) for p in group}
        if len(set(named.values())) < len(group):
            named = {p: f"{n}_{p.suffix.lstrip('.').lower()}" for p, n in named.items()}
        names.update(named)
    # A name made above may be another input's stem (x.jpg's x_jpg, and x_jpg.tif): the
    # later input, in path order, takes a number, so that no two write the same files.
    taken: set[str] = set()
    for path in sorted(names, key=str):
        name, k = names[path], 2
        while name in taken:
            name, k = f"{names[path]}_{k}", k + 1
        names[path] = name
        taken.add(name)
    return names


def without_own_outputs(paths: list[Path], out: str | os.PathLike) -> list[Path]:
    """``paths`` less the files in ``out`` that are another input's outputs
    (files.outputs_among), with a note of how many."""
    outputs = outputs_among(paths, output_names(paths), out)
    if outputs:
        print(
            f"--out {printable(str(out))}: left out {len(outputs)} input(s) there that are the"
            " other inputs' outputs (NAME_classes.tif and the like)",
            file=sys.stderr,
        )
    return [p for p in paths if p not in outputs]


def url_names(urls: list[str], taken: set[str]) -> dict[str, str]:
    """The output name of each URL input: its file name's stem, with its host and folders
    too where that stem is taken by another input, and a number where even that is (URLs
    that differ in their query alone, as presigned links do: a review found three written
    over one another's outputs)."""
    stems = [input_name(u).stem for u in urls]
    names: dict[str, str] = {}
    for url, stem in zip(urls, stems, strict=True):
        if stem in taken or stems.count(stem) > 1:
            where = urlsplit(url)
            host = f"{where.hostname}_{where.port}" if where.port else where.hostname or ""
            host_and_path = f"{host}/{where.path}".strip("/")  # no user:password@
            stem = "__".join(PurePosixPath(host_and_path).with_suffix("").parts)
        name, k = stem, 2
        while name in taken:
            name, k = f"{stem}_{k}", k + 1
        names[url] = name
        taken.add(name)
    return names


def named_inputs(
    items: list[str], out: str | os.PathLike | None = None
) -> tuple[list[Path | str], dict[Path | str, str]]:
    """Inputs (local files, folders, globs: expand_inputs; URLs kept as strings, never
    folded into a local path) with each one's output name; given the folder they are
    predicted into, ``out``, less those that are the others' outputs there."""
    local = expand_inputs([i for i in items if not is_url(i)])
    if out is not None:
        local = without_own_outputs(local, out)
    names: dict[Path | str, str] = {p: n for p, n in output_names(local).items()}
    urls = list(dict.fromkeys(i for i in items if is_url(i)))
    names.update(url_names(urls, set(names.values())))
    return [*local, *urls], names


def shard(paths: list, spec: str | None) -> list:
    """``i/n``: every n-th input starting at i (0-based), for splitting across processes."""
    if spec is None:
        return paths
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise AerialsegError(f"--shard {spec!r}: use i/n, e.g. 0/4 ... 3/4") from None
    if not 0 <= i < n:
        raise AerialsegError(f"--shard {spec!r}: i must be in 0..n-1")
    return paths[i::n]


def prepare_out_dir(out: Path) -> None:
    """Create ``out``, check that it takes files, and remove what killed runs left there."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if out.exists() and not out.is_dir():  # a review: "(File exists)"
            raise AerialsegError(f"--out {out}: a file, not a folder") from None
        raise AerialsegError(f"--out {out}: cannot create the folder ({err.strerror})") from None
    finish_sets(out)  # first: a killed run's set is completed from its temporary files
    sweep(out)
    probe = out / f".aerialseg-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise AerialsegError(f"--out {out}: cannot write there ({err.strerror})") from None


def predict_one(*args, **kwargs) -> dict[str, Path]:
    """Predict one input into ``out``; returns the files written, by kind.

    GDAL's block cache defaults to 5 % of RAM and fills up while a large GeoTIFF is
    written; capped here, it keeps the memory of a large scene bounded.
    """
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        return _predict_one(*args, **kwargs)


def _open(path: Path | str, opts: PredictOptions, spec: ModelSpec) -> RasterInput:
    """The input, with the user's bands and pixel size, else the model's. A model's pixel
    size cannot apply to an image without georeference: that one is read as it is."""
    bands, flag = opts.bands or spec.band_tuple, opts.band_flag

    limits: dict[str, Any] = {"max_pixels": opts.max_pixels, "max_side": opts.max_side}
    limits.update(max_aspect=opts.max_aspect, driver=opts.driver, pixel_flag=opts.pixel_flag)

    def opened(pixel_size: float | None) -> RasterInput:
        return open_input(path, bands, flag, pixel_size, models_bands=not opts.bands, **limits)

    if opts.pixel_size or not spec.pixel_size:
        raster = opened(opts.pixel_size)
    else:
        try:
            raster = opened(spec.pixel_size)
        except UngeoreferencedError:
            tqdm.write(
                f"aerialseg: {input_name(path).name} has no georeference; predicted at its own"
                f" pixel size, not the model's {spec.pixel_size:g}",
                file=sys.stderr,
            )
            raster = opened(None)
    name = input_name(path).name
    for note in (resolution_note(raster, spec.ground_resolution, name), turned_note(raster, name)):
        if note:
            tqdm.write(f"aerialseg: {note}", file=sys.stderr)
    return raster


def turned_note(raster: RasterInput, name: str) -> str | None:
    """One line where a photo's EXIF says to show it turned or mirrored: GDAL (and GIS
    software) read its pixels as stored, and so do the outputs, which a photo viewer then
    shows turned against it (a review)."""
    orientation = raster.dataset.tags().get("EXIF_Orientation", "1").strip()
    if orientation in ("1", ""):
        return None
    return (
        f"{name}: its EXIF orientation ({orientation}) asks viewers to show it turned or"
        " mirrored; predicted as its pixels are stored, as GIS software shows them, and so"
        " are its outputs"
    )


def resolution_note(
    raster: RasterInput, trained: tuple[float, float] | None, name: str
) -> str | None:
    """One line when a georeferenced input's pixels are more than 2x finer or coarser than
    the ground resolution the model was trained at (``trained``: [finest, coarsest] m)."""
    ds = raster.dataset
    if trained is None or ds.crs is None:
        return None
    measure = AreaMeasure.of(ds, name)
    side = math.sqrt(measure.pixel_area())
    finest, coarsest = trained
    if finest / 2 <= side <= coarsest * 2:
        return None
    if side == 0:  # no length in CRS units measures a metre there (a review: ZeroDivisionError)
        return f"{name} has pixels that measure 0 m, finer than its coordinates tell apart:" + (
            " check its georeference"
        )
    middle = (finest + coarsest) / 2
    return (
        f"{name} has pixels of {side:.3g} m; the model was trained on {finest:g}-{coarsest:g}"
        f" m pixels and sees objects at that scale: resample it with --pixel-size"
        f" {measure.map_length(middle):.3g} (CRS units; {middle:g} m)"
    )


def uncalibrated_note(model: str, spec: ModelSpec, opts: PredictOptions) -> str | None:
    """One line when confidence rasters are asked of a model with no fitted temperature (a
    checkpoint, or a run that had no time left to fit one): they hold the network's own
    probabilities, which are not the calibrated ones a model.pt has (a review)."""
    if "confidence" not in opts.outputs or spec.confidence_temperature is not None:
        return None
    return (
        f"{model} has no fitted confidence temperature (checkpoints have none; a run's"
        " model.pt has one): the confidence rasters hold the network's own probabilities"
    )


def check_row_band(
    name: str, size: tuple[int, int], bands: int, spec: ModelSpec, num_classes: int
) -> None:
    """Refuse an image of ``size`` (width, height) too wide to predict in row bands
    (MAX_ROW_BAND_BYTES): a file of predict_files or the server, or an image in memory."""
    width, height = size
    if spec.input_mode == "resize" or max(width, height) <= spec.window:
        return  # one pass over a window-sized image
    # float32 input values twice (read, padded) and a score per class, a window high
    per_column = spec.window * (2 * bands + num_classes) * 4
    need = width * per_column
    if need > MAX_ROW_BAND_BYTES:
        raise TooLargeInputError(
            f"{name}: the image is {width:,} px wide: predicting it in rows of"
            f" {spec.window} px would take {need / 2**30:,.0f} GiB of memory; the limit is"
            f" {MAX_ROW_BAND_BYTES // 2**30} GiB, {MAX_ROW_BAND_BYTES // per_column:,} px"
            " wide: cut it into narrower scenes (gdal_translate -srcwin)"
        )


def check_name_fits(name: str, shown: str, opts: PredictOptions) -> None:
    """Refuses an input whose outputs' names (with GDAL's .aux.xml beside a GeoTIFF) would
    pass the bytes a file name may have (a review: an OSError, and the inputs after it not
    predicted)."""
    tails = [f"_{kind}.tif.aux.xml" for kind in opts.outputs] + ["_areas.json"]
    tails += ["_polygons.geojson"] if opts.vector else []
    longest = max(len(os.fsencode(f"{name}{tail}")) for tail in tails)
    if longest > NAME_MAX:
        raise InputError(
            f"{printable(shown)}: the names of its outputs would be {longest} bytes long, past"
            f" the {NAME_MAX} a file name may have: give it a shorter name"
        )


def class_format(fmt: str, raster: RasterInput, suffix: str) -> str:
    """``tif`` or ``png``: ``auto`` is GeoTIFF for georeferenced or TIFF input, else PNG;
    a raster that a PNG cannot hold is written as TIFF whatever was asked."""
    if max(raster.width, raster.height) > PNG_MAX_SIDE:
        return "tif"
    if fmt == "auto":
        return "tif" if raster.georeferenced or suffix in (".tif", ".tiff") else "png"
    return fmt


def _predict_one(
    predictor: Predictor,
    path: Path | str,
    out: Path,
    opts: PredictOptions,
    name: str | None = None,
    rows: Callable[..., Iterable[ChunkResult]] | None = None,
) -> dict[str, Path]:
    """``rows``: where the predicted rows come from (default: ``predictor.rows`` over the
    whole scene; distributed.py passes the blocks that workers predicted)."""
    shown = input_name(path)  # a URL's file name too
    base = out / (name or shown.stem)
    check_name_fits(base.name, shown.name, opts)
    spec, classes = predictor.spec, predictor.classes
    # every option of the predictor here, where each file is predicted: the server calls
    # this alone, and ignored tta=true where predict_files set it (a review)
    predictor = predictor.with_options(
        tta=opts.tta, overlap=opts.overlap, batch_size=opts.batch_size
    )
    with _open(path, opts, spec) as raster:
        size = (raster.width, raster.height)
        check_row_band(str(raster.path), size, len(raster.bands), spec, classes.num_classes)
        fmt = class_format(opts.class_format, raster, shown.suffix.lower())
        if fmt != opts.class_format != "auto":
            tqdm.write(
                f"aerialseg: {shown.name} is {raster.width:,} x {raster.height:,} px, more"
                f" than a PNG holds ({PNG_MAX_SIDE:,} a side): its outputs are TIFF",
                file=sys.stderr,
            )
        # With polygons, regions under min_area merge into their neighbours in the raster
        # first, so that the raster and its polygons agree and leave no holes.
        speck = sieve_size(raster.dataset, opts.min_area) if opts.vector else 0
        if opts.vector == "geojson" and raster.dataset.crs is not None:
            # GeoJSON is WGS84: said now, not once it is predicted
            AreaMeasure.of(raster.dataset, shown.name).check_on_earth()
        outputs = RasterOutputs(
            raster,
            classes,
            base,
            fmt=fmt,
            color="color" in opts.outputs,
            overlay="overlay" in opts.outputs,
            confidence="confidence" in opts.outputs,
            sieve_pixels=speck,
            image="image" in opts.outputs,
        )
        bands = (rows or predictor.rows)(raster, confidence="confidence" in opts.outputs)
        try:
            # A large scene is long work of its own: it gets its own bar, in rows.
            with tqdm(
                total=raster.height,
                desc=printable(shown.name),
                unit="row",
                leave=False,
                disable=not opts.progress or raster.height <= spec.window,
            ) as bar:
                for result in bands:
                    outputs.write(result)
                    bar.update(result.ids.shape[0])
        except BaseException:
            outputs.abort()
            raise
        if not outputs.counts.any():  # a review: all nodata, said nowhere
            tqdm.write(
                f"aerialseg: {printable(shown.name)} has no data (every pixel is nodata or"
                " NaN): its outputs are nodata throughout",
                file=sys.stderr,
            )
        # Every output of this input is one set, renamed into place together at the end.
        outputs_set = OutputSet(out, base.name)
        try:
            written = outputs.finish(outputs_set)
            if "areas" in opts.outputs:
                written.update(write_areas(area_table(outputs), base, outputs_set))
        except BaseException:
            outputs_set.abort()
            raise
        grid = (raster.dataset.crs, raster.dataset.transform)  # the classes' grid
    try:
        if opts.vector:
            written |= polygonize(
                outputs_set.staged(written["classes"]),
                classes,
                base,
                opts.vector,
                simplify=opts.simplify,
                min_area=0,  # the raster is sieved already
                into=outputs_set,
                grid=grid,
            )
        if "classes" not in opts.outputs:  # written only for the polygons
            raster_file = written.pop("classes")
            for path in (raster_file, written.pop("classes_style"), aux_path(raster_file)):
                outputs_set.drop(path)
        for stale in earlier_outputs(out, base.name, [*outputs_set.moves, *outputs_set.drops]):
            outputs_set.drop(stale)
        outputs_set.commit()
    except BaseException:
        outputs_set.abort()
        raise
    return written


def predict_files(
    predictor: Predictor,
    inputs: list[Path | str],
    out: Path,
    opts: PredictOptions,
    names: dict[Path | str, str] | None = None,
) -> PredictSummary:
    """Predict ``inputs`` into ``out``. ``names``: output names by input (default
    ``output_names(inputs)``; a sharded run passes those of all its shards' inputs)."""
    names = names or named_inputs([os.fspath(i) for i in inputs])[1]
    prepare_out_dir(out)
    summary = PredictSummary()
    with torch.inference_mode():
        for path in tqdm(inputs, desc="predict", unit="image", disable=len(inputs) < 2):
            try:
                summary.done[str(path)] = predict_one(predictor, path, out, opts, names[path])
            except InputError as err:
                summary.failed[str(path)] = str(err)
                if len(inputs) > 1:  # a lone input's error is the command's, reported once
                    tqdm.write(f"aerialseg: skipped {printable(err)}", file=sys.stderr)
    return summary
