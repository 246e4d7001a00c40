"""predict --ray against the single process on the same scenes (issue 22).

Runs ``aerialseg predict`` on the first 32 Dubai images (sorted by path) four times, each a
fresh command as a user runs it: single process and ``--ray`` (a local Ray of --workers
workers), on 1 scene and on all 32. From those:
  - throughput ratio: single-process seconds / Ray seconds on the 32 scenes;
  - fixed cost of Ray (starting it, its workers loading the model): the Ray run's extra
    seconds on 1 scene; overhead per scene: the extra seconds on 32 scenes less that fixed
    cost, over 32 (negative where the workers' parallelism wins more than Ray costs);
  - peak RSS of the driver, of each worker and of Ray's own services, sampled with psutil
    every 0.1 s over the process tree (Ray's workers are its raylet's children).
On a GPU machine (--device cuda or auto there) the same runs give MP/s per GPU with and
without Ray (one worker per GPU). The default model, fp32, as predict runs it.

    .venv/bin/python bench/ray_predict.py            # writes bench/results/ray_predict.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch
from common import DATA, write_result
from PIL import Image


def scenes(count: int) -> list[Path]:
    return sorted((DATA / "Semantic segmentation dataset").glob("*/images/*.jpg"))[:count]


def kind_of(proc: psutil.Process, driver: int) -> str:
    if proc.pid == driver:
        return "driver"
    try:
        title = " ".join(proc.cmdline())
    except psutil.Error:
        return "other"
    if "PredictWorker" in title:
        return "worker"
    return "ray_services" if "ray" in title else "other"


def run(args: list[str]) -> dict:
    """One predict command: seconds, and peak RSS (MiB) by kind of process."""
    command = [str(Path(sys.executable).with_name("aerialseg")), "predict", *args]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peaks: dict[int, tuple[str, float]] = {}
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(child.pid)
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for proc in procs:
                try:
                    rss = proc.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                kind, peak = peaks.get(proc.pid, (kind_of(proc, child.pid), 0.0))
                peaks[proc.pid] = (kind, max(peak, rss))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, _ = child.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"predict failed ({child.returncode}): {' '.join(command)}")
    by_kind: dict[str, list[float]] = {}
    for kind, peak in peaks.values():
        by_kind.setdefault(kind, []).append(round(peak, 1))
    return {"seconds": round(seconds, 2), "peak_rss_mib": by_kind, "summary": out.strip()[-300:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    images = scenes(args.scenes)
    megapixels = sum(a * b for a, b in (Image.open(p).size for p in images)) / 1e6
    gpus = torch.cuda.device_count() if args.device != "cpu" else 0
    common = ["--device", args.device, "--precision", "fp32", "--no-areas"]
    ray = ["--ray", "--ray-workers", str(gpus or args.workers)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count, chosen in (("1", images[:1]), (str(len(images)), images)):
            for mode, extra in (("single", []), ("ray", ray)):
                out = Path(tmp) / f"{mode}-{count}"
                results[f"{mode}_{count}"] = run([*map(str, chosen), "--out", str(out),
                                                  *common, *extra])  # fmt: skip
                print(mode, count, results[f"{mode}_{count}"]["seconds"], "s", flush=True)
    n = len(images)
    single, on_ray = results[f"single_{n}"]["seconds"], results[f"ray_{n}"]["seconds"]
    fixed = results["ray_1"]["seconds"] - results["single_1"]["seconds"]
    figures = {
        "throughput_ratio_ray_over_single": round(single / on_ray, 3),
        "mp_per_s_single": round(megapixels / single, 3),
        "mp_per_s_ray": round(megapixels / on_ray, 3),
        "ray_fixed_cost_s": round(fixed, 2),
        "ray_overhead_per_scene_s": round((on_ray - single - fixed) / n, 3),
    }
    if gpus:
        figures["mp_per_s_per_gpu_single"] = round(megapixels / single, 3)
        figures["mp_per_s_per_gpu_ray"] = round(megapixels / on_ray / gpus, 3)
    write_result(
        "ray_predict",
        {
            "benchmark": "predict --ray (local Ray) against one process, the same scenes",
            "scenes": n,
            "megapixels": round(megapixels, 2),
            "workers": gpus or args.workers,
            "gpus": gpus,
            "gpu_figure": None if gpus else "no GPU on this machine: MP/s per GPU not measured",
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
            "figures": figures,
            "runs": results,
        },
    )


if __name__ == "__main__":
    main()
