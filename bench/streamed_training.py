"""Streamed training on one large scene: peak memory and patches/s against the in-memory
path on the Dubai set, both measured in one run (issue 19).

The scene is procedural: a 40,000 x 40,000 px 3-band COG (JPEG tiles, 0.5 m pixels in
UTM) whose colours follow about 100,000 class polygons (boxes of Building, Road and
Water; Land, the background class, elsewhere), and those polygons in a GeoPackage in
WGS84, so they are reprojected as a user's would be. Built once into --work and reused.

Each measurement runs in a child process of its own, so its peak RSS is its own:
  - the training step of ``aerialseg train`` (Lightning, SegmentationTask with the EMA,
    the default preset, 256 px crops, batch 8, validation left out) for --steps steps
    after --warmup, on the Dubai set decoded in memory and on the big scene streamed
    (cache_megabytes=0: each crop reads its window and rasterises its polygons);
  - the data pipeline alone (crops drawn, read, augmented: no network), the part that
    differs between the two.

    nice .venv/bin/python bench/streamed_training.py
    nice .venv/bin/python bench/streamed_training.py --labels class-raster

``--labels class-raster`` (issue 28) measures a 20,000 x 20,000 px GeoTIFF image with a
GeoTIFF class raster beside it, a pair in a dataset folder (images/, masks/), streamed:
each crop reads its window of both; the class raster is never decoded whole.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import DATA, write_result  # noqa: E402

SIDE = 40_000
POLYGONS = 100_000
BLOCK = 512  # rows written at a time while building the scene


def build(work: Path, side: int = SIDE, polygons: int = POLYGONS) -> tuple[Path, Path, Path]:
    """The scene, its polygons and their class table (made once)."""
    import fiona
    import rasterio
    import rasterio.shutil
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.warp import transform_geom
    from rasterio.windows import Window
    from shapely.geometry import box, mapping

    from aerialseg.data.polygons import PolygonLayer

    work.mkdir(parents=True, exist_ok=True)
    scene, labels, classes = work / "big.tif", work / "big.gpkg", work / "classes.json"
    table = {
        "classes": [
            {"name": "Building"},
            {"name": "Road"},
            {"name": "Water"},
            {"name": "Land", "background": True},
        ]
    }
    classes.write_text(json.dumps(table))
    if scene.is_file() and labels.is_file():
        return scene, labels, classes
    utm = CRS.from_epsg(32640)
    transform = Affine(0.5, 0, 300_000.0, 0, -0.5, 2_800_000.0)
    rng = np.random.default_rng(0)
    sizes = rng.integers(10, 150, (polygons, 2))
    corners = rng.integers(0, side - 10, (polygons, 2))
    ids = rng.integers(0, 3, polygons)
    boxes = []
    for (w, h), (col, row) in zip(sizes, corners, strict=True):
        left, top = transform @ (int(col), int(row))
        boxes.append(box(left, top - h * 0.5, left + w * 0.5, top))
    layer = PolygonLayer.of(utm, boxes, ids.tolist())
    names = ["Building", "Road", "Water"]
    schema = {"geometry": "Polygon", "properties": {"class": "str"}}
    tmp_labels = labels.with_suffix(".tmp.gpkg")
    tmp_labels.unlink(missing_ok=True)
    wgs84 = CRS.from_epsg(4326)
    moved = transform_geom(utm, wgs84, [mapping(b) for b in boxes])
    with fiona.open(
        tmp_labels, "w", driver="GPKG", crs=wgs84.to_wkt(), schema=schema, layer="labels"
    ) as dst:
        dst.writerecords(
            {"geometry": g, "properties": {"class": names[int(k)]}}
            for g, k in zip(moved, ids, strict=True)
        )
    colours = np.array(
        [[60, 16, 152], [110, 193, 228], [226, 169, 41], [132, 41, 246]], dtype=np.uint8
    )
    noise = rng.integers(-25, 26, (3, BLOCK, 4096), dtype=np.int16)
    tiled = work / "big-tiled.tif"
    profile = dict(
        driver="GTiff", width=side, height=side, count=3, dtype="uint8", crs=utm,
        transform=transform, tiled=True, blockxsize=512, blockysize=512, compress="jpeg",
        jpeg_quality=90, BIGTIFF="YES",
    )  # fmt: skip
    with rasterio.open(tiled, "w", **profile) as dst:
        for row in range(0, side, BLOCK):
            h = min(BLOCK, side - row)
            window = Window(0, row, side, h)
            ids_block = layer.rasterize(
                rasterio.windows.transform(window, transform), (h, side), fill=3
            )
            image = colours[ids_block].transpose(2, 0, 1).astype(np.int16)
            image += np.tile(noise[:, :h], (1, 1, side // 4096 + 1))[:, :, :side]
            dst.write(np.clip(image, 0, 255).astype(np.uint8), window=window)
            print(f"  scene rows {row + h}/{side}", file=sys.stderr, flush=True)
    rasterio.shutil.copy(
        tiled, scene, driver="COG", compress="JPEG", quality=90, overviews="NONE",
        blocksize=512, BIGTIFF="YES",
    )  # fmt: skip
    tiled.unlink()
    tmp_labels.rename(labels)
    return scene, labels, classes


PAIR_SIDE = 20_000


def build_pair(work: Path, side: int = PAIR_SIDE, polygons: int = POLYGONS // 4) -> Path:
    """A dataset folder of one large pair: images/scene.tif (JPEG tiles) and
    masks/scene.tif (class values 1-4, deflate tiles), and its class table (made once)."""
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.windows import Window
    from shapely.geometry import box

    from aerialseg.data.polygons import PolygonLayer

    root = work / f"pair-{side}"
    table = {"classes": [{"name": n, "mask_value": v} for n, v in
                         (("Building", 1), ("Road", 2), ("Water", 3), ("Land", 4))]}  # fmt: skip
    (work / "pair-classes.json").parent.mkdir(parents=True, exist_ok=True)
    (work / "pair-classes.json").write_text(json.dumps(table))
    if (root / "masks" / "scene.tif").is_file():
        return root
    utm = CRS.from_epsg(32640)
    transform = Affine(0.5, 0, 300_000.0, 0, -0.5, 2_800_000.0)
    rng = np.random.default_rng(1)
    sizes = rng.integers(10, 150, (polygons, 2))
    corners = rng.integers(0, side - 10, (polygons, 2))
    boxes = []
    for (w, h), (col, row) in zip(sizes, corners, strict=True):
        left, top = transform @ (int(col), int(row))
        boxes.append(box(left, top - h * 0.5, left + w * 0.5, top))
    layer = PolygonLayer.of(utm, boxes, (rng.integers(0, 3, polygons) + 1).tolist())
    colours = np.array(
        [[0, 0, 0], [60, 16, 152], [110, 193, 228], [226, 169, 41], [132, 41, 246]], np.uint8
    )
    noise = rng.integers(-25, 26, (3, BLOCK, 4096), dtype=np.int16)
    common = dict(driver="GTiff", width=side, height=side, crs=utm, transform=transform,
                  tiled=True, blockxsize=512, blockysize=512, BIGTIFF="YES")  # fmt: skip
    tmp = work / f"pair-{side}.tmp"
    for sub in ("images", "masks"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    with (
        rasterio.open(tmp / "images" / "scene.tif", "w", count=3, dtype="uint8",
                      compress="jpeg", jpeg_quality=90, **common) as image,
        rasterio.open(tmp / "masks" / "scene.tif", "w", count=1, dtype="uint8",
                      compress="deflate", **common) as mask,
    ):  # fmt: skip
        for row in range(0, side, BLOCK):
            h = min(BLOCK, side - row)
            window = Window(0, row, side, h)
            at = rasterio.windows.transform(window, transform)
            values = layer.rasterize(at, (h, side), fill=4)
            mask.write(values[None], window=window)
            pixels = colours[values].transpose(2, 0, 1).astype(np.int16)
            pixels += np.tile(noise[:, :h], (1, 1, side // 4096 + 1))[:, :, :side]
            image.write(np.clip(pixels, 0, 255).astype(np.uint8), window=window)
            print(f"  pair rows {row + h}/{side}", file=sys.stderr, flush=True)
    tmp.rename(root)
    return root


def child(kind: str, work: Path, warmup: int, steps: int, samples: int) -> dict:
    """One measurement in this process: training patches/s, data patches/s, peak RSS."""
    import lightning as L
    import torch

    from aerialseg.data.catalog import LabelSpec, open_catalog
    from aerialseg.data.classes import DUBAI_CLASSES, ClassTable
    from aerialseg.data.splits import Split, make_split
    from aerialseg.training.config import resolve_config
    from aerialseg.training.datamodule import SegmentationDataModule
    from aerialseg.training.module import SegmentationTask
    from aerialseg.training.run import WarmEMA

    torch.set_num_threads(2)
    started = time.perf_counter()
    overrides = ["accelerator=cpu"]
    if kind == "in-memory":
        classes = DUBAI_CLASSES
        data = open_catalog(DATA, classes)
        split = make_split(data.entries, None)
    elif kind == "class-raster":
        classes = ClassTable.from_file(work / "pair-classes.json")
        data = open_catalog(work / f"pair-{PAIR_SIDE}", classes)
        (only,) = data.entries
        split = Split((only.id,), (only.id,), (), "bench: the whole scene")
        overrides.append("cache_megabytes=0")
    else:
        scene, labels, table = work / "big.tif", work / "big.gpkg", work / "classes.json"
        classes = ClassTable.from_file(table)
        data = open_catalog(scene, classes, LabelSpec(str(labels), "class"))
        (only,) = data.entries
        # train on the whole scene; validation is left out of the timing anyway
        split = Split((only.id,), (only.id,), (), "bench: the whole scene")
        overrides.append("cache_megabytes=0")
    cfg = resolve_config("default", None, overrides)
    cfg.samples_per_epoch = cfg.batch_size * (warmup + steps + 10)
    datamodule = SegmentationDataModule(data, split, cfg)
    datamodule.setup("fit")
    opened = time.perf_counter() - started
    train_set = datamodule.train_set
    torch.manual_seed(0)
    t0 = time.perf_counter()
    for k in range(samples):
        train_set[k]
    data_rate = samples / (time.perf_counter() - t0)

    class StepTimer(L.Callback):
        start = end = 0.0

        def on_train_batch_end(self, trainer, *_) -> None:
            if trainer.global_step == warmup:
                self.start = time.perf_counter()
            self.end = time.perf_counter()

    timer = StepTimer()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=warmup + steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        callbacks=[*([WarmEMA(cfg.ema_decay)] if cfg.ema_decay else []), timer],
    )
    L.seed_everything(cfg.seed, verbose=False)
    trainer.fit(SegmentationTask(cfg.to_dict(), classes.to_dict()), datamodule=datamodule)
    train_rate = steps * cfg.batch_size / (timer.end - timer.start)
    return {
        "open_and_setup_s": round(opened, 1),
        "data_patches_per_s": round(data_rate, 2),
        "train_patches_per_s": round(train_rate, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/aerialseg-bench-big"))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--samples", type=int, default=200, help="crops for the data rate")
    parser.add_argument("--side", type=int, default=SIDE, help="scene side, px (a smoke test)")
    parser.add_argument("--polygons", type=int, default=POLYGONS)
    parser.add_argument(
        "--labels", choices=["polygons", "class-raster"], default="polygons",
        help="the large scene's labels: polygons (40,000 px scene) or a class raster beside"
        " a 20,000 px image",
    )  # fmt: skip
    parser.add_argument("--child", choices=["in-memory", "streamed", "class-raster"],
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.work, args.warmup, args.steps, args.samples)))
        return
    if args.labels == "class-raster":
        class_raster(args)
        return
    t0 = time.perf_counter()
    scene, labels, _ = build(args.work, args.side, args.polygons)
    built = time.perf_counter() - t0
    results = measured(args, ("streamed", "in-memory"))
    s, m = results["streamed"], results["in-memory"]
    if (args.side, args.polygons) != (SIDE, POLYGONS):
        return  # a smoke test writes no result
    write_result(
        "streamed_training",
        {
            "benchmark": "streamed training on one 40,000 x 40,000 px scene with ~100,000"
            " polygons, against the in-memory path on the Dubai set (issue 19)",
            "scene": {
                "pixels": f"{args.side} x {args.side} x 3 uint8",
                "format": "COG, JPEG tiles of 512, 0.5 m, EPSG:32640",
                "file_mb": round(scene.stat().st_size / 2**20),
                "polygons": args.polygons,
                "polygons_crs": "EPSG:4326 (reprojected to the scene's on reading)",
                "built_s": round(built) if built > 5 else "reused",
            },
            "settings": "default preset (fpn-effnet-lite0, 256 px crops, batch 8, EMA);"
            f" {args.warmup} warm-up steps, {args.steps} timed; {args.samples} crops for the"
            " data rate",
            "results": results,
            **ratios(s, m),
        },
    )


def ratios(streamed: dict, in_memory: dict) -> dict:
    """The streamed rates over the in-memory ones, and the targets they answer."""
    return {
        f"ratio_{rate}_streamed_vs_in_memory": round(
            streamed[f"{rate}_patches_per_s"] / in_memory[f"{rate}_patches_per_s"], 3
        )
        for rate in ("train", "data")
    } | {"targets": "peak RSS below 3 GB; train patches/s at least 0.8x in-memory"}


def measured(args, kinds: tuple[str, ...]) -> dict:
    """Each kind measured in a child process of its own (its peak RSS its own)."""
    results = {}
    for kind in kinds:
        done = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--work", str(args.work),
             "--warmup", str(args.warmup), "--steps", str(args.steps),
             "--samples", str(args.samples)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
        print(kind, results[kind], flush=True)
    return results


def class_raster(args) -> None:
    """Issue 28's figure: the 20,000 px pair streamed against the Dubai set in memory."""
    t0 = time.perf_counter()
    root = build_pair(args.work)
    built = time.perf_counter() - t0
    results = measured(args, ("class-raster", "in-memory"))
    s, m = results["class-raster"], results["in-memory"]
    sizes = {
        sub: round((root / sub / "scene.tif").stat().st_size / 2**20) for sub in ("images", "masks")
    }
    write_result(
        "streamed_class_raster",
        {
            "benchmark": "streamed training on a 20,000 x 20,000 px GeoTIFF image with a GeoTIFF"
            " class raster beside it (a pair in a dataset folder), against the in-memory path"
            " on the Dubai set (issue 28)",
            "scene": {
                "pixels": f"{PAIR_SIDE} x {PAIR_SIDE} x 3 uint8, class raster 1 x uint8",
                "format": "GeoTIFF, JPEG tiles of 512 (image), deflate tiles (classes)",
                "file_mb": sizes,
                "built_s": round(built) if built > 5 else "reused",
            },
            "settings": "default preset (fpn-effnet-lite0, 256 px crops, batch 8, EMA);"
            f" {args.warmup} warm-up steps, {args.steps} timed; {args.samples} crops for the"
            " data rate; cache_megabytes=0 for the pair",
            "results": results,
            **ratios(s, m),
        },
    )


if __name__ == "__main__":
    main()
