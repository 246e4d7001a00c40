"""Dataset statistics and every problem, in one run: scenes per tile, image sizes, pixel
share per class, unknown colours or values. Any scene the catalog opens is checked: pairs
of any layout, image rasters with polygons or a class raster."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from aerialseg.data.catalog import Catalog, Entry
from aerialseg.data.classes import ClassTable, EncodedMask, check_unknown_share, encode_mask
from aerialseg.data.labels import GridMismatchError, RasterLabels
from aerialseg.data.raster import InputError, open_input
from aerialseg.data.scenes import PlainPair, RasterScene, Reading
from aerialseg.data.source import MAX_PAIR_PIXELS, OversizeImageError
from aerialseg.errors import ClassTableError, DatasetError

# how a user resamples masks of another size, said where inspect lists them
RESIZE_HINT = "'aerialseg train --resize-masks' (and evaluate's)"
# labels of a raster scene are counted on every k-th pixel, k the least that keeps a
# scene's count under this: a 20,000 px scene is checked in seconds, the shares to 0.1 %
COUNTED_PIXELS = 64_000_000


@dataclass
class Look:
    """What inspect learns of one scene."""

    encoded: EncodedMask
    weight: int  # pixels each counted label stands for
    image_mode: str
    grid: str | None  # CRS and pixel size
    pixel_size: float | None
    mask_mode: str
    group: str
    size: tuple[int, int]  # (width, height)


def _look_at_pair(entry: PlainPair, table: ClassTable, bands) -> Look:
    source, pair = entry.source, entry.pair
    problem = source.pair_problem(pair, flag=RESIZE_HINT)
    if problem:
        raise GridMismatchError(problem)
    for rel in (pair.id, pair.mask):  # decoded whole below: not past this
        w, h = source.image_size(rel)
        if w * h > MAX_PAIR_PIXELS:
            raise OversizeImageError(
                f"{rel}: {w:,} x {h:,} px, more than the {MAX_PAIR_PIXELS:,} pixels"
                " a dataset image may have; cut it into tiles or remove it"
            )
    source.read_image(pair, bands, flag="--bands")  # decodes fully: fails if truncated
    mask = source.read_mask(pair, table.by_value)
    encoded = encode_mask(mask, table, pair.mask)
    image, mask_mode = source.header(pair.id), source.header(pair.mask).mode
    return Look(encoded, 1, image.mode, None, None, mask_mode, entry.group, image.size)


def _look_at_raster(entry: RasterScene, bands) -> Look:
    grid = entry.grid
    try:  # the header, and a corner and the last block decoded: a truncated file fails
        raster = open_input(entry.path, bands or (1,), "--bands", entry.pixel_size,
                            whole_read_pixels=0)  # fmt: skip
    except InputError as err:
        raise DatasetError(str(err).replace(entry.path, entry.name, 1)) from None
    ds = raster.dataset
    image_mode = f"{ds.count}x {ds.dtypes[0]}"
    raster.close()
    entry.check(Reading())  # a mask of another size or grid
    step = 1
    while (grid.height // step) * (grid.width // step) > COUNTED_PIXELS:
        step += 1
    encoded = entry.labels.every(step)
    labels = entry.labels
    mask_mode = "polygons"
    if isinstance(labels, RasterLabels):
        dataset = labels.dataset()
        mask_mode = f"{dataset.count}x {dataset.dtypes[0]}"
    described, pixel = None, None
    if grid.crs is not None:
        pixel = round(abs(grid.transform.a), 6)
        described = f"{grid.crs.to_string()}, {pixel:g} x {abs(grid.transform.e):g}"
    return Look(encoded, step * step, image_mode, described, pixel, mask_mode, entry.group,
                (grid.width, grid.height))  # fmt: skip


def _look(entry: Entry, table: ClassTable, bands) -> Look:
    if isinstance(entry, PlainPair):
        return _look_at_pair(entry, table, bands)
    return _look_at_raster(entry, bands)


def inspect_dataset(
    catalog: Catalog,
    table: ClassTable,
    max_unknown: float,
    bands: tuple[int, ...] | None = None,
) -> dict:
    """Read every scene once and summarise it, with every problem found (``problems``:
    images without a mask, masks of another size or grid, unreadable files, images too
    large to decode, masks over the unknown limit); scenes with a problem are left out of
    the figures. A catalog opened with ``strict=False`` lists its images without a mask
    too. Bands are read only where ``bands`` names them: any band count can be checked."""
    problems = [
        _problem("no-mask", image, f"{image}: image has no mask (expected {expected})")
        for image, expected in catalog.unpaired
    ]
    class_pixels = np.zeros(table.num_classes, dtype=np.int64)
    unknown: dict[str, Counter] = {"colors": Counter(), "values": Counter()}
    ignored = 0
    total = 0
    tiles: dict[str, dict] = {}
    image_modes: Counter = Counter()
    grids: Counter = Counter()  # CRS and pixel size: one dataset, one ground resolution
    pixel_sizes: Counter = Counter()
    mask_modes: Counter = Counter()
    # disable=None: no bar where stderr is no terminal, so a problem is one line there
    for entry in tqdm(catalog.entries, desc="inspect", unit="scene", leave=False, disable=None):
        try:
            look = _look(entry, table, bands)
            encoded = look.encoded
            check_unknown_share(encoded, _mask_name(entry), max_unknown)
        except GridMismatchError as err:
            problems.append(_problem("size", _mask_name(entry), str(err)))
            continue
        except OversizeImageError as err:
            problems.append(_problem("oversize", str(err).split(":")[0], str(err)))
            continue
        except ClassTableError as err:
            problems.append(_problem("classes", _mask_name(entry), str(err)))
            continue
        except DatasetError as err:
            problems.append(_problem("unreadable", _file(entry, str(err)), str(err)))
            continue
        image_modes[look.image_mode] += 1
        grids[look.grid or "none"] += 1
        if look.pixel_size:
            pixel_sizes[look.pixel_size] += 1
        mask_modes[look.mask_mode] += 1
        counted = np.bincount(encoded.ids.ravel(), minlength=256)[: table.num_classes]
        class_pixels += counted * look.weight
        unknown["values" if encoded.by_value else "colors"].update(
            {encoded.describe(code): n * look.weight for code, n in encoded.unknown.items()}
        )
        ignored += encoded.ignored * look.weight
        total += encoded.ids.size * look.weight
        tile = tiles.setdefault(look.group or ".", {"pairs": 0, "sizes": Counter()})
        tile["pairs"] += 1
        tile["sizes"][f"{look.size[0]}x{look.size[1]}"] += 1
    labelled = int(class_pixels.sum())
    return {
        "path": catalog.path,
        "root": catalog.root,
        "pairs": len(catalog.scenes),
        "problems": problems,
        "tiles": {
            name: {"pairs": t["pairs"], "sizes": dict(t["sizes"])}
            for name, t in sorted(tiles.items())
        },
        "image_modes": dict(image_modes),
        "image_grids": dict(grids),
        "pixel_sizes": {str(size): n for size, n in pixel_sizes.most_common()},
        "mask_modes": dict(mask_modes),
        "pixels": total,
        "classes": [
            {
                "name": c.name,
                "mask_color": c.mask_color,
                "mask_value": c.mask_value,
                "pixels": int(n),
                "share": n / total if total else 0.0,
            }
            for c, n in zip(table.classes, class_pixels, strict=True)
        ],
        "labelled_pixels": labelled,
        "ignore_color_pixels": ignored,  # or ignore values
        "unmatched_pixels": total - labelled,
        "unmatched_share": (total - labelled) / total if total else 0.0,
        "unknown_colors": [
            {"color": code, "pixels": n} for code, n in unknown["colors"].most_common(10)
        ],
        "unknown_values": [
            {"value": code, "pixels": n} for code, n in unknown["values"].most_common(10)
        ],
    }


def _mask_name(entry: Entry) -> str:
    if isinstance(entry, PlainPair):
        return entry.pair.mask
    try:
        labels = entry.labels
    except DatasetError:  # the image's header is unreadable
        return entry.name
    return labels.name if isinstance(labels, RasterLabels) else entry.name


def _file(entry: Entry, message: str) -> str:
    """The file a problem is with: the mask where the message names it, else the image."""
    mask = _mask_name(entry)
    return mask if mask in message else entry.name if isinstance(entry, RasterScene) else entry.id


def _problem(kind: str, file: str, message: str) -> dict:
    return {"kind": kind, "file": file, "message": message}


def format_report(report: dict) -> str:
    lines = [
        f"dataset: {report['path']} (root: {report['root']})",
        f"pairs: {report['pairs']} in {len(report['tiles'])} tile(s)",
    ]
    for name, tile in report["tiles"].items():
        sizes = ", ".join(f"{s} x{n}" for s, n in tile["sizes"].items())
        lines.append(f"  {name:<12} {tile['pairs']:>3} pairs  {sizes}")
    for kind in ("image", "mask"):
        modes = ", ".join(f"{m} x{n}" for m, n in report[f"{kind}_modes"].items())
        lines.append(f"{kind} files: {modes}")
    if set(report["image_grids"]) != {"none"}:
        grids = ", ".join(f"{g} x{n}" for g, n in report["image_grids"].items())
        lines.append(f"georeference: {grids}")
    if len(report["pixel_sizes"]) > 1:
        common = next(iter(report["pixel_sizes"]))
        lines.append(
            f"several pixel sizes: train at one with pixel_size= (the most common here:"
            f" pixel_size={common})"
        )
    lines.append(f"pixels: {report['pixels']:,}")
    lines.append(f"  {'class':<12} {'colour':<8} {'value':>5} {'share':>7}")
    for c in report["classes"]:
        value = "" if c["mask_value"] is None else c["mask_value"]
        lines.append(f"  {c['name']:<12} {c['mask_color'] or '':<8} {value:>5} {c['share']:>7.2%}")
    lines.append(
        f"pixels matching no class: {report['unmatched_pixels']:,}"
        f" ({report['unmatched_share']:.2%});"
        f" of these ignored as declared: {report['ignore_color_pixels']:,}"
    )
    for u in report["unknown_colors"]:
        lines.append(f"  unknown colour {u['color']}: {u['pixels']:,} px")
    for u in report["unknown_values"]:
        lines.append(f"  unknown value {u['value']}: {u['pixels']:,} px")
    problems = report["problems"]
    if problems:
        kinds = Counter(p["kind"] for p in problems)
        lines.append(
            f"{len(problems)} problem(s), pairs left out of the figures above: "
            + ", ".join(f"{n} {PROBLEM_KINDS[kind]}" for kind, n in kinds.items())
        )
        lines += [f"  {p['message']}" for p in problems]
    return "\n".join(lines)


PROBLEM_KINDS = {
    "no-mask": "image(s) without a mask",
    "size": "mask(s) of another size or grid than the image",
    "unreadable": "unreadable file(s)",
    "oversize": "image(s) too large to decode",
    "classes": "mask(s) the class table does not fit",
}
