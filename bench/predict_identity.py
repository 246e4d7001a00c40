"""Does a change to the prediction code change what users get? Outputs and metrics, recorded.

Runs ``aerialseg predict`` with the bundled model on the 16 protocol test images (classes,
confidence, colour mask, areas; fp32 and bf16) and ``aerialseg evaluate`` on the protocol
test split (fp32), as a user runs them, then records each output file's SHA-256 and the
headline and per-class metrics. ``--compare OLD.json`` says which files and metrics
differ from an earlier record (issue 29: one predictor must change neither).

    PYTHONPATH=src .venv/bin/python bench/predict_identity.py --name predict_identity-at-X
    PYTHONPATH=src .venv/bin/python bench/predict_identity.py --compare \
        bench/results/predict_identity-at-X.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import BUNDLED, DATA, SHARED, write_result

DECIMALS = 4  # the metrics must agree to this many decimals


def run(args: list[str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "aerialseg", *args], check=True, stdout=subprocess.DEVNULL
    )


def predicted_hashes(images: list[Path], out: Path, precision: str) -> dict[str, str]:
    flags = ["--confidence", "--color", "--device", "cpu", "--precision", precision]
    run(["predict", *map(str, images), "--out", str(out), *flags])
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.iterdir())
        if p.is_file()
    }


def rounded(value):
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def evaluated(out: Path) -> dict:
    split = SHARED / "benchmark" / "split.json"
    run(
        ["evaluate", str(BUNDLED), "--data", str(DATA), "--split-file", str(split)]
        + ["--out", str(out), "--precision", "fp32", "--device", "cpu"]
    )
    report = json.loads((out / "metrics.json").read_text())
    keep = ("miou6", "miou5", "pixel_accuracy", "mean_dice", "per_class", "per_image")
    return rounded({k: report[k] for k in keep if k in report})


def differences(old: dict, new: dict, where: str = "") -> list[str]:
    """Paths of the leaves that differ between two records."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            if key not in old or key not in new:
                found.append(f"{where}{key} (only in {'new' if key in new else 'old'})")
            else:
                found += differences(old[key], new[key], f"{where}{key}/")
        return found
    return [] if old == new else [where.rstrip("/")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="predict_identity")
    parser.add_argument("--compare", type=Path, help="an earlier record to compare with")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    args = parser.parse_args()
    split = json.loads((SHARED / "benchmark" / "split.json").read_text())
    images = [DATA / split["dataset"].split("/", 1)[1] / p for p in split["test"]]
    record: dict = {"outputs": {}, "metrics": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precisions:
            out = Path(tmp) / precision
            record["outputs"][precision] = predicted_hashes(images, out, precision)
            print(precision, len(record["outputs"][precision]), "files", flush=True)
        record["metrics"] = evaluated(Path(tmp) / "eval")
        print("miou6", record["metrics"]["miou6"], flush=True)
    result = {
        "benchmark": "predict outputs (SHA-256) and evaluate metrics of the bundled model",
        "images": len(images),
        "predict": "--confidence --color, areas; per precision",
        "evaluate": f"protocol test split, fp32, rounded to {DECIMALS} decimals",
        **record,
    }
    if args.compare:
        old = json.loads(args.compare.read_text())
        found = {part: differences(old[part], record[part]) for part in ("outputs", "metrics")}
        result["compared_with"] = {"file": str(args.compare), "commit": old.get("commit")}
        result["differences"] = found
        print(json.dumps(found, indent=1))
    write_result(args.name, result)


if __name__ == "__main__":
    main()
