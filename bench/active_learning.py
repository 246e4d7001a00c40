"""Label where the model doubts: does it pay? A simulation of the labelling loop on the
Dubai data (issue 32).

The protocol's training pool stands for a user's area: each pool image becomes a GeoTIFF
(placed apart in UTM), and its labels are revealed only inside chosen 256 px blocks, as
polygons (the mask polygonised inside each block) with the blocks as the labelled area:
what a labeller would draw in QGIS. Four pool images, drawn by seed, are labelled whole
and validate every run (they are never suggested, and their labels are not counted).

Per seed: the start model is trained from ImageNet (the default recipe) on ``--start``
random blocks for ``--start-budget``. Then, per strategy, ``--rounds`` rounds: suggest
``--per-round`` blocks with the latest model (``aerialseg.suggest``, the labelled area
excluded), reveal them, fine-tune from the latest model on all revealed blocks for
``--budget`` (``aerialseg train ... init_from=``), and score on the protocol's 16 test
images (``aerialseg evaluate``, fp32), which no run trains on. Every strategy starts
from the same model and the same blocks for a seed.

    nice .venv/bin/python bench/active_learning.py            # hours on 2 CPU cores
    nice .venv/bin/python bench/active_learning.py --tiles 1 2 3 4 --rounds 2  # ~1 h

writes bench/results/active_learning.json (after every step, so a stopped run keeps what
it measured) and docs/images/active-learning.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import fiona
import numpy as np
import rasterio
from affine import Affine
from common import (
    DATA,
    REPO,
    RESULTS,
    SHARED,
    aerialseg,
    decoded_scenes,
    environment,
    evaluate_run,
)
from rasterio.features import shapes
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform
from shapely.geometry import box, mapping

import aerialseg as api
from aerialseg.data.classes import DUBAI_CLASSES, IGNORE_INDEX
from aerialseg.data.source import DatasetSource

BLOCK = 256
CRS = "EPSG:32640"
PROTOCOL_SPLIT = SHARED / "benchmark" / "split.json"


def write_pool(
    folder: Path, seed: int, tiles: list[int]
) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """Pool images of ``tiles`` as GeoTIFFs in ``folder``; their class ids by scene id,
    the pool ids to label from and the validation ids."""
    protocol = json.loads(PROTOCOL_SPLIT.read_text())
    source = DatasetSource(DATA)
    wanted = {f"Tile {t}" for t in tiles}
    ids = sorted(
        p.id for p in source.pairs if p.id not in set(protocol["test"]) and p.group in wanted
    )
    items = decoded_scenes(DATA, ids, DUBAI_CLASSES, 1.0)
    masks: dict[str, np.ndarray] = {}
    for n, item in enumerate(items):
        name = item.id.replace("/", "__").replace(" ", "_").rsplit(".", 1)[0] + ".tif"
        image = item.image.numpy()
        # 1 m pixels, each image 5 km east of the last: scenes of one area that never touch
        transform = Affine(1.0, 0, 300_000.0 + 5_000 * n, 0, -1.0, 2_800_000.0)
        profile = {"driver": "GTiff", "width": image.shape[2], "height": image.shape[1]}
        profile.update(count=3, dtype="uint8", crs=CRS, transform=transform)
        with rasterio.open(folder / name, "w", **profile) as dst:
            dst.write(image)
        masks[name] = item.mask.numpy()
    names = sorted(masks)
    order = np.random.default_rng(seed).permutation(len(names))
    val = sorted(names[i] for i in order[:4])
    return masks, [n for n in names if n not in val], val


def grid(mask: np.ndarray) -> list[Window]:
    """The scene's blocks, as suggest cuts them (row by row from the top left)."""
    h, w = mask.shape
    return [
        Window(c, r, min(BLOCK, w - c), min(BLOCK, h - r))
        for r in range(0, h, BLOCK)
        for c in range(0, w, BLOCK)
    ]


def write_labels(folder: Path, masks, transforms, revealed, val) -> tuple[Path, Path]:
    """Polygons of the revealed blocks and the validation scenes, and their area."""
    labels, area = folder / "labels.gpkg", folder / "area.gpkg"
    parts = [(name, window) for name, window in revealed]
    parts += [(name, Window(0, 0, masks[name].shape[1], masks[name].shape[0])) for name in val]
    label_schema = {"geometry": "Polygon", "properties": {"class": "str"}}
    area_schema = {"geometry": "Polygon", "properties": {"scene": "str"}}
    with (
        fiona.open(labels, "w", driver="GPKG", crs=CRS, schema=label_schema) as polygons,
        fiona.open(area, "w", driver="GPKG", crs=CRS, schema=area_schema) as where,
    ):
        for name, window in parts:
            rows, cols = window.toslices()
            ids = np.ascontiguousarray(masks[name][rows, cols])
            at = window_transform(window, transforms[name])
            for geom, value in shapes(ids, mask=ids != IGNORE_INDEX, transform=at):
                name_of = DUBAI_CLASSES.names[int(value)]
                polygons.write({"geometry": geom, "properties": {"class": name_of}})
            outline = box(*window_bounds(window, transforms[name]))
            where.write({"geometry": mapping(outline), "properties": {"scene": name}})
    return labels, area


