"""The ``aerialseg`` argument parser: every subcommand's options and ``--help`` text."""

from __future__ import annotations

import argparse
import os
import textwrap

from aerialseg import __version__
from aerialseg.cli.commands import (
    cmd_evaluate,
    cmd_export,
    cmd_inspect,
    cmd_predict,
    cmd_serve,
    cmd_split,
    cmd_train,
)

DATASET = (
    "the dataset: a folder of images/ and masks/ (flat, or in tile folders such as the Dubai"
    " set's 'Tile 1/'; also image/+mask/, images/+labels/, img/+gt/), a zip of one such as"
    " the Dubai set's Kaggle archive.zip, or a manifest (CSV 'image,label' or YAML) naming"
    " the pairs"
)
CLASSES = (
    "class table (JSON/YAML): each class's name and mask colour or mask value;"
    " default: the Dubai set's six classes"
)
SPLIT = (
    "split JSON (a 'test' list, optional 'val' and 'train' lists), e.g. from 'aerialseg data"
    " split'; default: the Dubai benchmark's rule (image_part_002/005/007 of each tile held out)"
)


SETTINGS = "(the settings)"  # train --help's epilog, filled in by _TrainHelp


class _TrainHelp(argparse.RawDescriptionHelpFormatter):
    """Lists the settings in ``train --help``, read only when help is shown: reading them
    imports the models, which every other command's start would pay for."""

    def add_text(self, text: str | None) -> None:
        if text == SETTINGS:
            from aerialseg.training.settings import format_settings

            text = format_settings()
        super().add_text(text)


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where the network runs; auto: a CUDA GPU if there is one, else the CPU",
    )


def _add_precision(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="PyTorch arithmetic; auto: bf16 on a CPU that computes it natively (AVX512-BF16"
        " or AMX: faster, same accuracy), else fp32",
    )


def _positive_size(text: str) -> float:
    try:
        size = float(text)
    except ValueError:
        size = 0.0
    if not size > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive size in CRS units, e.g. 0.5")
    return size


def _add_pixel_size(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--pixel-size",
        type=_positive_size,
        metavar="SIZE",
        help=f"{what} (default: the model's pixel_size, else the data's own)",
    )


def _add_resize_masks(p: argparse.ArgumentParser, more: str = "") -> None:
    p.add_argument(
        "--resize-masks",
        action="store_true",
        help="resample plain PNG/JPEG masks of another size than their image to its size,"
        " nearest (default: such a pair is an error; 'data inspect' lists them)" + more,
    )


def _add_batch_size(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--batch-size",
        type=int,
        help="windows per forward pass (default on a CPU: 2 in bf16, 1 in fp32; 8 on a GPU)",
    )


