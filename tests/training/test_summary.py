"""A run ends with what it made and the commands to run next, which work as printed."""

from __future__ import annotations

import json
import re
import shlex

import numpy as np

from aerialseg.cli import main
from aerialseg.models.io import load_model
from tests.helpers.images import write_dataset, write_mask
from tests.helpers.models import FAST


def test_the_summary_names_the_files_and_commands_that_work(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "my run"  # a space: the commands quote it
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), *FAST, "max_epochs=2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    summary = out[out.index("done in ") :].splitlines()
    assert re.fullmatch(r"done in 0:\d\d:\d\d: 4 steps, stopped by max_epochs=2", summary[0])
    model = load_model(run / "model.pt")
    assert summary[1] == (
        f"best validation mIoU over 5 scored classes {model.meta['val_miou']:.4f} (step"
        f" {model.meta['global_step']}); model.pt holds those weights"
    )
    assert f"confidence temperature {model.spec.confidence_temperature:g}, fitted on 2" in out
    files = summary[summary.index(f"written to {run}/:") + 1 : summary.index("next:")]
    assert [line.split()[0] for line in files] == [
        "model.pt",
        "checkpoints/",
        "metrics.csv",
        "training.png",
        "config.yaml",
    ]
    assert all((run / line.split()[0]).exists() for line in files)

    evaluate, predict = [shlex.split(x) for x in summary[summary.index("next:") + 1 :]]
    assert evaluate[:2] == ["aerialseg", "evaluate"] and predict[:2] == ["aerialseg", "predict"]
    assert main(evaluate[1:]) == 0
    scored = json.loads((run / "eval-test" / "metrics.json").read_text())
    # the run's own split: its test images, none it trained on
    split = json.loads((run / "split.json").read_text())
    assert sorted(scored["images"]) == sorted(split["test"])
    assert main(predict[1:]) == 0  # a held-out image of the dataset
    assert [p.name for p in (run / "predictions").iterdir() if p.suffix == ".png"]


def test_the_checkpoints_line_names_a_best_checkpoint_only_where_there_is_one(tmp_path):
    """A review: a run that ended before its first validation listed a best.ckpt."""
    from aerialseg.training.summary import _checkpoints

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "last.ckpt").write_bytes(b"")
    assert _checkpoints(folder) == "last.ckpt that --resume continues from"
    (folder / "best.ckpt").write_bytes(b"")
    assert _checkpoints(folder) == "best.ckpt, and last.ckpt that --resume continues from"


def test_evaluate_is_printed_for_the_part_the_split_holds_out(tmp_path):
    """test when the split has test images (evaluate's default), else val (a fine-tuning
    split of --test 0), else the training images, said so in a comment the shell ignores."""
    from aerialseg.training.summary import RunOutcome, next_commands

    outcome = RunOutcome(
        tmp_path, "data", 1.0, None, 4, "max_steps=4", None, None, "", None, "", ""
    )
    for part, tail in (("test", ""), ("val", " --split val")):
        outcome.held_out = part
        assert next_commands(outcome, None)[0].endswith(f"/split.json{tail}")
    outcome.held_out = "train"
    evaluate = next_commands(outcome, None)[0]
    assert evaluate.endswith("/split.json --split train  # no image held out: training scores")
    assert shlex.split(evaluate, comments=True)[-2:] == ["--split", "train"]


def test_the_best_validation_says_how_many_classes_its_mean_is_over(tmp_path, capsys):
    """A review: a validation whose labels and predictions hold one class was read as
    "mIoU over 5 scored classes"; it is the mean of the classes that have an IoU there,
    as evaluate's table counts them over the same images and weights."""
    root = write_dataset(tmp_path / "ds")
    for mask in root.rglob("masks/*.png"):  # Vegetation only
        write_mask(mask, np.full((72, 80), 3, np.uint8))
    run = tmp_path / "run"
    assert main(["train", "--data", str(root), "--out", str(run), *FAST, "max_epochs=2"]) == 0
    best = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("best valid"))
    args = ["evaluate", str(run / "model.pt"), "--data", str(root), "--split", "val"]
    assert main([*args, "--split-file", str(run / "split.json"), "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    present = sum(metrics["per_class"][n]["iou"] is not None for n in metrics["scored_classes"])
    assert present < 5  # what the test is about
    assert best.startswith(f"best validation mIoU over {present} of the 5 scored classes ")
