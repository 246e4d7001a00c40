"""predict --ray against the single process on the same scenes (issue 22).

Runs ``aerialseg predict`` on the first 32 Dubai images (sorted by path) four times, each a
fresh command as a user runs it: single process and ``--ray`` (a local Ray of --workers
workers; default: predict's own count, one per as many CPUs as torch uses threads), on
1 scene and on all 32. From those:
  - throughput ratio: single-process seconds / Ray seconds on the 32 scenes;
  - fixed cost of Ray (starting it, its workers loading the model): the Ray run's extra
    seconds on 1 scene; overhead per scene: the extra seconds on 32 scenes less that fixed
    cost, over 32 (negative where the workers' parallelism wins more than Ray costs);
  - peak RSS of the driver, of each worker and of Ray's own services, sampled from /proc
    every 0.1 s over the process tree (Ray's workers are its raylet's children).
On a GPU machine (--device cuda or auto there) the same runs give MP/s per GPU with and
without Ray (one worker per GPU). The default model, fp32, as predict runs it.

    .venv/bin/python bench/ray_predict.py            # writes bench/results/ray_predict.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from common import DATA, write_result
from PIL import Image


def scenes(count: int, crop: int, folder: Path) -> list[Path]:
    """The first ``count`` Dubai images; with ``crop``, their top-left crop x crop pixels
    as PNGs in ``folder`` (for a machine too busy for whole images)."""
    images = sorted((DATA / "Semantic segmentation dataset").glob("*/images/*.jpg"))[:count]
    if not crop:
        return images
    cropped = []
    for i, path in enumerate(images):
        cropped.append(folder / f"scene_{i:02d}.png")
        Image.open(path).convert("RGB").crop((0, 0, crop, crop)).save(cropped[-1])
    return cropped


def _proc(pid: int) -> tuple[int, float, str] | None:
    """(parent pid, RSS in MiB, command line) of a live process, from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kib = int(fields.get("VmRSS", "0 kB").split()[0])
    return int(fields["PPid"]), rss_kib / 1024, cmdline


def process_tree(root: int) -> dict[int, tuple[float, str]]:
    """RSS and command line of ``root`` and all its descendants."""
    procs = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := _proc(int(entry.name))) is not None:
            procs[int(entry.name)] = info
    tree, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        if pid in procs:
            tree[pid] = procs[pid][1:]
            frontier += [child for child, info in procs.items() if info[0] == pid]
    return tree


def kind_of(pid: int, cmdline: str, driver: int) -> str:
    if pid == driver:
        return "driver"
    if "PredictWorker" in cmdline:  # Ray titles an actor's process ray::PredictWorker
        return "worker"
    return "ray_services" if "ray" in cmdline else "other"


def run(args: list[str]) -> dict:
    """One predict command: seconds, and peak RSS (MiB) by kind of process."""
    command = [str(Path(sys.executable).with_name("aerialseg")), "predict", *args]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peaks: dict[int, tuple[str, float]] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid, (rss, cmdline) in process_tree(child.pid).items():
                kind, peak = peaks.get(pid, ("other", 0.0))
                # A Ray worker process is titled for its actor only once it has one.
                if kind != "worker":
                    kind = kind_of(pid, cmdline, child.pid)
                peaks[pid] = (kind, max(peak, rss))
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
    # More workers than that on one machine run more threads than it has cores: each
    # worker computes with the driver's thread count (issue 29).
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--crop", type=int, default=0, help="crop scenes to this side (px)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    images = scenes(args.scenes, args.crop, folder)
    megapixels = sum(a * b for a, b in (Image.open(p).size for p in images)) / 1e6
    gpus = torch.cuda.device_count() if args.device != "cpu" else 0
    common = ["--device", args.device, "--precision", "fp32", "--no-areas"]
    count = gpus or args.workers
    ray = ["--ray", *(["--ray-workers", str(count)] if count else [])]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count, chosen in (("1", images[:1]), (str(len(images)), images)):
            for mode, extra in (("single", []), ("ray", ray)):
                out = Path(tmp) / f"{mode}-{count}"
                results[f"{mode}_{count}"] = run([*map(str, chosen), "--out", str(out),
                                                  *common, *extra])  # fmt: skip
                print(mode, count, results[f"{mode}_{count}"]["seconds"], "s", flush=True)
    shutil.rmtree(folder)
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
            "scene_crop_px": args.crop or None,
            "megapixels": round(megapixels, 2),
            "workers": gpus or args.workers or "predict's default",
            "gpus": gpus,
            "gpu_figure": None if gpus else "no GPU on this machine: MP/s per GPU not measured",
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
            "figures": figures,
            "runs": results,
        },
    )


if __name__ == "__main__":
    main()
