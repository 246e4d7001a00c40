"""No message sends a user to a flag the command lacks.

Two nets: every ``--flag`` written in a string of the package exists on some command (a
typo or a removed flag fails here), and the errors each command raises on bad data,
triggered for real, name only that command's flags; a flag inside a quoted command
(``'aerialseg train --resize-masks'``) is checked on the command quoted.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from dataclasses import fields
from pathlib import Path

import pytest
from PIL import Image

from aerialseg.cli import main
from aerialseg.cli.parser import build_parser
from aerialseg.training.config import TrainConfig
from tests.helpers.images import write_dataset
from tests.helpers.paths import REPO

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
QUOTED = re.compile(r"'aerialseg ((?:data )?[a-z]+)([^']*)'")
SETTING = re.compile(r"(?<![\w-])([a-z][a-z0-9_]*)=(?!=)")
# other programs' flags in the commands the package prints, with the program's name
OTHER_PROGRAMS = {"--logdir": "tensorboard", "--backend-store-uri": "mlflow ui"}
FAST = ["model=seed-unet", "pretrained=false", "base_width=4", "crop_size=32", "window=64"]
FAST += ["batch_size=4", "samples_per_epoch=4", "max_epochs=1", "accelerator=cpu"]


def command_flags() -> dict[str, set[str]]:
    """Each command ("train", "data inspect", ...) and its option strings."""
    found: dict[str, set[str]] = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}".strip())
            else:
                found.setdefault(name, set()).update(action.option_strings)

    walk(build_parser(), "")
    return found


FLAGS = command_flags()


def flags_named(message: str) -> list[tuple[str, str | None]]:
    """(flag, the command a quoted command line names, or None) for each flag mentioned."""
    named = []
    for quoted in QUOTED.finditer(message):
        named += [(f, quoted.group(1)) for f in FLAG.findall(quoted.group(2))]
    named += [(f, None) for f in FLAG.findall(QUOTED.sub("", message))]
    return named


def wrong_flags(command: str, message: str) -> list[str]:
    wrong = [
        f"{flag} (on {quoted or command})"
        for flag, quoted in flags_named(message)
        if flag not in FLAGS[quoted or command]
    ]
    if command == "train":  # key=value settings
        names = {f.name for f in fields(TrainConfig)}
        wrong += [f"{s}= (no such setting)" for s in SETTING.findall(message) if s not in names]
    return wrong


def test_the_checker_finds_wrong_flags():
    assert wrong_flags("evaluate", "x: set by --max-unknown") == []
    assert wrong_flags("data inspect", "x: set by --resize-masks") == [
        "--resize-masks (on data inspect)"
    ]
    assert wrong_flags("data inspect", "use 'aerialseg train --resize-masks' then") == []
    assert wrong_flags("data inspect", "use 'aerialseg evaluate --epochs 3' then") == [
        "--epochs (on evaluate)"
    ]
    assert wrong_flags("train", "set by max_unknown= or max_unknowns=") == [
        "max_unknowns= (no such setting)"
    ]


def package_strings() -> list[tuple[str, str]]:
    """(module, text) of every string literal and f-string part of the package."""
    found = []
    for path in sorted((REPO / "src" / "aerialseg").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append((path.name, node.value))
    return found


def test_every_flag_a_string_names_exists_on_some_command():
    every = set().union(*FLAGS.values())
    wrong = [
        f"{module}: {flag} in {text[:60]!r}"
        for module, text in package_strings()
        for flag, quoted in flags_named(text)
        if flag not in (FLAGS[quoted] if quoted else every)
        and OTHER_PROGRAMS.get(flag, "\0") not in text
    ]
    assert not wrong, wrong


def fails(argv: list[str], capsys) -> str:
    assert main(argv) == 2, argv
    return capsys.readouterr().err


@pytest.fixture
def broken(tmp_path) -> Path:
    """A dataset named unlike the Dubai one (no default split) with a mask of another size
    and a mask in colours of no class."""
    root = write_dataset(tmp_path / "ds", tiles=1, parts=4)
    masks = root / "Tile 1" / "masks"
    for path in sorted(root.rglob("image_part_*")):
        path.rename(path.with_name(path.name.replace("image_part_", "scene")))
    Image.open(masks / "scene001.png").resize((20, 18)).save(masks / "scene001.png")
    Image.new("RGB", (80, 72), (1, 2, 3)).save(masks / "scene002.png")
    return root


def test_the_errors_of_each_command_name_its_own_flags(broken, tiny_model, tmp_path, capsys):
    data = str(broken)
    ids = [f"Tile 1/images/scene00{k}.jpg" for k in range(1, 5)]
    messages: list[tuple[str, str]] = []

    def split_of(test: list[str], val: list[str]) -> str:
        path = tmp_path / f"split-{len(list(tmp_path.glob('split-*')))}.json"
        path.write_text(json.dumps({"test": test, "val": val}))
        return str(path)

    evaluate = ["evaluate", str(tiny_model), "--data", data, "--out", str(tmp_path / "e")]
    for extra in (
        [],  # no default split here
        ["--split", "val", "--split-file", split_of([ids[3]], [])],
        ["--split-file", split_of([ids[0]], [])],  # mask of another size
        ["--split-file", split_of([ids[1]], [])],  # unknown colours
        ["--split", "all", "--split-file", split_of([ids[3]], [])],
    ):
        messages.append(("evaluate", fails([*evaluate, *extra], capsys)))
    train = ["train", "--data", data, "--out", str(tmp_path / "t")]
    for test, val in (([], []), ([ids[3]], [ids[2]]), ([ids[3]], [ids[0]])):
        extra = ["--split", split_of(test, val)] if test else []
        messages.append(("train", fails([*train, *extra, *FAST], capsys)))
    messages.append(("data inspect", fails(["data", "inspect", data], capsys)))
    (broken / "Tile 1" / "masks" / "scene004.png").unlink()
    for command, argv in (("train", train), ("evaluate", evaluate)):
        messages.append((command, fails([*argv, "--split", "all"][: len(argv)], capsys)))
    messages.append(
        ("data split", fails(["data", "split", data, "--out", str(tmp_path / "s.json")], capsys))
    )

    assert "mask is 20x18" in messages[2][1] and "no class colour" in messages[3][1]
    assert "mask is 20x18" in messages[6][1] and "no class colour" in messages[7][1]
    named = [flag for _, message in messages for flag, _ in flags_named(message)]
    # the errors above do suggest flags: the test is not vacuous
    assert {"--split-file", "--split", "--resize-masks", "--classes", "--max-unknown"} <= set(named)
    wrong = [(command, w, m) for command, m in messages for w in wrong_flags(command, m)]
    assert not wrong, wrong


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["evaluate", "m.pt", "--data", "d", "--split", "bogus"],
            "aerialseg evaluate: error: argument --split: invalid choice: 'bogus' (choose from"
            " 'train', 'val', 'test', 'all') (see aerialseg evaluate --help)",
        ),
        (
            ["predict", "x.tif"],
            "aerialseg predict: error: the following arguments are required: --out (see"
            " aerialseg predict --help)",
        ),
        (
            [],
            "aerialseg: error: the following arguments are required: COMMAND (see aerialseg"
            " --help)",
        ),
    ],
)
def test_a_command_line_argparse_refuses_is_one_line(capsys, argv, expected):
    """A review: a wrong --split or a missing --out printed the command's whole usage
    (12 lines) before the error, where every other refusal is one line."""
    with pytest.raises(SystemExit) as ended:
        main(argv)
    assert ended.value.code == 2 and capsys.readouterr().err == expected + "\n"


def test_sigterm_runs_the_clean_up_of_ctrl_c_and_exits_143(tmp_path):
    """A review: SIGTERM (kill, timeout, a job scheduler) ended suggest at once, leaving
    its temporary grids in /tmp and a half-written GeoPackage; Ctrl-C cleaned both up."""
    import subprocess
    import sys

    script = """
