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

EXIT_PROBLEMS = 2  # as any user error (aerialseg.cli.EXIT_USER_ERROR)


def _classes(path: str | None) -> ClassTable:
    return ClassTable.from_file(path) if path else DUBAI_CLASSES


def cmd_inspect(args: argparse.Namespace) -> int:
    from aerialseg.data.inspect import format_report, inspect_dataset
    from aerialseg.data.raster import parse_bands
    from aerialseg.data.source import DatasetSource

    source, bands = DatasetSource(args.path, strict=False), parse_bands(args.bands)
    report = inspect_dataset(source, _classes(args.classes), args.max_unknown, bands)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if report["problems"]:  # the report is the message; the exit status says it failed
        print(
            f"aerialseg: error: {len(report['problems'])} problem(s) in the dataset, listed"
            f" above; the first: {report['problems'][0]['message']}",
            file=sys.stderr,
        )
        return EXIT_PROBLEMS
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from aerialseg.data.scenes import open_dataset
    from aerialseg.data.splits import random_split
    from aerialseg.models.io import atomic_write
    from aerialseg.public import polygon_spec

    table = _classes(args.classes)  # a bad table fails here, not in the train run
    polygons = polygon_spec(args.labels, args.label_field, args.label_crs, args.labelled_area)
    data = open_dataset(args.path, table, polygons)
    out = Path(args.out)
    if args.block_size:
        split, blocks_note = _block_split(args, data, out)
    else:
        split, blocks_note = random_split(data.pairs, args.val, args.test, args.seed), ""
    atomic_write(out, lambda tmp: split.save(Path(tmp)))
    command = ["aerialseg", "train", "--data", args.path, "--split", str(out)]
    command += ["--classes", args.classes] if args.classes else []
    for flag in ("labels", "label_field", "label_crs", "labelled_area"):
        value = getattr(args, flag)
        command += [f"--{flag.replace('_', '-')}", value] if value else []
    unit = "block(s)" if args.block_size else "images"
    counts = [len(split.parts(n)) for n in ("train", "val", "test")]
    print(f"{out}: {counts[0]} train, {counts[1]} val, {counts[2]} test {unit}{blocks_note}")
    print(f"train with: {shlex.join(command)}")
    if not args.classes:
        print("(masks not in the Dubai set's colours need --classes TABLE: see 'data inspect')")
    return 0


def _block_split(args: argparse.Namespace, data, out: Path):
    from aerialseg.data.blocks import block_split, write_blocks
    from aerialseg.data.scenes import georeferences, scene_grids
    from aerialseg.data.splits import blocks_split
    from aerialseg.models.io import atomic_write
    from aerialseg.training.config import TrainConfig

    buffer = TrainConfig().crop_size if args.buffer is None else args.buffer
    blocks = block_split(scene_grids(data), args.block_size, buffer, args.val, args.test, args.seed)
    rule = (
        f"blocks of {args.block_size} (px unless m), buffer {buffer} px: test {args.test:g} and"
        f" val {args.val:g} of the blocks, seed {args.seed} (aerialseg data split)"
    )
    grids = georeferences(data)
    if not grids:
        return blocks_split(blocks, rule), " (no georeference: no GeoPackage of the blocks)"
    gpkg = out.with_suffix(".gpkg")
    atomic_write(gpkg, lambda tmp: write_blocks(tmp, blocks, grids))
    return blocks_split(blocks, rule), f"; the blocks for QGIS: {gpkg}"


