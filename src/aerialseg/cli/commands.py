"""The subcommands: each calls its function of ``aerialseg.public`` with the parsed
arguments (cli.parser made them from its signature) and prints what it returns, returning
the exit code. User errors are raised as AerialsegError; ``main`` prints them."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from aerialseg.errors import AerialsegError, printable
from aerialseg.models.names import SIZE_MULTIPLE
from aerialseg.options import as_flags, command_line
from aerialseg.yamltext import dump_yaml

EXIT_PROBLEMS = 2  # as any user error (aerialseg.cli.EXIT_USER_ERROR)
# The options that say how a dataset is read (a run's: training.summary.data_options): a
# command printed for the same data repeats each one that was given.
DATA_OPTIONS = ("labels", "label_field", "label_crs", "labelled_area", "resize_masks")


def call(args: argparse.Namespace, **given: Any) -> Any:
    """The command's function, called with the parsed arguments (``given`` over them)."""
    command = args.command
    values = {option.name: getattr(args, option.name) for option in command.options()}
    return command.function(**(values | given))


def _flags(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    """The flags and values of ``names`` that were given, as typed (a command without
    one of them gives none)."""
    return as_flags({name: getattr(args, name, None) for name in names})


def cmd_inspect(args: argparse.Namespace) -> int:
    from aerialseg.data.inspect import format_report

    report = call(args)
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
    counts = call(args)
    unit, note = "images", ""
    if args.block_size:
        unit, gpkg = "block(s)", counts["blocks"]
        note = f"; the blocks for QGIS: {gpkg}" if gpkg else " (no georeference: no GeoPackage"
        note += "" if gpkg else " of the blocks)"
    command = ["aerialseg", "train", "--data", args.data, "--split", args.out]
    command += _flags(args, ("classes", *DATA_OPTIONS))
    command += [f"pixel_size={args.pixel_size}"] if args.pixel_size else []  # the split's grid
    command += [f"crop_size={counts['crop_size']}"] if counts.get("crop_size") else []
    print(
        f"{args.out}: {counts['train']} train, {counts['val']} val, {counts['test']} test"
        f" {unit}{note}"
    )
    if counts.get("on_shared_grids"):
        print(
            f"{counts['on_shared_grids']} scene(s) lie on another's grid (one ground at two"
            " dates, or tiles side by side): each block of ground went to one split in all of"
            " them, and buffers run across their edges"
        )
    if counts["bands"]:  # train refuses such images without bands=
        bands = ",".join(map(str, counts["bands"]))
        command.append(f"bands=[{bands}]")
        print(
            f"the images are not 3-band RGB: train reads their bands {bands} as red, green"
            " and blue; change bands= below if they are in another order"
        )
    print(f"train with: {command_line(command)}")
    if not args.classes and not args.labels:
        print("(masks not in the Dubai set's colours need --classes TABLE: see 'data inspect')")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from aerialseg.public import launch_settings, training_config
    from aerialseg.training.config import parse_overrides

    if args.list_settings:
        from aerialseg.training.settings import format_settings

        print(format_settings())
        return 0

    settings = parse_overrides(list(args.overrides))
    if args.print_config:
        launch = ("max_time", "devices", "num_nodes", "accelerator", "resize_masks")
        given = launch_settings(*(getattr(args, key) for key in launch))
        cfg = training_config(
            preset=args.preset,
            config=args.config,
            settings={**settings, **given},
            resume=args.out if args.resume or args.resume_from else None,  # it implies it
        )
        print(dump_yaml(cfg.to_dict()), end="")
        return 0
    if args.data is None:
        raise AerialsegError(
            "train needs --data: a dataset folder of images/ and masks/ (or a zip of one)"
        )
    try:
        # its summary ends with the model file and the commands to run next
        call(args, settings=settings, started=getattr(args, "started", None))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM, in Lightning's loop or around it
        from aerialseg.cli import interrupted_exit

        return interrupted_exit("train", _resume_hint(args))
    return 0


def _resume_hint(args: argparse.Namespace) -> str:
    """What to run after Ctrl-C: the command that continues the run from its checkpoint
    (its settings, classes and split are saved in --out, its polygon labels are not: it
    repeats every option that says how the data is read)."""
    checkpoints = Path(args.out) / "checkpoints"
    if (checkpoints / "last.ckpt").is_file():
        how = ["--resume"]
    elif (checkpoints / "best.ckpt").is_file():
        how = ["--resume-from", "best"]
    else:
        return "no checkpoint was written yet: run the same command again to start over"
    argv = ["aerialseg", "train", *_flags(args, ("data", "out", *DATA_OPTIONS))]
    return "resume with: " + command_line([*argv, *how])


def cmd_evaluate(args: argparse.Namespace) -> int:
    from aerialseg.evaluation.metrics import format_table
    from aerialseg.public import evaluation_folder, model_path

    report = call(args)
    print(
        f"{args.split} split, {len(report['images'])} {report['scored']}, model {report['model']},"
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
    out = Path(args.out) if args.out else evaluation_folder(model_path(args.model), args.split)
    print(f"written to {out}/metrics.json (per image too)")
    worst = report["files"].get(scored[0][1]) if scored else None
    if worst is not None:  # a look at where the model is weakest, with its doubt
        look = ["aerialseg", "predict", worst, "--model", args.model, "--confidence"]
        print("next:\n  " + command_line([*look, *_as_scored(args), "--out", out / "lowest"]))
    return 0


def _as_scored(args: argparse.Namespace) -> list[str]:
    """predict's flags that read and predict an image as evaluate scored it."""
    flags = ["--bands", ",".join(map(str, args.bands))] if args.bands else []
    if args.pixel_size:
        flags += ["--pixel-size", str(args.pixel_size)]
    flags += ["--tta"] if args.tta else []
    for name in ("device", "precision"):
        if getattr(args, name) != "auto":
            flags += [f"--{name}", getattr(args, name)]
    return flags


def cmd_suggest(args: argparse.Namespace) -> int:
    found = call(args)
    print(f"{len(found.tasks)} task(s) of {found.candidates} candidate block(s), best first:")
    for task in found.tasks[:10]:
        print(f"  {task['rank']:>3}  {printable(task['scene'])}  {task['reason']}")
    if len(found.tasks) > 10:
        print(f"  ... {len(found.tasks) - 10} more in the file")
    print(f"wrote {' '.join(shlex.quote(str(p)) for p in found.files.values())}")
    if "labelled_area" in found.files:  # georeferenced: the labels can be polygons
        print("\n".join(_labelling_round(args, found.files, found.pixel_size, found.tasks)))
    return 0


def _labelling_round(
    args: argparse.Namespace, files: dict[str, Path], pixel_size: float | None, tasks: list
) -> list[str]:
    """What to do with the tasks: label them, then the commands that split the labelled
    blocks, fine-tune on them and ask for the next tasks, with the files suggest wrote
    (docs/suggest.md's loop); ``pixel_size``: the tasks' grid (--pixel-size, else the
    model's)."""
    from aerialseg.data.classes import ClassTable
    from aerialseg.training.config import TrainConfig

    out, field = files["tasks"], args.label_field
    labels = Path(args.labels) if args.labels else out.with_name(f"{out.stem}_labels.gpkg")
    table = ClassTable.from_file(files["classes"])
    uncovered = (
        f"pixels no polygon covers are {table.names[table.background_id]}"
        if table.background_id is not None
        else "pixels no polygon covers are left out of training: cover each task"
    )
    how = (
        f"label the tasks in QGIS: open {shlex.quote(str(out))}"
        + " (its prelabel layer holds the model's polygons to correct)" * args.prelabel
        + f" and draw polygons of every class inside each task into {shlex.quote(str(labels))},"
        f" their {field!r} attribute naming a class of {shlex.quote(str(files['classes']))}"
        f" ({uncovered}); then"
    )
    if len(args.scenes) != 1:  # data split takes one folder, file or glob
        return [f"{how} fine-tune on them as docs/suggest.md's loop shows"]
    scenes, split = args.scenes[0], out.with_name(f"{out.stem}_split.json")
    area = str(files["labelled_area"])
    read = ["--labels", str(labels), "--label-field", field]
    read += ["--label-crs", args.label_crs] if args.label_crs else []
    reading = [f"bands=[{','.join(map(str, args.bands))}]"] if args.bands else []
    # the tasks' grid: the split cuts its blocks on it, the run reads the scenes on it (a
    # review: a model's own pixel size, unasked, cut each task in four)
    on_grid = ["--pixel-size", str(pixel_size)] if pixel_size else []
    reading += [f"pixel_size={pixel_size}"] if pixel_size else []
    # crops that fit the tasks (a review: 256 px crops of 50 px tasks were mostly padding)
    crop = max(min(t["window"][2:]) for t in tasks) // SIZE_MULTIPLE * SIZE_MULTIPLE
    reading += [f"crop_size={crop}"] if SIZE_MULTIPLE <= crop < TrainConfig().crop_size else []
    run = out.parent / "runs" / out.stem
    split_cmd = ["aerialseg", "data", "split", scenes, *read, "--classes", str(files["classes"])]
    split_cmd += ["--labelled-area", area, "--block-size", str(args.block_size), "--buffer", "0"]
    split_cmd += on_grid
    earlier = _split_of_round_before(args.labelled_area)
    split_cmd += ["--keep", str(earlier)] if earlier else []  # last round's blocks stay
    if args.count == 1 and not earlier:  # a split needs a block to train on and one to validate
        return [f"{how} fine-tune once two tasks at least are labelled (suggest --count 2):"
                " a run trains on some and validates on another"]  # fmt: skip
    # a test share takes a block at least: of 2 tasks, none would be left to train on (a
    # review: the printed split refused them)
    split_cmd += ["--test", "0"] if args.count < 3 else []
    train = ["aerialseg", "train", "--data", scenes, *read, "--classes", str(files["classes"])]
    train += ["--labelled-area", area, "--split", str(split), "--preset", "finetune", *reading]
    train += [f"init_from={args.model}"] if args.model else []  # finetune's: the bundled
    again = ["aerialseg", "suggest", scenes, "--model", str(run / "model.pt"), *read]
    again += ["--labelled-area", area, "--out", str(_next_round(out)), "--count", str(args.count)]
    again += ["--block-size", str(args.block_size)]
    again += ["--strategy", args.strategy] if args.strategy != "mixed" else []
    again += _flags(args, ("min_distance", "prelabel", "bands")) + on_grid
    unkept = (  # a labelled area under another name than suggest gave it
        [
            f"(if a split of an earlier round dealt the blocks of {args.labelled_area}, add"
            " --keep with that split file to the split above, so that none of them moves)"
        ]
        if args.labelled_area and not earlier
        else []
    )
    return [
        f"{how}:",
        "next:",
        "  " + command_line([*split_cmd, "--out", split]),
        "  " + command_line([*train, "--out", run]),
        "  " + command_line(again),
        *unkept,
    ]


def _next_round(out: Path) -> Path:
    """The tasks file of the round after ``out``'s: tasks.gpkg -> tasks2.gpkg -> tasks3.gpkg."""
    stem = out.stem.rstrip("0123456789")
    number = int(out.stem[len(stem) :] or 1)
    return out.with_name(f"{stem}{number + 1}{out.suffix}")


def _split_of_round_before(labelled_area: str | None) -> Path | None:
    """The split of the round whose labelled area this round was given: suggest writes
    NAME_labelled_area.gpkg and prints a split into NAME_split.json beside it, so that
    split, where it was written; else None, a first round. Found beside the labelled area
    whatever this round's --out (a review: round2.gpkg, as docs/suggest.md names it, kept
    nothing, and the printed split dealt the last round's test block to validation; a new
    area's tasks, site2.gpkg, kept site1_split.json of another scene)."""
    if labelled_area is None:
        return None
    given = Path(labelled_area)
    stem = given.name.removesuffix("_labelled_area.gpkg")
    split = given.with_name(f"{stem}_split.json")
    return split if stem != given.name and split.is_file() else None


def cmd_predict(args: argparse.Namespace) -> int:
    every = args.all_outputs or None  # None: as the flags say
    summary = call(
        args,
        color=every or args.color,
        overlay=every or args.overlay,
        confidence=every or args.confidence,
    )
    total = len(summary.done) + len(summary.failed)
    if args.ray is not None:
        total += summary.skipped
    if summary.failed and total == 1:  # one input: its error is the one line to show
        raise AerialsegError(next(iter(summary.failed.values())))
    if args.ray is not None:
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
    for name, files in summary.done.items():
        print(printable(f"{name}: " + ", ".join(str(p) for p in files.values())))
    print(
        f"predicted {len(summary.done)} of {total} input(s)"
        + (f"; {len(summary.failed)} failed (see above)" if summary.failed else "")
    )
    return 1 if summary.failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    diff = call(args)
    print(f"wrote {args.onnx}; max |p_onnx - p_torch| = {diff:.2e} on the check image")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    call(args)
    return 0
