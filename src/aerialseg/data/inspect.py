"""Dataset statistics and every problem, in one run: scenes per tile, image sizes, pixel
share per class, unknown colours or values. Any scene the catalog opens is checked: pairs
of any layout, image rasters with polygons or a class raster."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
from tqdm import tqdm

from aerialseg.data.catalog import Catalog
from aerialseg.data.classes import ClassTable, check_unknown_share
from aerialseg.data.labels import GridMismatchError, OversizeImageError
from aerialseg.data.scenes import Flags, Reading
from aerialseg.errors import ClassTableError, DatasetError

# how a user resamples masks of another size, said where inspect lists them
RESIZE_HINT = "'aerialseg train --resize-masks' (and evaluate's)"
LOOKING = Reading(flags=Flags(resize_masks=RESIZE_HINT))


def inspect_dataset(
    catalog: Catalog,
    table: ClassTable,
    max_unknown: float,
    bands: tuple[int, ...] | None = None,
) -> dict:
    """Read every scene once and summarise it, with every problem found (``problems``:
    images without a mask, masks of another size or grid, unreadable files, images too
    large to decode, masks over the unknown limit, images without data); scenes with a
    problem are left out of the figures. A catalog opened with ``strict=False`` lists its
    images without a mask too. Bands are read only where ``bands`` names them: any band
    count can be checked."""
    # files named as in the dataset, a zip's too (its errors say archive.zip:ROOT/FILE)
    in_zip = f"{catalog.path}:" + ("" if catalog.root == "." else f"{catalog.root}/")
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
    units: Counter = Counter()  # of the pixel sizes: degrees and metres do not compare
    mask_modes: Counter = Counter()
    # disable=None: no bar where stderr is no terminal, so a problem is one line there
    for entry in tqdm(catalog.entries, desc="inspect", unit="scene", leave=False, disable=None):
        try:
            look = entry.look(replace(LOOKING, bands=bands))
            encoded = look.encoded
            check_unknown_share(encoded, entry.mask_name, max_unknown)
        except GridMismatchError as err:
            problems.append(_problem("size", entry.mask_name, str(err)))
            continue
        except OversizeImageError as err:
            problems.append(_problem("oversize", str(err).split(":")[0], str(err)))
            continue
        except ClassTableError as err:
            problems.append(_problem("classes", entry.mask_name, str(err)))
            continue
        except DatasetError as err:
            file = entry.mask_name if entry.mask_name in str(err) else entry.name
            problems.append(_problem("unreadable", file.removeprefix(in_zip), str(err)))
            continue
        if look.no_data == encoded.ids.size:  # a review: blamed on its masks' pixels
            message = f"{entry.name}: the image has no data (every pixel is nodata or NaN)"
            problems.append(_problem("no-data", entry.name, message))
            continue
        image_modes[look.image_mode] += 1
        grids[look.grid or "none"] += 1
        if look.pixel_size:
            pixel_sizes[look.pixel_size] += 1
            units[look.units] += 1
        mask_modes[look.mask_mode] += 1
        counted = np.bincount(encoded.ids.ravel(), minlength=256)[: table.num_classes]
        class_pixels += counted * look.weight
        unknown["values" if encoded.by_value else "colors"].update(
            {encoded.describe(code): n * look.weight for code, n in encoded.unknown.items()}
        )
        ignored += encoded.ignored * look.weight
        total += encoded.ids.size * look.weight
        tile = tiles.setdefault(look.group, {"pairs": 0, "sizes": Counter()})
        tile["pairs"] += 1
        tile["sizes"][f"{look.size[0]}x{look.size[1]}"] += 1
    labelled = int(class_pixels.sum())
    if total and not labelled:  # a review: such masks trained a model of nothing, exit 0
        problems.append(
            _problem(
                "unlabelled",
                catalog.path,
                f"{catalog.path}: no pixel of its masks is of a class (each is nodata, an"
                " ignore value or colour, or outside the labelled area): nothing to train on",
            )
        )
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
        "pixel_size_units": dict(units),
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
    for kind in ("image", "mask"):  # none where every scene has a problem
        modes = ", ".join(f"{m} x{n}" for m, n in report[f"{kind}_modes"].items())
        if modes:
            lines.append(f"{kind} files: {modes}")
    if report["image_grids"] and set(report["image_grids"]) != {"none"}:
        grids = ", ".join(f"{g} x{n}" for g, n in report["image_grids"].items())
        lines.append(f"georeference: {grids}")
    if len(report["pixel_size_units"]) > 1:  # no one pixel_size= reads them all alike
        lines.append(
            f"CRSs of different units ({', '.join(report['pixel_size_units'])}): pixel sizes"
            " do not compare; reproject the scenes to one CRS first (gdalwarp -t_srs)"
        )
    elif len(report["pixel_sizes"]) > 1:
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
        f"pixels matching no class or the image's nodata: {report['unmatched_pixels']:,}"
        f" ({report['unmatched_share']:.2%});"
        f" of these ignored as declared: {report['ignore_color_pixels']:,}"
    )
    if "polygons" in report["mask_modes"]:  # not unknown codes (a review): no label at all
        lines.append(
            "  of polygon labels: pixels outside the labelled area, or that no polygon covers"
            " where no class is the background; training leaves them out"
        )
    for u in report["unknown_colors"]:
        lines.append(f"  unknown colour {u['color']}: {u['pixels']:,} px")
    for u in report["unknown_values"]:
        lines.append(f"  unknown value {u['value']}: {u['pixels']:,} px")
    problems = report["problems"]
    of_pairs = [p for p in problems if p["kind"] in PROBLEM_KINDS]  # not the dataset's
    if of_pairs:
        kinds = Counter(p["kind"] for p in of_pairs)
        lines.append(
            f"{len(of_pairs)} problem(s), pairs left out of the figures above: "
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
