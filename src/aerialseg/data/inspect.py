"""Dataset statistics: pairs per tile, image sizes, pixel share per class, unknown colours
or values."""

from __future__ import annotations

from collections import Counter

import numpy as np
from tqdm import tqdm

from aerialseg.data.classes import ClassTable, check_unknown_share, encode_mask
from aerialseg.data.source import MAX_PAIR_PIXELS, DatasetSource, OversizeImageError
from aerialseg.errors import ClassTableError, DatasetError

# how a user resamples masks of another size, said where inspect lists them
RESIZE_HINT = "'aerialseg train --resize-masks' (and evaluate's)"


def inspect_dataset(
    source: DatasetSource,
    table: ClassTable,
    max_unknown: float,
    bands: tuple[int, ...] | None = None,
) -> dict:
    """Read every pair once and summarise it, with every problem found (``problems``:
    images without a mask, masks of another size or grid, unreadable files, images too
    large to decode, masks over the unknown limit); pairs with a problem are left out of
    the figures. A source made with ``strict=False`` lists its images without a mask too."""
    problems = [
        _problem("no-mask", image, f"{image}: image has no mask (expected {expected})")
        for image, expected in source.unpaired
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
    for pair in tqdm(source.pairs, desc="inspect", unit="pair", leave=False, disable=None):
        try:
            problem = source.pair_problem(pair, flag=RESIZE_HINT)
            if problem:
                problems.append(_problem("size", pair.mask, problem))
                continue
            for rel in (pair.id, pair.mask):  # decoded whole below: not past this
                w, h = source.image_size(rel)
                if w * h > MAX_PAIR_PIXELS:
                    raise OversizeImageError(
                        f"{rel}: {w:,} x {h:,} px, more than the {MAX_PAIR_PIXELS:,} pixels"
                        " a dataset image may have; cut it into tiles or remove it"
                    )
            source.read_image(pair, bands, flag="--bands")  # decodes fully: fails if truncated
            mask = source.read_mask(pair, table.by_value)
        except OversizeImageError as err:
            problems.append(_problem("oversize", str(err).split(":")[0], str(err)))
            continue
        except DatasetError as err:
            file = pair.mask if pair.mask in str(err) else pair.id  # a zip's: archive.zip:ROOT/...
            problems.append(_problem("unreadable", file, str(err)))
            continue
        try:
            encoded = encode_mask(mask, table, pair.mask)
            check_unknown_share(encoded, pair.mask, max_unknown)
        except ClassTableError as err:
            problems.append(_problem("classes", pair.mask, str(err)))
            continue
        image = source.header(pair.id)
        image_modes[image.mode] += 1
        grids[image.describe_grid() or "none"] += 1
        if image.grid:
            pixel_sizes[round(abs(image.grid[1].a), 6)] += 1
        mask_modes[source.header(pair.mask).mode] += 1
        h, w = encoded.ids.shape
        class_pixels += np.bincount(encoded.ids.ravel(), minlength=256)[: table.num_classes]
        unknown["values" if encoded.by_value else "colors"].update(
            {encoded.describe(code): n for code, n in encoded.unknown.items()}
        )
        ignored += encoded.ignored
        total += h * w
        tile = tiles.setdefault(pair.group or ".", {"pairs": 0, "sizes": Counter()})
        tile["pairs"] += 1
        tile["sizes"][f"{w}x{h}"] += 1
    labelled = int(class_pixels.sum())
    return {
        "path": str(source.path),
        "root": source.root,
        "pairs": len(source.pairs),
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
