"""Every command the tool prints to run next runs as printed: ``data split``'s "train
with:", ``train``'s "next:" lines and ``evaluate``'s, on plain image/mask pairs whose masks
need --resize-masks and on image rasters whose polygon labels need --label-field,
--label-crs and --labelled-area; and the command a Ctrl-C'd run prints to resume."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import fiona
import pytest
from PIL import Image
from shapely.geometry import box, shape

from aerialseg.cli import main
from aerialseg.cli.commands import DATA_OPTIONS, _resume_hint
from aerialseg.cli.parser import build_parser
from aerialseg.data.classes import DUBAI_CLASSES
from tests.helpers.geodata import (
    POLYGON_CLASSES,
    class_boxes,
    class_ids_of,
    scene_transform,
    write_area,
    write_geojson,
    write_scene,
)
from tests.helpers.images import write_dataset, zip_folder
from tests.helpers.models import FAST as TINY_RUN
from tests.helpers.paths import SAMPLE

# The helpers' few-second run, shortened: what is tested is the commands, not the model.
QUICK = [*TINY_RUN, "samples_per_epoch=4", "max_epochs=1"]
OTHER_PROGRAMS = ("tensorboard", "MLFLOW_ALLOW_FILE_STORE=true")


def next_commands(out: str) -> list[list[str]]:
    """The aerialseg commands listed under "next:", split as a shell splits them."""
    lines = out.splitlines()
    if "next:" not in lines:
        return []
    listed = []
    for line in lines[lines.index("next:") + 1 :]:
        if not line.startswith("  "):
            break
        if not line.strip().startswith(OTHER_PROGRAMS):
            listed.append(shlex.split(line))
    assert all(command[0] == "aerialseg" for command in listed), listed
    return listed


def train_with(out: str) -> list[str]:
    """``data split``'s "train with:" command."""
    line = next(x for x in out.splitlines() if x.startswith("train with: "))
    return shlex.split(line.removeprefix("train with: "))


def runs_as_printed(command: list[str], capsys) -> str:
    """Run a printed aerialseg command through the CLI entry point; its stdout."""
    assert command[0] == "aerialseg"
    code = main(command[1:])
    captured = capsys.readouterr()
    assert code == 0, f"{shlex.join(command)}\n{captured.err}"
    return captured.out


def split_train_evaluate_predict(split: list[str], extra: list[str], capsys) -> list[str]:
    """``data split``, its train command (``extra``: what a user adds: --out, settings),
    then each next command of train and of evaluate; every command run, in order."""
    ran = [split]
    train = [*train_with(runs_as_printed(split, capsys)), *extra]
    ran.append(train)
    todo = next_commands(runs_as_printed(train, capsys))
    assert [c[1] for c in todo] == ["evaluate", "predict"]
    predict = todo[1]
    assert "YOUR_IMAGE.tif" not in predict and Path(predict[2]).is_file(), predict
    while todo:  # and what they print to run next (evaluate's, if any)
        command = todo.pop(0)
        ran.append(command)
        todo += next_commands(runs_as_printed(command, capsys))
    # evaluate's: predict its lowest-scored image, with the model's confidence
    assert [c[1] for c in ran[2:]] == ["evaluate", "predict", "predict"], ran
    assert "--confidence" in ran[-1] and Path(ran[-1][2]).is_file()
    return [shlex.join(c) for c in ran]


def test_next_commands_of_pairs_whose_masks_need_resizing(tmp_path, capsys):
    data = write_dataset(tmp_path / "my data", tiles=1, parts=6)  # a space: quoted
    for mask in (data / "Tile 1" / "masks").iterdir():  # half their images' size
        Image.open(mask).resize((40, 36), Image.Resampling.NEAREST).save(mask)
    table = tmp_path / "my classes.json"
    table.write_text(json.dumps(DUBAI_CLASSES.to_dict()))
    split = ["aerialseg", "data", "split", str(data), "--out", str(tmp_path / "split.json")]
    split += ["--val", "0.2", "--test", "0.2", "--classes", str(table)]
    # data split reads no mask: the user adds --resize-masks as train's error says
    extra = ["--out", str(tmp_path / "my run"), "--resize-masks", *QUICK]
    ran = split_train_evaluate_predict(split, extra, capsys)
    assert all("--resize-masks" in c for c in ran if " evaluate " in c)