def cmd_train(args: argparse.Namespace) -> int:
    from aerialseg.public import train, training_config
    from aerialseg.training.config import parse_overrides

    if args.list_settings:
        from aerialseg.training.settings import format_settings

        print(format_settings())
        return 0

    settings = parse_overrides(list(args.overrides))
    if args.resize_masks:
        settings["resize_masks"] = True
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
        raise AerialsegError(
            "train needs --data: a dataset folder of images/ and masks/ (or a zip of one)"
        )
    try:
        train(
            args.data,
            args.out,
            preset=args.preset,
            config=args.config,
            settings=settings,
            classes=args.classes,
            split=args.split,
            labels=args.labels,
            label_field=args.label_field,
            label_crs=args.label_crs,
            labelled_area=args.labelled_area,
            resume=args.resume,
            resume_from=args.resume_from,
            started=getattr(args, "started", None),
            **launch,
        )  # its summary ends with the model file and the commands to run next
    except KeyboardInterrupt:  # Ctrl-C, in Lightning's loop or around it
        print(f"aerialseg: train interrupted; {_resume_hint(args)}", file=sys.stderr)
        return 130
    return 0


def _resume_hint(args: argparse.Namespace) -> str:
    """What to run after Ctrl-C: the command that continues the run from its checkpoint
    (its settings, classes and split are saved in --out; polygon labels are not)."""
    checkpoints = Path(args.out) / "checkpoints"
    if (checkpoints / "last.ckpt").is_file():
        how = ["--resume"]
    elif (checkpoints / "best.ckpt").is_file():
        how = ["--resume-from", "best"]
    else:
        return "no checkpoint was written yet: run the same command again to start over"
    argv = ["aerialseg", "train", "--data", str(args.data), "--out", str(args.out)]
    for name in ("labels", "label_field", "label_crs", "labelled_area"):
        if getattr(args, name, None) is not None:
            argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return "resume with: " + shlex.join([*argv, *how])


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
        labels=args.labels,
        label_field=args.label_field,
        label_crs=args.label_crs,
        labelled_area=args.labelled_area,
        classes=args.classes,
        max_unknown=args.max_unknown,
        resize_masks=args.resize_masks,
    )
    print(
        f"{args.split} split, {len(report['images'])} images, model {report['model']},"
        f" {report['precision']}"
    )
    match = report["class_match"]
    if match:
        print(
            "classes matched by name: "
            + ", ".join(match["matched"])
            + "".join(
                f"; {what}: {', '.join(match[key])}"
                for key, what in (
                    ("dataset_only", "the dataset's, not the model's (not scored)"),
                    ("model_only", "the model's, not the dataset's (left out of mIoU)"),
                )
                if match[key]
            )
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
    from aerialseg.public import predict_files, predict_options

    outputs = {
        "color": args.color or args.all_outputs,
        "overlay": args.overlay or args.all_outputs,
        "confidence": args.confidence or args.all_outputs,
        "areas": not args.no_areas,
        "class_format": args.format,
        "vector": args.vector,
        "simplify": args.simplify,
        "min_area": args.min_area,
        "bands": parse_bands(args.bands),
        "pixel_size": args.pixel_size,
        "tta": args.tta,
        "batch_size": args.batch_size,
        "overlap": args.overlap,
    }
    if args.ray is not None:
        return _predict_on_ray(args, predict_options(**outputs))
    summary = predict_files(
        args.inputs,
        args.out,
        model=args.model,
        engine=args.engine,
        device=args.device,
        precision=args.precision,
        shard=args.shard,
        **outputs,
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


def _predict_on_ray(args: argparse.Namespace, opts) -> int:
    """predict --ray: the same outputs, from Ray workers; one summary line at the end."""
    from aerialseg.data.raster import check_band_count
    from aerialseg.inference.distributed import (
        RaySettings,
        WorkerModel,
        predict_on_ray,
        ray_inputs,
    )
    from aerialseg.inference.load import load_predictor
    from aerialseg.models.io import model_path as find_model

    if args.shard is not None:
        raise AerialsegError("--ray hands scenes out itself; drop --shard")
    inputs, names = ray_inputs(args.inputs)
    if not inputs:
        raise AerialsegError("no input images found; give files, folders, glob patterns or URLs")
    if args.ray_workers is not None and args.ray_workers < 1:
        raise AerialsegError(f"--ray-workers {args.ray_workers}: give 1 or more")
    model_path = find_model(args.model)
    # Loaded here once too, so that a bad model file is one line before Ray starts.
    spec = load_predictor(model_path, device="cpu", precision="fp32").spec  # .onnx: on ORT
    check_band_count(opts.bands, spec.in_channels, "--bands")
    worker = WorkerModel(str(model_path.resolve()), args.engine, args.device, args.precision)
    settings = RaySettings(
        address=None if args.ray == "local" else args.ray,
        workers=args.ray_workers,
        block_pixels=args.block_megapixels * 1e6,
    )
    out = Path(args.out)
    created = not out.exists()
    summary = predict_on_ray(worker, model_path, inputs, out, opts, names, settings)
    if created and not summary.done and not any(out.iterdir()):
        out.rmdir()
    total = len(inputs)
    if summary.failed and total == 1:
        raise AerialsegError(next(iter(summary.failed.values())))
    megapixels = summary.pixels / 1e6
    print(
        f"predicted {len(summary.done)} of {total} scene(s)"
        + (f" ({summary.skipped} done before, skipped)" if summary.skipped else "")
        + f": {megapixels:.1f} MP in {summary.seconds:.1f} s"
        f" ({megapixels / max(summary.seconds, 1e-9):.2f} MP/s); {summary.retries} retried"
        f" after a worker died; {len(summary.failed)} failed"
        + (" (see above)" if summary.failed else "")
    )
    return 1 if summary.failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    from aerialseg.public import export

    diff = export(args.model, args.onnx, check_image=args.check_image)
    print(f"wrote {args.onnx}; max |p_onnx - p_torch| = {diff:.2e} on the check image")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from aerialseg.api.app import ServeLimits, create_app, load_for_serving
        from aerialseg.api.guard import default_allowed_hosts
    except ImportError as err:
        raise AerialsegError(
            f"serve needs the web extra ({err.name} is missing): pip install 'aerialseg[serve]'"
        ) from None
    one_malloc_arena()
    loaded = load_for_serving(args.model, args.device, args.precision)
    limits = ServeLimits(
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_megapixels * 1e6),
        workers=args.workers,
        max_queue=args.max_queue,
        max_side=args.max_side,
        max_aspect=args.max_aspect,
        body_timeout_s=args.body_timeout,
    )
    if not args.token and not _loopback(args.host):
        print(
            f"aerialseg: warning: listening on {args.host} without a token: anyone who reaches"
            " this port can use the API; set --token (or AERIALSEG_TOKEN) to require one",
            file=sys.stderr,
        )
    print(f"aerialseg: serving {loaded.spec.model} on http://{args.host}:{args.port}/")
    app = create_app(
        loaded,
        limits,
        token=args.token or None,
        allowed_hosts=args.allowed_host or default_allowed_hosts(args.host),
        cors_origins=args.cors_origin,
    )
    # An idle kept-alive connection is closed after 5 s; an upload's own deadline is the
    # guard's (--body-timeout).
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_keep_alive=5)
    return 0


def one_malloc_arena() -> None:
    """Let every thread of the server allocate from one glibc malloc arena.

    glibc gives each thread that allocates its own arena, and memory freed in one is not
    returned to the others: predicting on the server's worker threads peaked 61 MB (10 MP
    upload) to 86 MB (40 MP) above ``aerialseg predict`` for the same image, and stayed
    there. With one arena the server's peak fell below the CLI's (1079 against 1091 MB
    at 10 MP; bench/serve_memory.py). The threads spend their time in convolutions, not
    in malloc, so the shared lock costs nothing measurable. Elsewhere than glibc: nothing.
    """
    import ctypes
    import ctypes.util

    m_arena_max = -8  # glibc's malloc.h
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(m_arena_max, 1)
    except (OSError, AttributeError):
        pass


def _loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only reaches this machine."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to any network
