"""The subcommands: each a thin function from parsed arguments to the library, returning
the exit code. User errors are raised as AerialsegError; ``main`` prints them."""

from __future__ import annotations

import argparse
import json
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

    split = random_split(DatasetSource(args.path).pairs, args.val, args.test, args.seed)
    out = Path(args.out)
    atomic_write(out, lambda tmp: split.save(Path(tmp)))
    print(
        f"{out}: {len(split.train)} train, {len(split.val)} val, {len(split.test)} test"
        f" images; train with: aerialseg train --data {args.path} --split {out}"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from aerialseg.public import train, training_config
    from aerialseg.training.config import parse_overrides

    settings = parse_overrides(list(args.overrides))
    launch = {
        key: getattr(args, key) for key in ("max_time", "devices", "num_nodes", "accelerator")
    }
    if args.print_config:
        given = {key: value for key, value in launch.items() if value is not None}
        cfg = training_config(
            preset=args.preset,
            config=args.config,
            settings={**settings, **given},
            resume=args.out if args.resume else None,
        )
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    if args.data is None:
        raise AerialsegError("train needs --data: the Kaggle archive.zip or its folder")
    model_path = train(
        args.data,
        args.out,
        preset=args.preset,
        config=args.config,
        settings=settings,
        classes=args.classes,
        split=args.split,
        resume=args.resume,
        **launch,
    )
    print(f"model written to {model_path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from aerialseg.evaluation.metrics import format_table
    from aerialseg.public import evaluate

    report = evaluate(
        args.model,
        args.data,
        split=args.split,
        split_file=args.split_file,
        out=args.out,
        device=args.device,
        batch_size=args.batch_size,
        tta=args.tta,
        pixel_size=args.pixel_size,
        precision=args.precision,
    )
    print(
        f"{args.split} split, {len(report['images'])} images, model {report['model']},"
        f" {report['precision']}"
    )
    print(format_table(report))
    key = report["headline"][0]
    scored = sorted((v[key], k) for k, v in report["per_image"].items() if v[key] is not None)
    lowest = ", ".join(f"{image_id} {value:.4f}" for value, image_id in scored[:3])
    print(f"lowest {key} of one image: {lowest}")
    confidence = report["confidence"]
    print(
        f"predict --confidence here: mean {confidence['mean']:.3f} at pixel accuracy"
        f" {report['pixel_accuracy']:.3f}, calibration error {confidence['calibration_error']:.3f}"
        f" (temperature {confidence['temperature']:g})"
    )
    out = Path(args.out) if args.out else Path(args.model).parent / f"eval-{args.split}"
    print(f"written to {out}/metrics.json (per image too)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from aerialseg.data.raster import parse_bands
    from aerialseg.public import predict_files

    summary = predict_files(
        args.inputs,
        args.out,
        model=args.model,
        color=args.color or args.all_outputs,
        overlay=args.overlay or args.all_outputs,
        confidence=args.confidence or args.all_outputs,
        areas=not args.no_areas,
        class_format=args.format,
        vector=args.vector,
        simplify=args.simplify,
        min_area=args.min_area,
        bands=parse_bands(args.bands),
        pixel_size=args.pixel_size,
        tta=args.tta,
        batch_size=args.batch_size,
        overlap=args.overlap,
        engine=args.engine,
        device=args.device,
        precision=args.precision,
        shard=args.shard,
    )
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
    from aerialseg.public import default_model_path, resolve_device

    device = resolve_device(args.device)
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