def test_next_commands_of_a_split_without_test_images_score_its_val_images(tmp_path, capsys):
    """A review: the fine-tuning split of the docs (--test 0) trained, then its printed
    evaluate failed: 'no test images in this dataset by the split'."""
    data = write_dataset(tmp_path / "data", tiles=1, parts=6)
    table = tmp_path / "classes.json"
    table.write_text(json.dumps(DUBAI_CLASSES.to_dict()))
    split = ["aerialseg", "data", "split", str(data), "--out", str(tmp_path / "split.json")]
    split += ["--val", "0.34", "--test", "0", "--classes", str(table)]
    ran = split_train_evaluate_predict(split, ["--out", str(tmp_path / "run"), *QUICK], capsys)
    assert ran[2].endswith("--split val"), ran[2]


def test_next_commands_of_paths_that_start_with_a_dash(tmp_path, capsys, monkeypatch):
    """A review: a run in ./-run printed 'evaluate -run/model.pt ... --split-file
    -run/split.json', which argparse read as options ('expected one argument')."""
    monkeypatch.chdir(tmp_path)
    write_dataset(tmp_path / "-data", tiles=1, parts=6)
    table = tmp_path / "classes.json"
    table.write_text(json.dumps(DUBAI_CLASSES.to_dict()))
    split = ["aerialseg", "data", "split", "./-data", "--out", "./-split.json"]
    split += ["--val", "0.2", "--test", "0.2", "--classes", "classes.json"]
    ran = split_train_evaluate_predict(split, ["--out", "./-run", *QUICK], capsys)
    assert ran[2].startswith("aerialseg evaluate ./-run/model.pt --data ./-data --split-file=-run/")


def test_the_train_command_of_a_split_of_four_band_images_names_their_bands(tmp_path, capsys):
    """A review: data split printed a train command that stopped at 'has 4 band(s) ...
    choose them with bands='. It names them now: the red, green and blue that the files'
    colour interpretation says, else the first three, with a note to check them."""
    import rasterio
    import yaml
    from rasterio.enums import ColorInterp

    from tests.helpers.geotiff import VALUE_CLASSES, write_geotiff_dataset

    root = write_geotiff_dataset(tmp_path / "own", parts=6)  # blue, green, red, NIR
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    split = ["aerialseg", "data", "split", str(root), "--classes", str(table)]
    split += ["--out", str(tmp_path / "split.json")]
    said = runs_as_printed(split, capsys)
    assert "train reads their bands 1,2,3 as red, green and blue; change bands=" in said
    assert train_with(said)[-1] == "bands=[1,2,3]"
    order = (ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined)
    for image in (root / "images").iterdir():
        with rasterio.open(image, "r+") as dst:
            dst.colorinterp = order
    train = train_with(runs_as_printed(split, capsys))
    assert train[-1] == "bands=[3,2,1]"
    runs_as_printed([*train, "--out", str(tmp_path / "run"), *QUICK], capsys)
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["bands"] == [3, 2, 1]


def test_a_printed_value_that_starts_with_a_dash_is_not_read_as_an_option():
    from aerialseg.options import command_line

    argv = ["aerialseg", "predict", Path("-a b.tif"), "--out", "-o", "--overlay", "--seed", -1]
    assert command_line(argv) == "aerialseg predict './-a b.tif' --out=-o --overlay --seed=-1"
    # a name with control characters in bash's $'...': its escapes, not ESC itself, are
    # printed, and bash gives back the name
    import subprocess

    name = "ü\x1b[2J\x07'q\\\u202e.tif"
    printed = command_line(["aerialseg", "predict", name])
    assert printed == "aerialseg predict $'ü\\x1b[2J\\x07\\'q\\\\\\u202e.tif'"
    echoed = subprocess.run(
        ["bash", "-c", f"printf %s {printed.split(' ', 2)[2]}"], capture_output=True
    )
    assert echoed.stdout.decode() == name


