"""Bad input: one clear line on stderr, exit code 2, no traceback, nothing half-written."""

from __future__ import annotations

import argparse
import errno
import shlex
import subprocess
import sys
import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from aerialseg.cli import main
from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.training.config import TrainConfig, resolve_config
from tests.helpers.geotiff import VALUE_CLASSES, write_geotiff_dataset
from tests.helpers.hostile import bomb_png
from tests.helpers.images import write_dataset
from tests.helpers.models import FAST as TINY_RUN

# The helpers' few-second run, halved: later settings override earlier ones.
FAST = [*TINY_RUN, "samples_per_epoch=4", "max_epochs=1"]


def run_fails(argv: list[str], capsys, *fragments: str) -> str:
    assert main(argv) == 2
    # What a terminal shows: progress bars erase themselves with carriage returns.
    err = "\n".join(line.split("\r")[-1] for line in capsys.readouterr().err.split("\n")).strip()
    assert err.startswith("aerialseg: error: ") and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def train_args(data: Path, out: Path) -> list[str]:
    return ["train", "--data", str(data), "--out", str(out), *FAST]


def test_image_without_mask(fresh_dataset, tmp_path, capsys):
    (fresh_dataset / "Tile 1" / "masks" / "image_part_004.png").unlink()
    run_fails(
        train_args(fresh_dataset, tmp_path / "r"),
        capsys,
        "Tile 1/images/image_part_004.jpg",
        "has no mask",
    )
    assert not (tmp_path / "r").exists()


def test_mask_size_differs(fresh_dataset, tmp_path, capsys):
    path = fresh_dataset / "Tile 2" / "masks" / "image_part_001.png"
    Image.open(path).resize((40, 40)).save(path)
    run_fails(
        train_args(fresh_dataset, tmp_path / "r"),
        capsys,
        "Tile 2/masks/image_part_001.png",
        "40x40",
    )
    assert not (tmp_path / "r").exists()  # nothing written for a run that never started


def test_truncated_image(fresh_dataset, tmp_path, capsys):
    path = fresh_dataset / "Tile 1" / "images" / "image_part_003.jpg"
    path.write_bytes(path.read_bytes()[:400])
    run_fails(["data", "inspect", str(fresh_dataset)], capsys, "Tile 1/images/image_part_003.jpg")


def test_wrong_layout(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "photos" / "a.jpg")
    run_fails(["data", "inspect", str(tmp_path)], capsys, "images/ + masks/", "img/ + gt/")


def test_empty_dataset(tmp_path, capsys):
    for sub in ("images", "masks"):
        (tmp_path / "Tile 1" / sub).mkdir(parents=True)
    (tmp_path / "Tile 1" / "masks" / "x.png").write_bytes(b"")
    (tmp_path / "Tile 1" / "images" / "readme.txt").write_text("")
    run_fails(["data", "inspect", str(tmp_path)], capsys, "empty")


def test_zip_that_is_not_the_dataset(tmp_path, capsys):
    with zipfile.ZipFile(tmp_path / "archive.zip", "w") as z:
        z.writestr("data/table.csv", "a,b\n")
    run_fails(["data", "inspect", str(tmp_path / "archive.zip")], capsys, "archive.zip")


def test_masks_in_other_colours(fresh_dataset, capsys):
    path = fresh_dataset / "Tile 1" / "masks" / "image_part_002.png"
    Image.fromarray(np.full((72, 80, 3), (80, 227, 194), dtype=np.uint8)).save(path)
    run_fails(
        ["data", "inspect", str(fresh_dataset)],
        capsys,
        "image_part_002.png",
        "#50E3C2",
        "--classes",
    )


def test_bad_override(tiny_dataset, tmp_path, capsys):
    run_fails(train_args(tiny_dataset, tmp_path / "r") + ["lr=fast"], capsys, "lr")


def test_evaluate_with_a_file_that_is_not_a_model(tiny_dataset, tmp_path, capsys):
    (tmp_path / "model.pt").write_text("not a model")
    run_fails(
        ["evaluate", str(tmp_path / "model.pt"), "--data", str(tiny_dataset)],
        capsys,
        "not an aerialseg model file",
    )


def test_resume_without_a_run(tiny_dataset, tmp_path, capsys):
    run_fails(
        train_args(tiny_dataset, tmp_path / "none") + ["--resume"], capsys, "nothing to resume"
    )


def test_unknown_subcommand_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fly"])
    assert exc.value.code == 2


