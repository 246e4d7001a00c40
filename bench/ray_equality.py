"""predict --ray against one process on the 16 protocol test images: the same bytes?

The test suite checks two protocol images (tests/inference/test_distributed.py); this
checks all 16, as a user runs the commands: ``aerialseg predict`` once without and once
with ``--ray`` (a local Ray) per precision, the bundled model, classes, confidence and
areas, then compares every output file byte for byte and counts the class pixels that
differ. ``--block-megapixels`` lower than a scene (e.g. 1) also splits the large scenes
into row blocks that workers predict apart (issue 29); its result is written apart.

    PYTHONPATH=src .venv/bin/python bench/ray_equality.py   # writes bench/results/ray_equality.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rasterio
import torch
from common import DATA, SHARED, write_result


def predict(images: list[Path], out: Path, precision: str, extra: list[str]) -> float:
    """One ``aerialseg predict`` command, in this interpreter (and its PYTHONPATH)."""
    command = [sys.executable, "-m", "aerialseg", "predict", *map(str, images)]
    command += ["--out", str(out), "--precision", precision, "--confidence", *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - start, 1)


def class_pixels_differing(a: Path, b: Path) -> int:
    with rasterio.open(a) as x, rasterio.open(b) as y:
        return int((x.read(1) != y.read(1)).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--block-megapixels", type=float, default=None)
    args = parser.parse_args()
    split = json.loads((SHARED / "benchmark" / "split.json").read_text())
    images = [DATA / split["dataset"].split("/", 1)[1] / p for p in split["test"]]
    ray = ["--ray"]
    if args.block_megapixels:
        ray += ["--block-megapixels", str(args.block_megapixels)]
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precisions:
            single, on_ray = Path(tmp) / f"single-{precision}", Path(tmp) / f"ray-{precision}"
            common = ["--device", args.device]
            seconds = {
                "single": predict(images, single, precision, common),
                "ray": predict(images, on_ray, precision, common + ray),
            }
            per_image = {}
            for name in sorted(p.name for p in single.iterdir() if p.name.endswith("_classes.png")):
                stem = name.removesuffix("_classes.png")
                mine = sorted(p.name for p in single.iterdir() if p.name.startswith(stem + "_"))
                theirs = sorted(p.name for p in on_ray.iterdir() if p.name.startswith(stem + "_"))
                differing = [
                    f
                    for f in mine
                    if f not in theirs or (single / f).read_bytes() != (on_ray / f).read_bytes()
                ]
                per_image[stem] = {
                    "files": len(mine),
                    "differing_files": differing + [f for f in theirs if f not in mine],
                    "class_pixels_differing": class_pixels_differing(single / name, on_ray / name)
                    if name in theirs
                    else None,
                }
            runs[precision] = {
                "seconds": seconds,
                "images": len(per_image),
                "identical": sum(not v["differing_files"] for v in per_image.values()),
                "per_image": per_image,
            }
            print(
                precision,
                runs[precision]["identical"],
                "of",
                len(per_image),
                "identical",
                seconds,
                flush=True,
            )
    write_result(
        "ray_equality" + (f"-blocks{args.block_megapixels:g}mp" if args.block_megapixels else ""),
        {
            "benchmark": "predict --ray (a local Ray) against one process, byte for byte",
            "torch_threads_driver": torch.get_num_threads(),
            "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
            "block_megapixels": args.block_megapixels,
            "outputs": "classes, confidence, areas",
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