@pytest.fixture
def scenes(tmp_path) -> tuple[Path, Path, Path, Path]:
    """Four UTM scenes in a folder, their class polygons in a GeoJSON of UTM metres without
    a CRS (so --label-crs is needed) whose class attribute is 'kind', the labelled area,
    and the class table."""
    folder = tmp_path / "my scenes"
    folder.mkdir()
    boxes = []
    for k in range(4):
        origin = (300_000.0 + k * 100.0, 2_790_000.0)
        found = class_boxes(64, 80, seed=k, count=12, origin=origin)
        transform = scene_transform(origin)
        write_scene(folder / f"scene_{k}.tif", class_ids_of(found, 64, 80, transform), transform)
        boxes += found
    labels = write_geojson(tmp_path / "my labels.geojson", boxes, wgs84=False, field="kind")
    area = write_area(tmp_path / "area.gpkg", box(300_000, 2_789_900, 300_400, 2_790_000))
    table = tmp_path / "classes.json"
    table.write_text(json.dumps(POLYGON_CLASSES))
    return folder, labels, area, table


def test_next_commands_of_polygon_labels(scenes, tmp_path, capsys):
    folder, labels, area, table = scenes
    split = ["aerialseg", "data", "split", str(folder), "--out", str(tmp_path / "split.json")]
    split += ["--val", "0.25", "--test", "0.25", "--classes", str(table)]
    split += ["--labels", str(labels), "--label-field", "kind", "--label-crs", "EPSG:32640"]
    split += ["--labelled-area", str(area)]
    ran = split_train_evaluate_predict(split, ["--out", str(tmp_path / "run"), *QUICK], capsys)
    polygon_flags = ["--labels", "--label-field", "--label-crs", "--labelled-area"]
    for command in ran:
        if " evaluate " in command or " train " in command:
            assert all(flag in command for flag in polygon_flags), command


def test_the_resume_command_repeats_how_the_data_is_read(tmp_path):
    """Ctrl-C's "resume with:" (its run, interrupted for real: tests/training/test_run.py)
    gives back every option that says how the data is read; the settings are in --out."""
    run = tmp_path / "my run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    argv = ["train", "--data", "my scenes", "--out", str(run), "--labels", "my labels.gpkg"]
    argv += ["--label-field", "kind", "--label-crs", "EPSG:32640", "--labelled-area", "a.gpkg"]
    given = build_parser().parse_args([*argv, "--resize-masks", "lr=0.01"])
    hint = _resume_hint(given)
    assert hint.startswith("resume with: aerialseg train ")
    command = shlex.split(hint.removeprefix("resume with: "))
    assert command[-1] == "--resume" and "lr=0.01" not in command
    resumed = build_parser().parse_args(command[1:])
    for name in ("data", "out", *DATA_OPTIONS):
        assert getattr(resumed, name) == getattr(given, name), name


