"""Does ``train --max-time`` bound the whole command? Wall time of ``aerialseg train`` on the
Dubai data with a small budget, from launching the process to its exit, against the budget.

    .venv/bin/python bench/train_budget.py --budget 00:00:40
    # the same for the source tree of another commit (git archive COMMIT src | tar -x -C DIR):
    .venv/bin/python bench/train_budget.py --src DIR/src --code COMMIT --name train_budget-before
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA, write_result

from aerialseg.training.config import parse_duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="00:00:40", help="--max-time, HH:MM:SS")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--src", help="run the aerialseg package of this src folder instead")
    parser.add_argument("--code", help="the commit that --src holds (recorded)")
    parser.add_argument("--name", default="train_budget")
    parser.add_argument("overrides", nargs="*", help="config key=value")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.src:  # ahead of the editable install of this checkout
        env["PYTHONPATH"] = str(Path(args.src).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        argv = [sys.executable, "-m", "aerialseg", "train", "--data", args.data, "--out", str(run)]
        argv += ["--max-time", args.budget, *args.overrides]
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        sys.stderr.write(done.stderr[-4000:])
        print(done.stdout)
        if done.returncode:
            raise SystemExit(f"train failed ({done.returncode})")
        written = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    budget = parse_duration(args.budget)
    write_result(
        args.name,
        {
            "code": args.code or "this checkout",
            "budget_s": budget,
            "wall_s": round(seconds, 1),
            "over_budget_s": round(seconds - budget, 1),
            "stdout_tail": done.stdout.splitlines()[-25:],
            "files": written,
        },
    )


if __name__ == "__main__":
    main()
