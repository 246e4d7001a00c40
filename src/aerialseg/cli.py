"""The ``aerialseg`` command. Each subcommand is a thin function over the library.

User errors (bad data, bad config, bad model file) print one line on stderr and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aerialseg import __version__
from aerialseg.data.classes import DUBAI_CLASSES, ClassTable
from aerialseg.errors import AerialsegError

EXIT_USER_ERROR = 2


def _classes(path: str | None) -> ClassTable:
    return ClassTable.from_file(path) if path else DUBAI_CLASSES


def cmd_inspect(args: argparse.Namespace) -> int:
    from aerialseg.data.inspect import format_report, inspect_dataset
    from aerialseg.data.source import DatasetSource

    report = inspect_dataset(DatasetSource(args.path), _classes(args.classes), args.max_unknown)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from aerialseg.training.config import resolve_config
    from aerialseg.training.run import train

    overrides = list(args.overrides)
    for key in ("max_time", "devices", "num_nodes", "accelerator"):
        value = getattr(args, key)
        if value is not None:
            overrides.append(f"{key}={value}")
    out = Path(args.out)
    if args.resume:
        saved = out / "config.yaml"
        if not saved.is_file():
            raise AerialsegError(f"{out}: nothing to resume (no config.yaml); check --out")
        cfg = resolve_config("default", saved, overrides)
        classes = ClassTable.from_file(out / "classes.json")
    else:
        cfg = resolve_config(args.preset, args.config, overrides)
        classes = _classes(args.classes)
    model_path = train(cfg, args.data, out, split_file=args.split, classes=classes,
                       resume=args.resume)
    print(f"model written to {model_path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from aerialseg.evaluation.evaluate import evaluate
    from aerialseg.evaluation.metrics import format_table
    from aerialseg.models.io import load_model

    model = load_model(args.model, device=_device(args.device))
    out = Path(args.out) if args.out else Path(args.model).parent / f"eval-{args.split}"
    report = evaluate(model, args.data, out, split_name=args.split, split_file=args.split_file,
                      batch_size=args.batch_size)
    print(f"{args.split} split, {len(report['images'])} images, model {report['model']}")
    print(format_table(report, model.classes))
    print(f"written to {out}/metrics.json")
    return 0


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise AerialsegError("--device cuda: no CUDA GPU is available here; use --device cpu")
    return name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aerialseg",
        description="Semantic segmentation of aerial and satellite imagery.",
    )
    parser.add_argument("--version", action="version", version=f"aerialseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="look at a dataset").add_subparsers(
        dest="data_command", required=True, metavar="COMMAND")
    p = data.add_parser("inspect", help="pairs per tile, sizes, class shares, unknown colours",
                        description="Read every image/mask pair once and summarise the dataset.")
    p.add_argument("path", help="the Kaggle archive.zip or the folder it extracts to")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--classes", help="class table (JSON/YAML); default: the Dubai table")
    p.add_argument("--max-unknown", type=float, default=0.05, metavar="SHARE",
                   help="largest share of a mask in unknown colours before it is an error"
                        " (default 0.05)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "train", help="train a model into a run folder",
        description="Train a model. Settings come from a preset, then --config, then key=value"
                    " overrides (e.g. max_epochs=5 lr=3e-4 crop_size=384); see"
                    " aerialseg/training/config.py for every key.",
    )
    p.add_argument("--data", required=True, help="the Kaggle archive.zip or its folder")
    p.add_argument("--preset", default="default", choices=["default", "seed"],
                   help="default: pretrained U-Net on native crops; seed: the original notebook")
    p.add_argument("--config", help="YAML file of config keys")
    p.add_argument("--out", default="runs/latest", help="run folder (default runs/latest)")
    p.add_argument("--split", help="split JSON (a 'test' list, optional 'val');"
                                   " default: the protocol's rule")
    p.add_argument("--classes", help="class table (JSON/YAML); default: the Dubai table")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    p.add_argument("--max-time", help="wall-clock budget HH:MM:SS")
    p.add_argument("--devices", type=int, help="devices (GPUs, or CPU processes) for DDP")
    p.add_argument("--num-nodes", type=int, help="machines for DDP")
    p.add_argument("--accelerator", choices=["auto", "cpu", "gpu", "cuda", "mps"])
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a model on a split (PROTOCOL.md metrics)",
                       description="Predict every image of a split at native resolution and"
                                   " write metrics.json, confusion.png and panels.png.")
    p.add_argument("model", help="model.pt or a .ckpt from a run folder")
    p.add_argument("--data", required=True, help="the Kaggle archive.zip or its folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--split-file", help="split JSON; default: the protocol's rule")
    p.add_argument("--out", help="output folder (default: beside the model, eval-SPLIT)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=4, help="windows per forward pass")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AerialsegError as err:
        print(f"aerialseg: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("aerialseg: interrupted", file=sys.stderr)
        return 130