@pytest.mark.slow  # three suggests, a split, a fine-tune, evaluate and predict: ~30 s alone
def test_the_labelling_round_suggest_prints_runs_as_printed(tmp_path, capsys):
    """A review: suggest ended in prose ('aerialseg train with your labels, ...'). It now
    prints the split, fine-tune and next-round commands of docs/suggest.md's loop, naming
    the files it wrote (the class table the prelabel polygons are named in, the labelled
    area) and the labels' field; the labeller's part is played by copying the prelabel
    polygons into the labels file."""
    out = tmp_path / "round 1" / "tasks.gpkg"
    suggest = ["aerialseg", "suggest", str(SAMPLE), "--out", str(out), "--count", "6"]
    said = runs_as_printed([*suggest, "--block-size", "128m", "--prelabel"], capsys)
    split, train, again = next_commands(said)
    labels = Path(split[split.index("--labels") + 1])
    assert labels == out.with_name("tasks_labels.gpkg") and f"into '{labels}'" in said
    assert "pixels no polygon covers are left out of training: cover each task" in said
    copy_prelabel(out, labels, "kind")
    assert main(split[1:]) == 2  # the labels' field is named in the commands: not 'class'
    assert "no field 'class'; its fields are kind" in capsys.readouterr().err
    field = ["--label-field", "kind"]
    assert main([*suggest[1:], "--block-size", "128m", "--labels", str(labels)]) == 2
    assert "no field 'class'; its fields are kind" in capsys.readouterr().err  # before predicting
    labelled = [*suggest, "--block-size", "128m", "--prelabel", "--labels", str(labels), *field]
    split, train, again = next_commands(runs_as_printed(labelled, capsys))
    assert "test block(s)" in runs_as_printed(split, capsys)
    budget = ["max_steps=2", "samples_per_epoch=2", "batch_size=2"]  # what is tested: the flags
    todo = next_commands(runs_as_printed([*train, *budget], capsys))
    assert [c[1] for c in todo] == ["evaluate", "predict"]
    while todo:
        todo += next_commands(runs_as_printed(todo.pop(0), capsys))
    assert (out.parent / "runs" / "tasks" / "eval-test" / "metrics.json").is_file()
    assert again[again.index("--out") + 1] == str(out.with_name("tasks2.gpkg"))
    round_two = Path(again[again.index("--out") + 1])
    split_two = next_commands(runs_as_printed(again, capsys))[0]  # from the fine-tuned model
    first = {feature.geometry.coordinates[0][0] for feature in fiona.open(out)}
    second = {feature.geometry.coordinates[0][0] for feature in fiona.open(round_two)}
    assert first and not first & second  # no task of the first round comes back
    # round two's split keeps round one's blocks where they were
    copy_prelabel(round_two, labels, "kind")
    kept = Path(split_two[split_two.index("--keep") + 1])
    assert kept == out.with_name("tasks_split.json")
    runs_as_printed(split_two, capsys)
    before = json.loads(kept.read_text())["blocks"]
    after = json.loads(Path(split_two[split_two.index("--out") + 1]).read_text())["blocks"]
    for name, parts in before.items():
        assert all(part in after[name] for part in parts), name
    assert sum(map(len, after.values())) > sum(map(len, before.values()))


@pytest.mark.parametrize("count", [1, 2])
def test_a_round_of_one_or_two_tasks_prints_a_split_that_runs(tmp_path, capsys, count):
    """A review: suggest --count 2 printed a split of the default shares, val 0.1 and test
    0.2, each a block at least: none was left to train on ('2 block(s) are too few'). Of
    two tasks the split holds out no test block; of one, no split is printed at all."""
    out = tmp_path / "tasks.gpkg"
    suggest = ["aerialseg", "suggest", str(SAMPLE), "--out", str(out), "--count", str(count)]
    said = runs_as_printed([*suggest, "--block-size", "128m", "--prelabel"], capsys)
    if count == 1:
        assert not next_commands(said)
        assert "fine-tune once two tasks at least are labelled (suggest --count 2)" in said
        return
    split = next_commands(said)[0]
    copy_prelabel(out, Path(split[split.index("--labels") + 1]), "class")
    assert "--test" in split and "1 train" in runs_as_printed(split, capsys)