def test_help_explains_every_command(capsys):
    for cmd in (
        ["--help"],
        ["train", "--help"],
        ["evaluate", "--help"],
        ["data", "inspect", "--help"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(cmd)
        assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "key=value" in out and "archive.zip" in out and "native resolution" in out


def test_train_without_data(tmp_path, capsys):
    run_fails(["train", "--out", str(tmp_path / "run"), *FAST], capsys, "needs --data")
    assert not (tmp_path / "run").exists()


def test_print_config_shows_the_settings_a_run_would_use(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("mine.yaml").write_text("lr: 0.01\ncrop_size: 512\n")
    argv = ["train", "--preset", "seed", "--config", "mine.yaml", "crop_size=384", "--max-time"]
    assert main([*argv, "00:10:00", "--print-config"]) == 0

    printed = yaml.safe_load(capsys.readouterr().out)
    # preset, then file, then overrides, each over the last
    assert (printed["model"], printed["lr"], printed["crop_size"]) == ("seed-unet", 0.01, 384)
    assert printed["max_time"] == "00:10:00"
    assert set(printed) == {f.name for f in fields(TrainConfig)}  # every key
    # usable as --config as it is: it gives back the same settings over any preset
    Path("printed.yaml").write_text(yaml.safe_dump(printed))
    assert resolve_config("default", "printed.yaml").to_dict() == printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml", "printed.yaml"]
    # a run's saved settings, with --resume or --resume-from, which implies it (a review:
    # --resume-from alone printed the default preset's)
    Path("run").mkdir()
    Path("run/config.yaml").write_text(yaml.safe_dump(printed))
    # settings in two groups, before the options and after them (a review: the second was
    # "unrecognized arguments")
    assert main(["train", "crop_size=64", "--out", "x", "lr=0.03", "--print-config"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert (shown["crop_size"], shown["lr"]) == (64, 0.03)
    with pytest.raises(SystemExit):
        main(["train", "crop_size=64", "--out", "x", "lr=0.03", "stray", "--print-config"])
    assert "unrecognized arguments: stray" in capsys.readouterr().err
    for resume in (["--resume"], ["--resume-from", "best"]):
        assert main(["train", "--out", "run", *resume, "lr=0.02", "--print-config"]) == 0
        shown = yaml.safe_load(capsys.readouterr().out)
        assert (shown["model"], shown["lr"], shown["crop_size"]) == ("seed-unet", 0.02, 384)


def test_own_geotiffs_say_what_to_pass(tmp_path, capsys):
    root = write_geotiff_dataset(tmp_path / "own")
    split = tmp_path / "split.json"
    assert main(["data", "split", str(root), "--out", str(split)]) == 0
    inspect = ["data", "inspect", str(root)]
    # inspect reads no band it is not asked for: the class table is what it finds wrong
    run_fails(inspect, capsys, "masks/scene_0.tif", "mask_value")
    run_fails([*inspect, "--bands", "3,2,1"], capsys, "masks/scene_0.tif", "mask_value")
    run_fails([*inspect, "--bands", "3,2,5"], capsys, "scene_0.tif", "asks for band 5")
    train = ["train", "--data", str(root), "--split", str(split), "--out", str(tmp_path / "r")]
    run_fails([*train, *FAST], capsys, "masks/scene_", "mask_value with --classes")
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    train += ["--classes", str(table)]
    run_fails([*train, *FAST], capsys, "scene_", "choose them with bands=, e.g. bands=[1,2,3]")
    assert not (tmp_path / "r").exists()


def _options(parser: argparse.ArgumentParser, name: str = "aerialseg"):
    """(command, option) for every option and positional of every (sub)command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _options(sub, f"{name} {sub_name}")
        else:
            yield name, action


def test_every_option_of_every_command_has_help():
    from aerialseg.cli.parser import build_parser

    seen = list(_options(build_parser()))
    # aerialseg, its data group and the group's two, and five more
    assert len({command for command, _ in seen}) == 10
    for command, action in seen:
        label = f"{command} {'/'.join(action.option_strings) or action.dest}"
        assert action.help and action.help != argparse.SUPPRESS, f"{label} has no help"
        # the Dubai set is named as a default or an example, never as the only kind of data
        if "Dubai" in action.help or "Kaggle" in action.help:
            assert "default" in action.help or "such as" in action.help, label
        # what only Python takes is not offered on a command line (a review: --classes
        # offered "a ClassTable", evaluate's model "a loaded Model"), nor markup
        for python_only in ("ClassTable", "loaded Model", "In Python", "``"):
            assert python_only not in action.help, label
        assert "layer --" not in action.help, label  # a layer's name is no flag (a review)
    # another parameter is named as the flag that gives it (a review: "with block_size")
    helps = {f"{command} {action.dest}": action.help for command, action in seen}
    assert (
        helps["aerialseg data split val"]
        == "validation share (of the pixels, with --block-size) (default 0.1)"
    )
    assert helps["aerialseg data split block_size"].endswith(
        "writes the blocks as a GeoPackage beside --out"
    )


def test_data_split_prints_a_train_command_that_works(tiny_dataset, tmp_path, capsys):
    table = tmp_path / "my classes.yaml"  # a space: the printed command quotes it
    table.write_text(yaml.safe_dump(DUBAI_CLASSES.to_dict()))
    split = tmp_path / "split.json"
    argv = ["data", "split", str(tiny_dataset), "--out", str(split), "--classes", str(table)]
    assert main(argv) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("train with: "))
    command = shlex.split(line.removeprefix("train with: "))
    assert command[:2] == ["aerialseg", "train"]
    assert command[command.index("--classes") + 1] == str(table)
    run = tmp_path / "run"
    assert main([*command[1:], "--out", str(run), *FAST, "max_steps=1"]) == 0
    assert (run / "model.pt").is_file()

    capsys.readouterr()
    argv = ["data", "split", str(tiny_dataset), "--out", str(tmp_path / "s2.json")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "--classes" not in out.splitlines()[1] and "need --classes TABLE" in out
    (tmp_path / "bad.yaml").write_text("- not a table\n")
    run_fails([*argv, "--classes", str(tmp_path / "bad.yaml")], capsys, "bad.yaml")


def test_train_resize_masks_is_the_setting_and_the_error_names_it(fresh_dataset, tmp_path, capsys):
    path = fresh_dataset / "Tile 2" / "masks" / "image_part_001.png"
    Image.open(path).resize((40, 36), Image.Resampling.NEAREST).save(path)
    argv = train_args(fresh_dataset, tmp_path / "r")
    run_fails(argv, capsys, "mask is 40x36 but its image is 80x72", "--resize-masks resamples")
    assert main([*argv, "--resize-masks", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["resize_masks"] is True
    assert main([*argv, "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["resize_masks"] is False
    assert main(["train", "--resize-masks", *argv[1:], "max_steps=1"]) == 0
    assert (tmp_path / "r" / "model.pt").is_file()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("img,mask\n", "needs the header line 'image,label'"),
        ("image,label\nnone.png,none_mask.png\n", "image none.png: no such file"),
        ("image,label\n/abs.png,m.png\n", "is not a relative path"),
    ],
)
def test_a_bad_manifest_is_one_line(tmp_path, capsys, text, fragment):
    (tmp_path / "pairs.csv").write_text(text)
    out = tmp_path / "r"
    for argv in (
        ["data", "inspect", str(tmp_path / "pairs.csv")],
        ["train", "--data", str(tmp_path / "pairs.csv"), "--out", str(out), *FAST],
    ):
        run_fails(argv, capsys, "pairs.csv", fragment)
    assert not out.exists()


def test_evaluate_with_a_missing_class_table_is_one_line(
    tiny_model, tiny_dataset, tmp_path, capsys
):
    argv = ["evaluate", str(tiny_model), "--data", str(tiny_dataset), "--out", str(tmp_path / "o")]
    run_fails([*argv, "--classes", str(tmp_path / "none.yaml")], capsys, "none.yaml")
    assert not (tmp_path / "o").exists()


def test_help_of_every_command_imports_no_torch():
    """--help answers at once: no command's help imports torch (8-11 s for train's, once)."""
    code = (
        "import sys, contextlib, io\n"
        "from aerialseg.cli import main\n"
        "for argv in (['train'], ['predict'], ['evaluate'], ['export'], ['serve'],"
        " ['data', 'inspect'], ['data', 'split'], []):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main([*argv, '--help'])\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]


def test_a_bug_keeps_its_traceback_below_a_line_that_says_so(tmp_path, monkeypatch, capsys):
    """Not "the output folder disappeared": --out was never there, nor made."""
    import aerialseg.data.splits

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(aerialseg.data.splits, "random_split", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["data", "split", str(tiny_dataset_path(tmp_path)), "--out", f"{tmp_path}/o/s.json"])
    err = capsys.readouterr().err
    assert "disappeared" not in err
    assert err.strip().splitlines() == [
        "aerialseg: this is a bug in aerialseg, not a fault of your input; please report it to"
        " the aerialseg maintainers with the command you ran and the traceback below"
    ]


def tiny_dataset_path(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "ds", tiles=1, parts=2)


def test_a_file_the_system_refuses_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    import aerialseg.data.inspect

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "Tile 1/images/x.jpg")

    monkeypatch.setattr(aerialseg.data.inspect, "inspect_dataset", refused)
    argv = ["data", "inspect", str(tiny_dataset_path(tmp_path))]
    run_fails(argv, capsys, "Tile 1/images/x.jpg: Permission denied")


def test_a_decompression_bomb_in_a_dataset_is_one_line(fresh_dataset, tmp_path, capsys):
    """A 500-byte PNG mask that declares 30,000 x 30,000 px: PIL's DecompressionBombError
    was reported as "the output folder disappeared"."""
    bomb_png(fresh_dataset / "Tile 1" / "masks" / "image_part_001.png")
    run_fails(
        train_args(fresh_dataset, tmp_path / "run"),
        capsys,
        "image_part_001.png: 30,000 x 30,000 px, more than the 178,956,970 pixels",
    )


@pytest.mark.parametrize(
    ("command", "flag"), [("split", "--out"), ("export", "--onnx"), ("evaluate", "--out")]
)
def test_an_output_path_through_a_file_is_one_line(
    tiny_dataset, tiny_model, geotiff, tmp_path, capsys, command, flag
):
    """--out small.png/run: a traceback of NotADirectoryError or FileExistsError, where
    predict already said it in one line; now every command does, naming the file."""
    blocker = tmp_path / "small.png"
    blocker.write_bytes(b"not a folder")
    target = blocker / (
        "x.json" if command == "split" else "x.onnx" if command == "export" else "ev"
    )
    argv = {
        "split": ["data", "split", str(tiny_dataset), "--out", str(target)],
        "export": ["export", str(tiny_model), "--onnx", str(target)],
        "evaluate": [
            "evaluate",
            str(tiny_model),
            "--data",
            str(tiny_dataset),
            "--out",
            str(target),
        ],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"aerialseg: error: {flag} {target}: cannot create it ({blocker} is a file, not a folder)"
    )
    assert blocker.read_bytes() == b"not a folder"


def test_a_folder_that_takes_no_new_file_is_one_line_naming_it(tiny_model, capsys):
    """A review: /proc refuses the hidden file an export is written as first, which was a
    traceback; the folder is named, not the hidden file."""
    assert main(["export", str(tiny_model), "--onnx", "/proc/t.onnx"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1] == (
        "aerialseg: error: --onnx /proc/t.onnx: cannot create it (No such file or directory: /proc)"
    )


@pytest.mark.parametrize("share", ["-1", "2"])
def test_max_unknown_is_a_share(tiny_dataset, tiny_model, capsys, share):
    """--max-unknown -1 on evaluate printed a limit of -100 % for every mask."""
    for argv in (
        ["evaluate", str(tiny_model), "--data", str(tiny_dataset), "--max-unknown", share],
        ["data", "inspect", str(tiny_dataset), "--max-unknown", share],
    ):
        assert main(argv) == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"aerialseg: error: max_unknown {float(share)!r}: give a share from 0 to 1, e.g. 0.05"
        )


def test_export_takes_the_bands_its_check_image_hint_names(tiny_model, tmp_path, capsys):
    """The hint for a one-band check image named --bands, which export did not have."""
    from tests.helpers.geotiff import write_geotiff
    from tests.helpers.images import rgb_scene

    gray = write_geotiff(tmp_path / "gray.tif", rgb_scene(64, 64)[:1])
    argv = ["export", str(tiny_model), "--onnx", str(tmp_path / "m.onnx"), "--check-image"]
    assert main([*argv, str(gray)]) == 2
    assert "choose them with --bands, e.g. --bands 1,1,1" in capsys.readouterr().err
    assert main([*argv, str(gray), "--bands", "1,1,1"]) == 0
    assert (tmp_path / "m.onnx").is_file()
    # without a check image --bands chooses nothing: a review found 9,9,9 passed
    assert main(argv[:-1] + ["--bands", "9,9,9"]) == 2
    assert "--bands: give it with --check-image" in capsys.readouterr().err


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly():
    """A review: 'aerialseg data inspect --json | head' called its BrokenPipeError a bug in
    aerialseg, with a traceback."""
    command = subprocess.Popen(
        [sys.executable, "-m", "aerialseg", "train", "--list-settings"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    command.stdout.close()  # before the command writes: every write finds no reader
    stderr = command.stderr.read().decode()
    assert command.wait(timeout=120) == 141 and stderr == ""