def _add_polygon_labels(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group(
        "polygon labels",
        "Label image rasters with polygons: --data then names the rasters (a GeoTIFF, COG or"
        " VRT, a folder of them, a glob, or a URL GDAL reads).",
    )
    group.add_argument(
        "--labels",
        metavar="FILE",
        help="class polygons: GeoPackage, Shapefile, GeoJSON or FlatGeobuf",
    )
    group.add_argument(
        "--label-field",
        metavar="NAME",
        help="the polygons' attribute giving each one's class, matched to the class table by"
        " class name or mask_value",
    )
    group.add_argument(
        "--label-crs",
        metavar="CRS",
        help="the polygons' CRS where the file does not say it, e.g. EPSG:32640 (a GeoJSON"
        " without 'crs' is read as WGS84)",
    )
    group.add_argument(
        "--labelled-area",
        metavar="FILE",
        help="polygons of where the labels hold (default: every image's extent); pixels"
        " outside are left out, pixels inside that no polygon covers get the background"
        " class",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aerialseg",
        description="Semantic segmentation of aerial and satellite imagery.",
    )
    parser.add_argument("--version", action="version", version=f"aerialseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="look at a dataset, split it").add_subparsers(
        dest="data_command", required=True, metavar="COMMAND"
    )
    p = data.add_parser(
        "inspect",
        help="pairs per tile, sizes, class shares, unknown colours",
        description="Read every image/mask pair once and summarise the dataset.",
    )
    p.add_argument("path", help=DATASET)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--classes", help=CLASSES)
    p.add_argument(
        "--bands",
        help="TIFF images: 1-based band numbers to read, e.g. 3,2,1 (default: an RGB or RGBA"
        " image's three)",
    )
    p.add_argument(
        "--max-unknown",
        type=float,
        default=0.05,
        metavar="SHARE",
        help="largest share of a mask in unknown colours before it is an error (default 0.05)",
    )
    p.set_defaults(func=cmd_inspect)
    p = data.add_parser(
        "split",
        help="write a reproducible random split file (for datasets of other names)",
        description="Hold out shares of the images for validation and test, drawn at random"
        " from every tile folder alike, and write them as a split file for 'train --split'."
        " The same seed gives the same split on any machine. (The Dubai dataset needs none:"
        " its default split is the protocol's.)",
    )
    p.add_argument("path", help=DATASET)
    p.add_argument("--out", required=True, help="the split file to write (JSON)")
    p.add_argument(
        "--classes",
        help="the class table the dataset needs (checked here), passed on in the train"
        " command this prints",
    )
    p.add_argument("--val", type=float, default=0.1, help="validation share (default 0.1)")
    p.add_argument("--test", type=float, default=0.2, help="test share (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="which draw (default 0)")
    p.add_argument(
        "--block-size",
        metavar="SIZE",
        help="split large scenes spatially: square blocks of SIZE pixels (512) or map units"
        " (200m), dealt to train, val and test; also writes the blocks as a GeoPackage beside"
        " --out",
    )
    p.add_argument(
        "--buffer",
        type=int,
        metavar="PX",
        help="with --block-size: pixels a block gives up along a block of another split, used"
        " by none (default: the default crop size, 256)",
    )
    _add_polygon_labels(p)
    p.set_defaults(func=cmd_split)

    p = sub.add_parser(
        "train",
        help="train a model into a run folder",
        description=textwrap.fill(
            "Train a model into a run folder. Settings come from a preset, then --config, then"
            " key=value overrides (e.g. max_epochs=5 lr=3e-4 crop_size=384); all of them are"
            " listed below (--list-settings prints only them). --print-config shows the values"
            " a run would take. --max-time bounds the whole command; the run ends with a"
            " summary and the commands to run next.",
            79,  # argparse's own width without a terminal
        ),
        epilog=SETTINGS,
        formatter_class=_TrainHelp,
    )
    p.add_argument("--data", help=DATASET + " (required to train)")
    p.add_argument(
        "--preset",
        default="default",
        choices=["default", "seed", "smoke"],
        help="default: FPN on a pretrained encoder, native-resolution crops;"
        " seed: the original notebook; smoke: the default for 4 steps, validated on one"
        " image, to check a set-up end to end in seconds",
    )
    p.add_argument("--config", help="YAML file of settings (as --print-config writes)")
    p.add_argument("--out", default="runs/latest", help="run folder (default runs/latest)")
    p.add_argument("--split", help=SPLIT)
    p.add_argument("--classes", help=CLASSES)
    _add_polygon_labels(p)
    _add_resize_masks(p, "; the setting resize_masks")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    p.add_argument(
        "--resume-from",
        choices=["last", "best"],
        help="continue the run in --out from this checkpoint (best: e.g. when last.ckpt is"
        " damaged); implies --resume",
    )
    p.add_argument(
        "--max-time",
        metavar="HH:MM:SS",
        help="wall-clock budget of the whole command (loading, training, the last validation,"
        " calibration); the setting max_time",
    )
    p.add_argument("--devices", type=int, help="devices (GPUs, or CPU processes) for DDP")
    p.add_argument("--num-nodes", type=int, help="machines for DDP")
    p.add_argument(
        "--accelerator",
        choices=["auto", "cpu", "gpu", "cuda", "mps"],
        help="what trains; auto (the default): a GPU if there is one, else the CPU",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the settings this command would train with (YAML, usable as --config) and exit",
    )
    p.add_argument(
        "--list-settings",
        action="store_true",
        help="list every setting with its default and meaning, and exit",
    )
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="settings, e.g. lr=3e-4 (listed below)"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="score a model on a split (PROTOCOL.md metrics)",
        description="Predict every image of a split at native resolution and"
        " write metrics.json, confusion.png and panels.png.",
    )
    p.add_argument(
        "model",
        help="model.pt, a .ckpt from a run folder, an .onnx from aerialseg export, or"
        " 'default' for the bundled model",
    )
    p.add_argument("--data", required=True, help=DATASET)
    p.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test", "all"],
        help="which images of the split to score (default test); all: every image of the"
        " dataset, no split file needed",
    )
    p.add_argument(
        "--split-file",
        help=SPLIT + "; a run folder's split.json scores its own; a file of only the images"
        " scored will do",
    )
    p.add_argument(
        "--classes",
        metavar="TABLE",
        help="the dataset's class table (JSON/YAML) where its masks are not in the model's"
        " colours or values; its classes are matched to the model's by name, and metrics.json"
        " says which are scored (default: the model's table)",
    )
    p.add_argument(
        "--max-unknown",
        type=float,
        metavar="SHARE",
        help="largest share of a mask in unknown colours before it is an error (default: the"
        " model's max_unknown, 0.05 unless trained otherwise)",
    )
    _add_resize_masks(p)
    _add_polygon_labels(p)
    p.add_argument("--out", help="output folder (default: beside the model, eval-SPLIT)")
    _add_device(p)
    _add_batch_size(p)
    p.add_argument("--tta", action="store_true", help="score predict --tta's flip average")
    _add_pixel_size(
        p,
        "score a georeferenced dataset on pixels of this size in CRS units,"
        " images and masks resampled",
    )
    _add_precision(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "predict",
        help="segment images of any size (JPEG, PNG, TIFF, GeoTIFF)",
        description="Predict every input at native resolution, window by window with bounded"
        " memory. Per input NAME (its file name; inputs of one name from different"
        " folders get their folders in it) OUT/NAME_classes.{tif,png} (class ids, or the"
        " class table's mask values, with a colour table; GeoTIFF is Cloud Optimized, with"
        " overviews, and keeps CRS, transform and nodata) and NAME_areas.{csv,json};"
        " optionally a colour mask, an overlay PNG, a confidence raster and polygons. 16-bit"
        " and float inputs are stretched per band from their 2nd to 98th percentile to"
        " 0..255.",
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
    _add_device(p)
    p.add_argument(
        "--format",
        default="auto",
        choices=["auto", "tif", "png"],
        help="class raster format; auto: GeoTIFF for georeferenced or TIFF input",
    )
    p.add_argument("--color", action="store_true", help="also write a colour mask")
    p.add_argument("--overlay", action="store_true", help="also write an overlay PNG")
    p.add_argument(
        "--confidence",
        action="store_true",
        help="also write NAME_confidence: each pixel's blended probability of its class, in"
        " percent (0-100; 255: nodata), to find where the model is unsure",
    )
    p.add_argument(
        "--all-outputs", action="store_true", help="colour mask, overlay and confidence too"
    )
    p.add_argument("--no-areas", action="store_true", help="skip the per-class area table")
    p.add_argument("--vector", choices=["geojson", "gpkg"], help="also write polygons")
    p.add_argument(
        "--simplify",
        type=float,
        default=0.0,
        help="smooth away polygon details smaller than this many metres (pixels for a plain"
        " image): the square root of their area, as shapely's coverage_simplify counts it; all"
        " polygons are simplified together, so neighbours keep their shared edges (default 0)",
    )
    p.add_argument(
        "--min-area",
        type=float,
        default=None,
        help="with --vector, merge regions smaller than this into their largest neighbour, in"
        " the class raster and the polygons alike, in m² in any CRS (pixels for a plain image;"
        " default: the area of 4 pixels, which drops specks of 1-3"
        " pixels; 0 keeps all)",
    )
    p.add_argument(
        "--bands",
        help="1-based band numbers to read, as many as the model takes, e.g. 4,3,2 (default:"
        " the bands the model was trained on, else 1-3 of an RGB or RGBA raster)",
    )
    _add_pixel_size(
        p,
        "predict georeferenced inputs on pixels of this size in CRS units"
        " (e.g. 0.5 m), resampled, and write the outputs on that grid",
    )
    p.add_argument("--tta", action="store_true", help="average over flips (3x slower)")
    p.add_argument("--overlap", type=float, help="window overlap share (default: the model's)")
    _add_batch_size(p)
    p.add_argument("--shard", metavar="I/N", help="predict only inputs I, I+N, ... (0-based)")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="predict on Ray workers (pip install 'aerialseg[ray]'): a local Ray without"
        " ADDRESS, or a cluster's ('auto', 'ray://HOST:PORT'); --out must be a folder every"
        " worker sees. Resumable: a second run skips the scenes already done",
    )
    p.add_argument(
        "--ray-workers",
        type=int,
        metavar="N",
        help="with --ray: workers, each loading the model once (default: one per GPU of the"
        " cluster, else one per as many CPUs as torch uses threads here: each worker"
        " computes with this process's threads, for the same bytes)",
    )
    p.add_argument(
        "--block-megapixels",
        type=_positive_size,
        default=64.0,
        metavar="MP",
        help="with --ray: scenes larger than this are split into row blocks predicted by"
        " several workers (default 64); the outputs are the same",
    )
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
        " schema at /openapi.json, docs at /docs). Predictions run on --workers threads;"
        " up to --max-queue more requests wait, further ones get 503. Uploads are read as"
        " JPEG, PNG or TIFF only, with GDAL's network access off.",
    )
    p.add_argument("--model", help="model.pt or .ckpt (default: the bundled model)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 is every"
        " network: set a --token then)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("AERIALSEG_TOKEN"),
        help="require 'Authorization: Bearer TOKEN' on every /v1 request (default: the"
        " AERIALSEG_TOKEN environment variable; none: no access control)",
    )
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    _add_device(p)
    p.add_argument("--workers", type=int, default=1, help="predictions at once (default 1)")
    p.add_argument("--max-queue", type=int, default=8, help="waiting requests (default 8)")
    p.add_argument("--max-upload-mb", type=float, default=50, help="upload limit (default 50)")
    p.add_argument("--max-megapixels", type=float, default=40, help="pixel limit (default 40)")
    p.add_argument(
        "--max-side", type=int, default=20_000, help="longest side in pixels (default 20000)"
    )
    p.add_argument(
        "--max-aspect",
        type=float,
        default=50,
        help="the long side at most this many times the short one (default 50)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=120,
        help="seconds an upload may take to arrive, then 408 (default 120)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        metavar="HOST",
        help="a Host header to answer, repeatable (default: the --host address, plus"
        " localhost and 127.0.0.1 when that is a loopback address; any when it is 0.0.0.0)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web page origin (https://example.org) allowed to call the API, repeatable"
        " (default: none; same-origin requests only)",
    )
    _add_precision(p)
    p.set_defaults(func=cmd_serve)
    return parser