@pytest.mark.slow
def test_a_labelling_round_at_another_pixel_size_splits_on_the_tasks_grid(tmp_path, capsys):
    """suggest --pixel-size ended in prose: data split cut the scene's own pixels, so its
    blocks cut each task in four, and the train it would print refused them. The split is
    now cut on the tasks' grid (data split --pixel-size) and the run reads it there."""
    out = tmp_path / "tasks.gpkg"  # the sample: 2 m pixels; tasks of 32 px of 4 m
    suggest = ["aerialseg", "suggest", str(SAMPLE), "--out", str(out), "--count", "4"]
    suggest += ["--block-size", "32", "--pixel-size", "4", "--prelabel"]
    split, train, again = next_commands(runs_as_printed(suggest, capsys))
    labels = Path(split[split.index("--labels") + 1])
    copy_prelabel(out, labels, "class")
    runs_as_printed(split, capsys)
    saved = json.loads(Path(split[split.index("--out") + 1]).read_text())
    (grid,) = saved["grids"].values()
    a, _, left, _, e, top = grid
    assert (a, e) == (4.0, -4.0)
    blocks = {  # each dealt block is a task: the same ground
        (left + c * a, top + (r + h) * e, left + (c + w) * a, top + r * e)
        for parts in saved["blocks"].values()
        for c, r, w, h in (part["window"] for part in parts)
    }
    with fiona.open(out, layer="tasks") as layer:
        tasks = {shape(feature.geometry).bounds for feature in layer}
    assert len(tasks) == 4 and blocks == tasks
    # crops of the tasks' side (a review: 256 px crops of small tasks were mostly padding)
    assert "crop_size=32" in train
    said = runs_as_printed([*train, "max_steps=2", "samples_per_epoch=2", "batch_size=2"], capsys)
    assert "padded with ignored pixels" not in said
    run = Path(train[train.index("--out") + 1])
    assert json.loads((run / "split.json").read_text())["blocks"] == saved["blocks"]
    assert again[again.index("--pixel-size") + 1] == "4.0"


def copy_prelabel(tasks: Path, labels: Path, field: str) -> None:
    """The labeller's work: the prelabel polygons, class attribute ``field``, as labels."""
    with fiona.open(tasks, layer="prelabel") as source:
        schema = {"geometry": "Polygon", "properties": {field: "str"}}
        mode = "a" if labels.exists() else "w"  # a later round's tasks join the labels
        with fiona.open(labels, mode, "GPKG", schema, crs_wkt=source.crs_wkt) as sink:
            for feature in source:
                properties = {field: feature["properties"]["class"]}
                sink.write({"geometry": feature["geometry"], "properties": properties})


def test_a_round_keeps_the_split_written_beside_the_labelled_area_it_is_given(
    tmp_path, monkeypatch
):
    """A review: the round before was told from the digits of --out alone, so the first
    tasks of a new area, site2.gpkg, printed a split that kept site1_split.json, of another
    scene, and failed; and a second round named round2.gpkg, as docs/suggest.md names it,
    kept nothing: its split dealt the first round's test block to validation. A round
    keeps the split suggest printed beside the labelled area it is given, whatever --out."""
    from aerialseg.cli.commands import _labelling_round

    monkeypatch.chdir(tmp_path)
    classes = tmp_path / "site2_classes.json"
    classes.write_text(json.dumps(DUBAI_CLASSES.to_dict()))
    (tmp_path / "site1_split.json").write_text("{}")
    (tmp_path / "site1_labelled_area.gpkg").write_bytes(b"")
    (tmp_path / "older").mkdir()
    (tmp_path / "older" / "tasks_split.json").write_text("{}")
    (tmp_path / "done_area.gpkg").write_bytes(b"")
    tasks = [{"window": [0, 0, 32, 32]}]
    for out, area, kept in [
        ("site2.gpkg", [], None),  # a first round
        ("site2.gpkg", ["--labelled-area", "other_labelled_area.gpkg"], None),
        ("site2.gpkg", ["--labelled-area", "site1_labelled_area.gpkg"], "site1_split.json"),
        (
            "site2.gpkg",
            ["--labelled-area", str(tmp_path / "site1_labelled_area.gpkg")],
            str(tmp_path / "site1_split.json"),
        ),
        ("round2.gpkg", ["--labelled-area", "site1_labelled_area.gpkg"], "site1_split.json"),
        (
            "new/round2.gpkg",
            ["--labelled-area", "older/tasks_labelled_area.gpkg"],
            "older/tasks_split.json",
        ),
        ("tasks2.gpkg", ["--labelled-area", "done_area.gpkg"], None),  # renamed: not known
    ]:
        files = {"tasks": Path(out), "classes": classes}
        files["labelled_area"] = Path(out).with_name(Path(out).stem + "_labelled_area.gpkg")
        base = ["suggest", "b.tif", "--out", out, "--count", "3", "--block-size", "16m"]
        args = build_parser().parse_args([*base, *area])
        said = _labelling_round(args, files, None, tasks)
        split = shlex.split(said[2])
        assert (split[split.index("--keep") + 1] if "--keep" in split else None) == kept, area
        # a labelled area whose split is not known: the user is told how to keep one
        assert any("add --keep with that split file" in line for line in said) == (
            bool(area) and kept is None
        ), area


