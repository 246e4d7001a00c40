"""Train a config within a time budget, evaluate it on the protocol's test split, record.

PROTOCOL.md: test images never used for training or model choice; native resolution;
black mask pixels ignored. Writes bench/results/quality-NAME.json.

    .venv/bin/python bench/quality.py --name default --budget 00:17:00
    .venv/bin/python bench/quality.py --name seed --preset seed --budget 00:10:00
    .venv/bin/python bench/quality.py --name default-2h --resume runs/bench-default-2h-...

--resume continues an interrupted run in its own folder, with its saved config and
budget; train_timer_seconds is then the whole run's training time, both parts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import yaml
from common import DATA, REPO, aerialseg, metric_rows, scores, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--budget", default="00:17:00", help="training wall-clock HH:MM:SS")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--resume", type=Path, help="an interrupted run folder to continue")
    parser.add_argument("overrides", nargs="*", help="config key=value")
    args = parser.parse_args()
    if args.resume:
        run_dir = args.resume.resolve()
        command = ["train", "--data", args.data, "--out", str(run_dir), "--resume"]
    else:
        run_dir = REPO / "runs" / f"bench-{args.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        command = [
            "train",
            "--data",
            args.data,
            "--out",
            str(run_dir),
            "--preset",
            args.preset,
            "--max-time",
            args.budget,
            *args.overrides,
        ]
    train_s = aerialseg(command)
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    timer_s = last["callbacks"]["Timer"]["time_elapsed"]["train"]
    eval_s = aerialseg(
        [
            "evaluate",
            str(run_dir / "model.pt"),
            "--data",
            args.data,
            "--split",
            "test",
            "--out",
            str(run_dir / "eval-test"),
            # Every quality figure is fp32, comparable across hosts; bench/precision.py
            # measures what bf16 changes.
            "--precision",
            "fp32",
        ]
    )
    metrics = scores(json.loads((run_dir / "eval-test" / "metrics.json").read_text()))
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    rows = metric_rows(run_dir)
    steps = max(int(r["step"]) for r in rows if r.get("step")) + 1
    write_result(
        f"quality-{args.name}",
        {
            "benchmark": "quality on the protocol's test split (PROTOCOL.md)",
            "preset": args.preset,
            "overrides": args.overrides,
            "budget": config["max_time"],
            "resumed": bool(args.resume),
            "train_seconds": round(train_s, 1),
            "train_timer_seconds": round(timer_s, 1),
            "train_steps": steps,
            "evaluate_seconds": round(eval_s, 1),
            "config": config,
            "val_curve": [
                {"epoch": int(r["epoch"]), "val_miou": float(r["val_miou"])}
                for r in rows
                if r.get("val_miou")
            ],
            "test": metrics["headline"],
            "per_class_iou": metrics["per_class_iou"],
        },
    )


if __name__ == "__main__":
    main()