def train(folder, pool, labels, area, split, out, budget, init_from=None) -> float:
    argv = ["train", "--data", str(pool), "--labels", str(labels), "--label-field", "class"]
    argv += ["--classes", str(folder / "classes.json"), "--labelled-area", str(area)]
    argv += ["--split", str(split), "--out", str(out), "--max-time", budget]
    argv += [f"init_from={init_from}"] if init_from else []
    return round(aerialseg(argv), 1)


def score(run: Path) -> dict:
    found = evaluate_run(run, str(DATA), "test", PROTOCOL_SPLIT)
    return {"miou5": found["headline"]["miou5"], "miou6": found["headline"]["miou6"],
            "per_class_iou": found["per_class_iou"]}  # fmt: skip


def area_mp(revealed, masks) -> float:
    return round(sum(w.width * w.height for _, w in revealed) / 1e6, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--strategies", nargs="+", default=["random", "doubt", "mixed"])
    parser.add_argument("--start", type=int, default=8, help="random blocks of the start model")
    parser.add_argument("--per-round", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--start-budget", default="00:03:00")
    parser.add_argument("--budget", default="00:02:00", help="fine-tuning per round")
    parser.add_argument(
        "--tiles", type=int, nargs="+", default=list(range(1, 9)), help="tiles of the pool"
    )
    parser.add_argument("--name", default="active_learning")
    args = parser.parse_args()
    root = REPO / "runs" / f"bench-active-{time.strftime('%Y%m%d-%H%M%S')}"
    result: dict = {
        "benchmark": "labelling loop on the Dubai pool: mIoU on the protocol test images"
        " against labelled area, per strategy",
        "settings": vars(args) | {"block": BLOCK},
        "seeds": {},
    }
    out_path = RESULTS / f"{args.name}.json"

    def save() -> None:
        out_path.write_text(json.dumps({**environment(), **result}, indent=2) + "\n")

    for seed in args.seeds:
        folder = root / f"seed{seed}"
        pool = folder / "pool"
        pool.mkdir(parents=True)
        (folder / "classes.json").write_text(json.dumps(DUBAI_CLASSES.to_dict()))
        masks, names, val = write_pool(pool, seed, args.tiles)
        transforms = {}
        for name in masks:
            with rasterio.open(pool / name) as ds:
                transforms[name] = ds.transform
        split = folder / "split.json"
        split.write_text(json.dumps({"train": names, "val": val, "test": []}))
        blocks = [
            (n, w) for n in names for w in grid(masks[n]) if w.width * w.height * 2 >= BLOCK**2
        ]
        rng = np.random.default_rng(seed)
        start = [blocks[i] for i in rng.choice(len(blocks), args.start, replace=False)]
        labels, area = write_labels(folder, masks, transforms, start, val)
        run = folder / "start"
        seconds = train(folder, pool, labels, area, split, run, args.start_budget)
        first = {"area_mp": area_mp(start, masks), "seconds": seconds, **score(run)}
        result["seeds"][str(seed)] = {"val": val, "start": first, "strategies": {}}
        save()
        for strategy in args.strategies:
            revealed, model = list(start), run / "model.pt"
            rounds = []
            for k in range(1, args.rounds + 1):
                step = folder / f"{strategy}{k}"
                step.mkdir()
                _, area = write_labels(step, masks, transforms, revealed, val)
                begun = time.perf_counter()
                chosen = api.suggest(
                    [pool / n for n in names], step / "tasks.gpkg", model=model,
                    count=args.per_round, block_size=BLOCK, strategy=strategy,
                    labelled_area=area, seed=seed * 100 + k,
                )  # fmt: skip
                suggest_s = round(time.perf_counter() - begun, 1)
                revealed += [(t["scene"], Window(*t["window"])) for t in chosen.tasks]
                labels, area = write_labels(step, masks, transforms, revealed, val)
                seconds = train(folder, pool, labels, area, split, step / "run", args.budget, model)
                model = step / "run" / "model.pt"
                rounds.append(
                    {
                        "round": k,
                        "area_mp": area_mp(revealed, masks),
                        "blocks": len(revealed),
                        "suggest_seconds": suggest_s,
                        "train_seconds": seconds,
                        **score(step / "run"),
                    }  # fmt: skip
                )
                result["seeds"][str(seed)]["strategies"][strategy] = rounds
                save()
                print(strategy, k, rounds[-1]["miou5"], flush=True)
    plot(result, REPO / "docs" / "images" / "active-learning.png")
    save()
    print(f"wrote {out_path}")


def plot(result: dict, path: Path) -> None:
    """Held-out mIoU-5 against labelled area, one line per strategy (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    seeds = list(result["seeds"].values())
    strategies = {s for seed in seeds for s in seed["strategies"]}
    for strategy in sorted(strategies):
        runs = [[seed["start"]] + seed["strategies"].get(strategy, []) for seed in seeds]
        n = min(len(r) for r in runs)
        x = [np.mean([r[i]["area_mp"] for r in runs]) for i in range(n)]
        y = [np.mean([r[i]["miou5"] for r in runs]) for i in range(n)]
        ax.plot(x, y, marker="o", label=strategy)
    ax.set_xlabel("labelled area (megapixels)")
    ax.set_ylabel("test mIoU-5 (protocol images)")
    ax.set_title(f"Labelling loop, mean of {len(seeds)} seed(s)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