def test_a_split_of_blocks_smaller_than_the_crops_prints_crops_that_fit(scenes, tmp_path, capsys):
    """A review: data split printed a train of 256 px crops for 48 px blocks (suggest's
    tasks are often as small), each crop mostly padding, which train then noted. The
    printed train now carries crops of the largest training block's side."""
    folder, labels, _, table = scenes  # 64 x 80 px scenes: every block is under 256 px
    split = ["aerialseg", "data", "split", str(folder), "--out", str(tmp_path / "split.json")]
    split += ["--classes", str(table), "--labels", str(labels), "--label-field", "kind"]
    split += ["--label-crs", "EPSG:32640", "--block-size", "48", "--buffer", "0"]
    train = train_with(runs_as_printed(split, capsys))
    assert "crop_size=32" in train  # 48 px blocks: crops of a multiple of 32 px
    said = runs_as_printed([*train, "--out", str(tmp_path / "run"), *QUICK], capsys)
    assert "padded with ignored pixels" not in said
    # blocks under the smallest crop get it, not the default (a review: 28 px blocks)
    small = [*split[:-4], "--block-size", "24", "--buffer", "2"]
    small[small.index("--out") + 1] = str(tmp_path / "small.json")
    assert "crop_size=32" in train_with(runs_as_printed(small, capsys))


def test_a_split_of_blocks_as_large_as_the_crops_prints_no_crop_size(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", tiles=1, parts=6, size=(600, 600))
    split = ["aerialseg", "data", "split", str(data), "--out", str(tmp_path / "split.json")]
    split += ["--block-size", "512", "--buffer", "16"]  # training blocks of 496 px
    train = train_with(runs_as_printed(split, capsys))
    assert not any(word.startswith("crop_size=") for word in train)


def test_next_commands_of_a_zip_name_its_images_as_predict_reads_them(tmp_path, capsys):
    """A review: evaluate printed no predict command for a zip's lowest-scored image, and
    train's named YOUR_IMAGE.tif: a zip's images are no files. predict reads them in place
    as /vsizip/ paths, which the commands now name, and which run as printed."""
    archive = zip_folder(write_dataset(tmp_path / "ds"), tmp_path / "my data.zip")
    train = ["aerialseg", "train", "--data", str(archive), "--out", str(tmp_path / "run")]
    todo = next_commands(runs_as_printed([*train, *QUICK], capsys))
    assert [c[1] for c in todo] == ["evaluate", "predict"]
    assert todo[1][2].startswith(f"/vsizip/{{{archive}}}/")
    evaluated = next_commands(runs_as_printed(todo[0], capsys))
    assert [c[1] for c in evaluated] == ["predict"] and "--confidence" in evaluated[0]
    for predict in (todo[1], evaluated[0]):
        assert "predicted 1 of 1 input(s)" in runs_as_printed(predict, capsys)
