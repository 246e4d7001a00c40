"""Peak resident memory of ``aerialseg predict`` on a 10,000 x 10,000 px RGB GeoTIFF.

Target (issue 3): below 1.5 GB. The scene is written window by window (it never exists
whole in this process either), then predicted in a child process whose peak RSS the
kernel reports through getrusage.

    .venv/bin/python bench/predict_memory.py --model runs/main/model.pt [--side 10000]

--window/--overlap predict with a copy of the model whose windows are changed: the
memory side of bench/windows.py's speed figures.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from common import with_windows, write_result
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import Window

from aerialseg.models.io import load_model, save_model

BLOCK = 1024


def write_scene(path: Path, side: int) -> None:
    rng = np.random.default_rng(0)
    profile = {
        "driver": "GTiff",
        "width": side,
        "height": side,
        "count": 3,
        "dtype": "uint8",
        "crs": CRS.from_epsg(32640),
        "transform": from_origin(300_000, 2_800_000, 0.5, 0.5),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, side, BLOCK):
            for col in range(0, side, BLOCK):
                h, w = min(BLOCK, side - row), min(BLOCK, side - col)
                blocks = rng.integers(0, 256, size=(3, h // 64 + 1, w // 64 + 1), dtype=np.uint8)
                data = np.kron(blocks, np.ones((1, 64, 64), np.uint8))[:, :h, :w]
                dst.write(data, window=Window(col, row, w, h))


def copy_with_windows(src: str, dst: str, window: int | None, overlap: float | None) -> None:
    """Copy a model file, its prediction window and overlap changed."""
    loaded = load_model(src)
    spec = with_windows(loaded.spec, window, overlap)
    recipe = {**loaded.recipe, "window": spec.window, "overlap": spec.overlap}
    save_model(dst, loaded.net, spec, loaded.classes, loaded.meta, half=True, recipe=recipe)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--side", type=int, default=10_000)
    parser.add_argument("--name", default="predict_memory")
    parser.add_argument("--window", type=int, help="predict with this window (default: model's)")
    parser.add_argument("--overlap", type=float, help="and this overlap (default: model's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scene = Path(tmp) / "scene.tif"
        write_scene(scene, args.side)
        model = args.model
        if args.window is not None or args.overlap is not None:
            model = str(Path(tmp) / "model.pt")
            copy_with_windows(args.model, model, args.window, args.overlap)
        cmd = [
            str(Path(sys.executable).with_name("aerialseg")),
            "predict",
            str(scene),
            "--model",
            model,
            "--out",
            str(Path(tmp) / "out"),
            "--device",
            "cpu",
        ]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        seconds = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        with rasterio.open(Path(tmp) / "out" / "scene_classes.tif") as out:
            assert (out.width, out.height) == (args.side, args.side)
    megapixels = args.side * args.side / 1e6
    write_result(
        args.name,
        {
            "benchmark": "peak RSS predicting a large GeoTIFF (PROTOCOL.md: large-image memory)",
            "model": args.model,
            "window": args.window,
            "overlap": args.overlap,
            "scene_px": [args.side, args.side],
            "peak_rss_mb": round(peak_kib / 1024, 1),
            "target_mb": 1536,
            "seconds": round(seconds, 1),
            "megapixels_per_s": round(megapixels / seconds, 3),
        },
    )


if __name__ == "__main__":
    main()
