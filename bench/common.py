"""What every benchmark result records: command, commit, machine, versions, date."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SHARED = REPO.parent / "shared"  # beside the clone, as the brief lays it out
DATA = SHARED / "datasets" / "dubai-aerial"
BUNDLED = REPO / "src" / "aerialseg" / "assets" / "default-model.pt"  # the default model


# Instruction sets that change what a CPU run costs: the same "AMD EPYC" name covers hosts
# of different generations here, and bf16 is fast only where the CPU has it natively.
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")


def _cpuinfo() -> dict[str, str]:
    """The first processor's entries of /proc/cpuinfo (empty where there is none)."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def _cpu() -> dict:
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    return {
        "cpu": info.get("model name") or platform.processor() or "unknown",
        # family 25 is AMD Zen 3/4, 26 Zen 5: the name alone does not tell them apart
        "cpu_family_model": f"{info.get('cpu family', '?')}/{info.get('model', '?')}",
        "cpu_isa": [f for f in ISA_FLAGS if f in flags],
    }


def _commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        # Results other benchmarks wrote do not change the code measured: a chain of them
        # stays clean. Anything else modified marks the commit dirty.
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# Taken when a benchmark starts: the code it runs is the code of that commit, whatever is
# committed while it runs.
COMMIT_AT_START = _commit()


def environment() -> dict:
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": COMMIT_AT_START,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            **_cpu(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def write_result(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**environment(), **result}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def with_windows(spec, window: int | None = None, overlap: float | None = None):
    """``spec`` (a model's ModelSpec, or a training config) with its prediction window and
    overlap replaced where given."""
    changes = {"window": window, "overlap": overlap}
    return dataclasses.replace(spec, **{k: v for k, v in changes.items() if v is not None})


def predictor_of(loaded, engine=None, *, precision: str = "fp32", tta: bool = False):
    """A Predictor on the CPU over a loaded model file (models/io.py's ``LoadedModel``), its
    network as loaded (batch norms folded only if loaded ``for_inference``): the network in
    ``precision``, or ``engine`` (an ONNX session, a TTA, an ensemble) with the model's spec
    and classes; the batch size is predict's default for the engine. What the benchmarks
    scored as ``evaluate(loaded, precision=..., engine=..., tta=...)`` before the one
    predictor."""
    from aerialseg.inference.engine import with_precision
    from aerialseg.inference.predict import Predictor

    run = engine if engine is not None else with_precision(loaded.net, precision, "cpu")
    predictor = Predictor(run, loaded.spec, loaded.classes, "cpu", meta=loaded.meta)
    return predictor.with_options(tta=tta)


HEADLINE = ("miou6", "miou5", "pixel_accuracy", "mean_dice")


def aerialseg(args: list[str]) -> float:
    """Run this environment's ``aerialseg`` command; returns its wall-clock seconds."""
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("aerialseg")), *args], check=True)
    return time.perf_counter() - start


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """The merged per-step log of a run folder (``metrics.csv``)."""
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def evaluate_run(run_dir: Path, data: str, split: str, split_file: Path | None = None) -> dict:
    """``aerialseg evaluate`` of a run folder's model.pt on one split, in fp32 (comparable
    across hosts); returns its ``scores``."""
    out = run_dir / f"eval-{split}"
    extra = ["--split-file", str(split_file)] if split_file else []
    aerialseg(["evaluate", str(run_dir / "model.pt"), "--data", data, "--split", split,
               "--out", str(out), "--precision", "fp32", *extra])  # fmt: skip
    return scores(json.loads((out / "metrics.json").read_text()))


def val_curve(run_dir: Path) -> list[dict]:
    """A run's validation mIoU by optimiser step, from its ``metrics.csv``."""
    return [
        {"step": int(r["step"]), "val_miou": round(float(r["val_miou"]), 4)}
        for r in metric_rows(run_dir)
        if r.get("val_miou")
    ]


def scores(metrics: dict) -> dict:
    """Headline figures and per-class IoU of an ``aerialseg evaluate`` metrics.json."""
    return {
        "headline": {k: metrics[k] for k in HEADLINE},
        "per_class_iou": {name: m["iou"] for name, m in metrics["per_class"].items()},
    }


def decoded_scenes(data, ids, classes, max_unknown: float = 0.05) -> list:
    """The images ``ids`` of a dataset with their class ids, decoded as training reads them."""
    from aerialseg.data.catalog import open_catalog
    from aerialseg.data.scenes import Reading

    reading = Reading(max_unknown=max_unknown, cache_megabytes=float("inf"))
    return open_catalog(data, classes).read(list(ids), reading)