import argparse, os, signal, sys, time
from pathlib import Path
import aerialseg.cli as cli

def command(args):
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # a scheduler's kill, mid-command
        time.sleep(30)
        return 0
    finally:
        Path(sys.argv[1]).write_text("cleaned up")

cli.parse = lambda argv: argparse.Namespace(func=command, out=None)
sys.exit(cli.main())
"""
    marker = tmp_path / "finally"
    done = subprocess.run(
        [sys.executable, "-c", script, str(marker)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 143, done.stderr
    assert done.stderr == "aerialseg: terminated (SIGTERM)\n"
    assert marker.read_text() == "cleaned up"


def test_sigterm_ignored_at_start_stays_ignored_and_ray_keeps_the_commands_handler(
    tmp_path, monkeypatch
):
    """From a review of the SIGTERM change: a command started with SIGTERM ignored (by a
    supervisor) must keep ignoring it; and ray.init, which puts in a handler of its own
    (sys.exit(15), no word), must leave the command's in place."""
    import signal
    import subprocess
    import sys
    import types

    from aerialseg.inference.distributed import _start_ray

    script = """
import argparse, os, signal, sys, time
import aerialseg.cli as cli

def command(args):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)
    return 0

cli.parse = lambda argv: argparse.Namespace(func=command, out=None)
sys.exit(cli.main())
"""
    ignoring = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN),
    )
    assert (ignoring.returncode, ignoring.stderr) == (0, "")

    def ray_init(**kwargs):
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(15))

    fake = types.SimpleNamespace(is_initialized=lambda: False, init=ray_init)
    monkeypatch.setitem(sys.modules, "ray", fake)
    before = signal.getsignal(signal.SIGTERM)
    assert _start_ray(None) == (fake, True)
    assert signal.getsignal(signal.SIGTERM) is before


def test_suggest_names_the_labelled_area_that_lies_outside_every_scene(tmp_path, capsys):
    """A review: an off-scene --labelled-area was called "the labelled polygons", as if
    the labels (which were right) lay outside; the file is named, before any prediction."""
    from shapely.geometry import box

    from tests.helpers.geodata import write_area
    from tests.helpers.paths import SAMPLE

    area = write_area(tmp_path / "done area.gpkg", box(0, 0, 100, 100))  # UTM, off the sample
    argv = ["suggest", str(SAMPLE), "--out", str(tmp_path / "t.gpkg"), "--count", "2"]
    assert main([*argv, "--labelled-area", str(area)]) == 2
    err = capsys.readouterr().err
    assert f"error: {area} (labelled area): its polygons (EPSG:" in err, err
    assert "predicting" not in err
