"""The subcommands: each a thin function from parsed arguments to the library, returning
the exit code. User errors are raised as AerialsegError; ``main`` prints them."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import yaml

from aerialseg.data.classes import DUBAI_CLASSES, ClassTable
from aerialseg.errors import AerialsegError


def _classes(path: str | None) -> ClassTable:
    return ClassTable.from_file(path) if path else DUBAI_CLASSES


def cmd_inspect(args: argparse.Namespace) -> int:
    from aerialseg.data.inspect import format_report, inspect_dataset
    from aerialseg.data.raster import parse_bands
    from aerialseg.data.source import DatasetSource

    source, bands = DatasetSource(args.path), parse_bands(args.bands)
    report = inspect_dataset(source, _classes(args.classes), args.max_unknown, bands)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from aerialseg.data.source import DatasetSource
    from aerialseg.data.splits import random_split
    from aerialseg.models.io import atomic_write

    if args.classes:
        ClassTable.from_file(args.classes)  # a bad table fails here, not in the train run
    split = random_split(DatasetSource(args.path).pairs, args.val, args.test, args.seed)
    out = Path(args.out)
    atomic_write(out, lambda tmp: split.save(Path(tmp)))
    command = ["aerialseg", "train", "--data", args.path, "--split", str(out)]
    command += ["--classes", args.classes] if args.classes else []
    print(f"{out}: {len(split.train)} train, {len(split.val)} val, {len(split.test)} test images")
    print(f"train with: {shlex.join(command)}")
    if not args.classes:
        print("(masks not in the Dubai set's colours need --classes TABLE: see 'data inspect')")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from aerialseg.training.config import resolve_config
    from aerialseg.training.run import train

    if args.list_settings:
        from aerialseg.training.settings import format_settings

        print(format_settings())
        return 0

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
        raise AerialsegError(
            "train needs --data: a dataset folder of images/ and masks/ (or a zip of one)"
        )
    train(
        cfg,
        args.data,
        out,
        split_file=args.split,
        classes=classes,
        resume=args.resume,
        started=getattr(args, "started", None),
    )  # its summary ends with the model file and the commands to run next
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from aerialseg.evaluation.evaluate import evaluate
    from aerialseg.evaluation.metrics import format_table, headline_keys
    from aerialseg.inference.engine import OnnxEngine
    from aerialseg.models.io import LoadedModel, load_model

    model: LoadedModel | OnnxEngine
    if Path(args.model).suffix == ".onnx":
        if args.precision == "bf16" or args.device == "cuda":
            raise AerialsegError("an ONNX model is scored on ONNX Runtime's CPU, in fp32")
        model = OnnxEngine(args.model)
    else:
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
        pixel_size=args.pixel_size,
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
    confidence = report["confidence"]
    print(
        f"predict --confidence here: mean {confidence['mean']:.3f} at pixel accuracy"
        f" {report['pixel_accuracy']:.3f}, calibration error {confidence['calibration_error']:.3f}"
        f" (temperature {confidence['temperature']:g})"
    )
    print(f"written to {out}/metrics.json (per image too)")
    return 0


def default_model_path() -> Path:
    from aerialseg.models.io import bundled_model_path

    path = bundled_model_path()
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
    from aerialseg.data.raster import check_band_count, parse_bands
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
    outputs |= {"confidence"} if args.confidence or args.all_outputs else set()
    opts = PredictOptions(
        outputs=frozenset(outputs),
        class_format=args.format,
        vector=args.vector,
        simplify=args.simplify,
        min_area=args.min_area,
        bands=parse_bands(args.bands),
        pixel_size=args.pixel_size,
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
    check_band_count(opts.bands, config.in_channels, "--bands")
    # names over every input, not the shard's: shards writing to one folder never collide
    names = output_names(every_input)
    out = Path(args.out)
    created = not out.exists()
    summary = predict_files(engine, config, classes, inputs, out, opts, device, names)
    # Every input failed: leave no empty folder behind. Not when sharded: another shard may
    # be about to write into it.
    if created and not summary.done and args.shard is None and not any(out.iterdir()):
        out.rmdir()
    total = len(summary.done) + len(summary.failed)
    if summary.failed and total == 1:  # one input: its error is the one line to show
        raise AerialsegError(next(iter(summary.failed.values())))
    for name, files in summary.done.items():
        print(f"{name}: " + ", ".join(str(p) for p in files.values()))
    print(
        f"predicted {len(summary.done)} of {total} input(s)"
        + (f"; {len(summary.failed)} failed (see above)" if summary.failed else "")
    )
    return 1 if summary.failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    from aerialseg.models.export import export_onnx
    from aerialseg.models.io import load_model

    model = load_model(args.model)
    check = None
    if args.check_image:
        from rasterio.windows import Window

        from aerialseg.data.raster import open_input

        raster = open_input(args.check_image, model.config.band_tuple)
        values, _ = raster.read(Window(0, 0, min(raster.width, 512), min(raster.height, 512)))
        raster.close()
        check = values.transpose(1, 2, 0).astype("uint8")
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
