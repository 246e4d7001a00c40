"""The ``aerialseg`` command. Each subcommand is a thin function over the library.

User errors (bad data, bad config, bad model file) print one line on stderr and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

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
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    if args.data is None:
        raise AerialsegError("train needs --data: the Kaggle archive.zip or its folder")
    model_path = train(
        cfg, args.data, out, split_file=args.split, classes=classes, resume=args.resume
    )
    print(f"model written to {model_path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from aerialseg.evaluation.evaluate import evaluate
    from aerialseg.evaluation.metrics import format_table, headline_keys
    from aerialseg.models.io import load_model

    model = load_model(args.model, device=_device(args.device), for_inference=True)
    out = Path(args.out) if args.out else Path(args.model).parent / f"eval-{args.split}"
    report = evaluate(
        model,
        args.data,
        out,
        split_name=args.split,
        split_file=args.split_file,
        batch_size=args.batch_size,
        tta=args.tta,
        precision=args.precision,
    )
    print(
        f"{args.split} split, {len(report['images'])} images, model {report['model']},"
        f" {report['precision']}"
    )
    print(format_table(report, model.classes))
    key = headline_keys(model.classes)[0]
    scored = sorted((v[key], k) for k, v in report["per_image"].items() if v[key] is not None)
    lowest = ", ".join(f"{image_id} {value:.4f}" for value, image_id in scored[:3])
    print(f"lowest {key} of one image: {lowest}")
    print(f"written to {out}/metrics.json (per image too)")
    return 0


DEFAULT_MODEL = "default-model.pt"  # bundled in aerialseg/assets once one is trained


def default_model_path() -> Path:
    from importlib.resources import files

    path = Path(str(files("aerialseg") / "assets" / DEFAULT_MODEL))
    if not path.is_file():
        raise AerialsegError(
            "no --model given and this install bundles no default model; train one with"
            " 'aerialseg train --data DATASET --out runs/a' and pass --model runs/a/model.pt"
        )
    return path


def _engine(model_arg: str | None, engine: str, device: str, precision: str = "auto"):
    """(engine, config, classes) for a model file or an exported ONNX file."""
    from aerialseg.inference.engine import OnnxEngine, with_precision
    from aerialseg.models.io import load_model

    path = Path(model_arg) if model_arg else default_model_path()
    if engine == "onnx" or path.suffix == ".onnx":
        if device != "cpu":
            raise AerialsegError("--engine onnx runs on the CPU; use --device cpu")
        if precision == "bf16":
            raise AerialsegError("--precision bf16 runs on PyTorch; use --engine torch")
        if path.suffix == ".onnx":
            onnx = OnnxEngine(path)
        else:
            from aerialseg.models.export import exported_engine

            print(f"exporting {path.name} to ONNX for this run", file=sys.stderr)
            onnx = exported_engine(load_model(path))  # ONNX Runtime folds batch norms itself
        return onnx, onnx.config, onnx.classes
    model = load_model(path, device=device, for_inference=True)
    return with_precision(model.net, precision, device), model.config, model.classes


def cmd_predict(args: argparse.Namespace) -> int:
    from aerialseg.inference.raster import parse_bands
    from aerialseg.inference.run import (
        PredictOptions,
        expand_inputs,
        output_names,
        predict_files,
        shard,
    )

    outputs = {"classes"} | ({"areas"} if not args.no_areas else set())
    outputs |= {"color"} if args.color or args.all_outputs else set()
    outputs |= {"overlay"} if args.overlay or args.all_outputs else set()
    opts = PredictOptions(
        outputs=frozenset(outputs),
        class_format=args.format,
        vector=args.vector,
        simplify=args.simplify,
        min_area=args.min_area,
        bands=parse_bands(args.bands),
        tta=args.tta,
        batch_size=args.batch_size,
        overlap=args.overlap,
    )
    every_input = expand_inputs(args.inputs)
    inputs = shard(every_input, args.shard)
    if not inputs:
        raise AerialsegError("no input images found; give files, folders or glob patterns")
    device = "cpu" if args.engine == "onnx" else _device(args.device)
    engine, config, classes = _engine(args.model, args.engine, device, args.precision)
    # names over every input, not the shard's: shards writing to one folder never collide
    names = output_names(every_input)
    summary = predict_files(engine, config, classes, inputs, Path(args.out), opts, device, names)
    for name, files in summary.done.items():
        print(f"{name}: " + ", ".join(str(p) for p in files.values()))
    total = len(summary.done) + len(summary.failed)
    print(
        f"predicted {len(summary.done)} of {total} input(s)"
        + (f"; {len(summary.failed)} failed (see above)" if summary.failed else "")
    )
    if summary.failed and len(summary.failed) == 1 and total == 1:
        raise AerialsegError(next(iter(summary.failed.values())))
    return 1 if summary.failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    from aerialseg.models.export import export_onnx
    from aerialseg.models.io import load_model

    model = load_model(args.model)
    check = None
    if args.check_image:
        from rasterio.windows import Window

        from aerialseg.inference.raster import open_input

        raster = open_input(args.check_image)
        rgb, _ = raster.read(Window(0, 0, min(raster.width, 512), min(raster.height, 512)))
        raster.close()
        check = rgb.transpose(1, 2, 0).astype("uint8")
    diff = export_onnx(model, args.onnx, check)
    print(f"wrote {args.onnx}; max |p_onnx - p_torch| = {diff:.2e} on the check image")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from aerialseg.api.app import ServeLimits, create_app, load_engine
    except ImportError as err:
        raise AerialsegError(
            f"serve needs the web extra ({err.name} is missing): pip install 'aerialseg[serve]'"
        ) from None
    device = _device(args.device)
    model = Path(args.model) if args.model else default_model_path()
    loaded = load_engine(model, device, args.precision)
    limits = ServeLimits(
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_megapixels * 1e6),
        workers=args.workers,
        max_queue=args.max_queue,
    )
    print(f"aerialseg: serving {loaded.config.model} on http://{args.host}:{args.port}/")
    uvicorn.run(create_app(loaded, limits), host=args.host, port=args.port, log_level="info")
    return 0


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise AerialsegError("--device cuda: no CUDA GPU is available here; use --device cpu")
    return name


def _add_precision(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="PyTorch arithmetic; auto: bf16 on a CPU that computes it natively (AVX512-BF16"
        " or AMX: faster, same accuracy), else fp32",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aerialseg",
        description="Semantic segmentation of aerial and satellite imagery.",
    )
    parser.add_argument("--version", action="version", version=f"aerialseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="look at a dataset").add_subparsers(
        dest="data_command", required=True, metavar="COMMAND"
    )
    p = data.add_parser(
        "inspect",
        help="pairs per tile, sizes, class shares, unknown colours",
        description="Read every image/mask pair once and summarise the dataset.",
    )
    p.add_argument("path", help="the Kaggle archive.zip or the folder it extracts to")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--classes", help="class table (JSON/YAML); default: the Dubai table")
    p.add_argument(
        "--max-unknown",
        type=float,
        default=0.05,
        metavar="SHARE",
        help="largest share of a mask in unknown colours before it is an error (default 0.05)",
    )
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "train",
        help="train a model into a run folder",
        description="Train a model. Settings come from a preset, then --config, then key=value"
        " overrides (e.g. max_epochs=5 lr=3e-4 crop_size=384). --print-config lists every"
        " key with the value it would take; aerialseg/training/config.py explains each.",
    )
    p.add_argument("--data", help="the Kaggle archive.zip or its folder (required to train)")
    p.add_argument(
        "--preset",
        default="default",
        choices=["default", "seed"],
        help="default: FPN on a pretrained encoder, native-resolution crops;"
        " seed: the original notebook",
    )
    p.add_argument("--config", help="YAML file of config keys")
    p.add_argument("--out", default="runs/latest", help="run folder (default runs/latest)")
    p.add_argument(
        "--split",
        help="split JSON (a 'test' list, optional 'val' and 'train' lists); default: the"
        " protocol's rule",
    )
    p.add_argument("--classes", help="class table (JSON/YAML); default: the Dubai table")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    p.add_argument("--max-time", help="wall-clock budget HH:MM:SS")
    p.add_argument("--devices", type=int, help="devices (GPUs, or CPU processes) for DDP")
    p.add_argument("--num-nodes", type=int, help="machines for DDP")
    p.add_argument("--accelerator", choices=["auto", "cpu", "gpu", "cuda", "mps"])
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the settings this command would train with (YAML, usable as --config) and exit",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="score a model on a split (PROTOCOL.md metrics)",
        description="Predict every image of a split at native resolution and"
        " write metrics.json, confusion.png and panels.png.",
    )
    p.add_argument("model", help="model.pt or a .ckpt from a run folder")
    p.add_argument("--data", required=True, help="the Kaggle archive.zip or its folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--split-file", help="split JSON; default: the protocol's rule")
    p.add_argument("--out", help="output folder (default: beside the model, eval-SPLIT)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--batch-size",
        type=int,
        help="windows per forward pass (default on a CPU: 2 in bf16, 1 in fp32; 8 on a GPU)",
    )
    p.add_argument("--tta", action="store_true", help="score predict --tta's flip average")
    _add_precision(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "predict",
        help="segment images of any size (JPEG, PNG, TIFF, GeoTIFF)",
        description="Predict every input at native resolution, window by window with bounded"
        " memory. Per input NAME (its file name; inputs of one name from different"
        " folders get their folders in it) OUT/NAME_classes.{tif,png} (class ids with a colour"
        " table; GeoTIFF keeps CRS, transform and nodata) and NAME_areas.{csv,json};"
        " optionally a colour mask, an overlay PNG and polygons. 16-bit and float"
        " inputs are stretched per band from their 2nd to 98th percentile to 0..255.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or glob patterns")
    p.add_argument("--model", help="model.pt, .ckpt or exported .onnx (default: the bundled model)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--engine",
        default="torch",
        choices=["torch", "onnx"],
        help="onnx: ONNX Runtime on the CPU, faster there; a .pt model is exported first",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--format",
        default="auto",
        choices=["auto", "tif", "png"],
        help="class raster format; auto: GeoTIFF for georeferenced or TIFF input",
    )
    p.add_argument("--color", action="store_true", help="also write a colour mask")
    p.add_argument("--overlay", action="store_true", help="also write an overlay PNG")
    p.add_argument("--all-outputs", action="store_true", help="colour mask and overlay too")
    p.add_argument("--no-areas", action="store_true", help="skip the per-class area table")
    p.add_argument("--vector", choices=["geojson", "gpkg"], help="also write polygons")
    p.add_argument(
        "--simplify",
        type=float,
        default=0.0,
        help="polygon simplification tolerance, map units (default 0)",
    )
    p.add_argument(
        "--min-area",
        type=float,
        default=0.0,
        help="drop polygons smaller than this, map units squared (default 0)",
    )
    p.add_argument("--bands", help="three 1-based band numbers to use as RGB, e.g. 4,3,2")
    p.add_argument("--tta", action="store_true", help="average over flips (3x slower)")
    p.add_argument("--overlap", type=float, help="window overlap share (default: the model's)")
    p.add_argument(
        "--batch-size",
        type=int,
        help="windows per forward pass (default on a CPU: 2 in bf16, 1 in fp32; 8 on a GPU)",
    )
    p.add_argument("--shard", metavar="I/N", help="predict only inputs I, I+N, ... (0-based)")
    _add_precision(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "export",
        help="export a model to ONNX, checked against PyTorch",
        description="Write an ONNX model with dynamic batch, height and width;"
        " the export is run on onnxruntime and compared with PyTorch.",
    )
    p.add_argument("model", help="model.pt or .ckpt")
    p.add_argument("--onnx", required=True, help="output .onnx path")
    p.add_argument("--check-image", help="image to compare on (default: a synthetic one)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "serve",
        help="HTTP API and web page",
        description="Serve the model: a web page at /, the API under /v1 (OpenAPI"
        " schema at /docs). Predictions run on --workers threads;"
        " up to --max-queue more requests wait, further ones get 503.",
    )
    p.add_argument("--model", help="model.pt or .ckpt (default: the bundled model)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--workers", type=int, default=1, help="predictions at once (default 1)")
    p.add_argument("--max-queue", type=int, default=8, help="waiting requests (default 8)")
    p.add_argument("--max-upload-mb", type=float, default=50, help="upload limit (default 50)")
    p.add_argument("--max-megapixels", type=float, default=40, help="pixel limit (default 40)")
    _add_precision(p)
    p.set_defaults(func=cmd_serve)
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
