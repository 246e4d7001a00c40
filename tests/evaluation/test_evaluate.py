"""``evaluate`` scores what ``predict`` would write, with and without flip TTA."""

import json

import pytest
import torch
from torch import nn

from aerialseg.cli import main
from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.samples import load_labelled
from aerialseg.data.source import DatasetSource
from aerialseg.evaluation.evaluate import evaluate
from aerialseg.models.io import LoadedModel, load_model


class TopLeftQuadrant(nn.Module):
    """Scores class 1 above class 0 only in the top-left quadrant of each window.

    Flip TTA averages that quadrant with the top-right and bottom-left ones, where the
    class 1 score is below class 0's, so with TTA class 1 is never predicted."""

    stride = 32

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # evaluate reads the device from it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        scores = torch.full((n, 6, h, w), -10.0)
        scores[:, 0] = 0.0
        scores[:, 1] = -1.0
        scores[:, 1, : h // 2, : w // 2] = 1.0
        return scores


def test_tta_scores_the_flip_average(tiny_model, tiny_dataset, tmp_path):
    trained = load_model(tiny_model)
    model = LoadedModel(TopLeftQuadrant(), trained.config, trained.classes)
    second = trained.classes.names[1]

    plain = evaluate(model, tiny_dataset, tmp_path / "plain", split_name="val")
    tta = evaluate(model, tiny_dataset, tmp_path / "tta", split_name="val", tta=True)

    assert plain["per_class"][second]["precision"] is not None  # predicted somewhere
    assert tta["per_class"][second]["precision"] is None  # never predicted
    assert (plain["tta"], tta["tta"]) == (False, True)


class NearTie(nn.Module):
    """Scores class 1 a factor 1 + 2^-10 above class 0: a win in fp32, a tie in bf16
    (8 significant bits), which argmax gives to class 0."""

    stride = 32

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 1.0
            self.conv.weight[1, 0] = 1 + 2**-10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_precision_is_the_one_scored(tiny_model, tiny_dataset, tmp_path):
    trained = load_model(tiny_model)
    model = LoadedModel(NearTie(), trained.config, trained.classes)
    second = trained.classes.names[1]

    fp32 = evaluate(model, tiny_dataset, tmp_path / "fp32", split_name="val", precision="fp32")
    bf16 = evaluate(model, tiny_dataset, tmp_path / "bf16", split_name="val", precision="bf16")

    assert fp32["per_class"][second]["precision"] is not None  # class 1 wins in fp32
    assert bf16["per_class"][second]["precision"] is None  # and ties away in bf16
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16")


class AllFirstClass(nn.Module):
    """Scores the first class highest everywhere."""

    stride = 32

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = torch.zeros((x.shape[0], 6, *x.shape[2:]))
        scores[:, 0] = 1.0
        return scores


def test_per_image_figures_are_each_images_own(tiny_model, tiny_dataset, tmp_path):
    trained = load_model(tiny_model)
    model = LoadedModel(AllFirstClass(), trained.config, trained.classes)
    report = evaluate(model, tiny_dataset, tmp_path, split_name="test")

    source = DatasetSource(tiny_dataset)
    masks = {
        item.id: item.mask
        for item in load_labelled(source, report["images"], trained.classes, 0.05, "test")
    }
    assert set(report["per_image"]) == set(masks)
    for image_id, mask in masks.items():
        labelled = mask != IGNORE_INDEX
        first = int((mask == 0).sum())
        figures = report["per_image"][image_id]
        assert figures["labelled_pixels"] == int(labelled.sum())
        # predicting class 0 everywhere: accuracy and class-0 IoU are its share of the pixels
        assert figures["pixel_accuracy"] == pytest.approx(first / int(labelled.sum()))
        assert figures["iou"][trained.classes.names[0]] == pytest.approx(
            first / int(labelled.sum())
        )
        assert figures["iou"][trained.classes.names[1]] in (0.0, None)
    assert (
        sum(f["labelled_pixels"] for f in report["per_image"].values()) == report["labelled_pixels"]
    )


def test_a_given_engine_is_scored_in_the_models_place(tiny_model, tiny_dataset, tmp_path):
    trained = load_model(tiny_model)
    model = LoadedModel(TopLeftQuadrant(), trained.config, trained.classes)
    second = trained.classes.names[1]

    own = evaluate(model, tiny_dataset, tmp_path / "own", split_name="val")
    other = evaluate(
        model, tiny_dataset, tmp_path / "other", split_name="val", engine=AllFirstClass()
    )

    assert own["per_class"][second]["precision"] is not None  # the model predicts class 1
    assert other["per_class"][second]["precision"] is None  # the engine never does
    assert other["pixel_accuracy"] != own["pixel_accuracy"]


def test_an_exported_onnx_model_scores_as_its_model_file(
    tiny_model, tiny_dataset, tmp_path, capsys
):
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", str(tiny_model), "--onnx", str(onnx_path)]) == 0
    scores = {}
    for name, path in (("pt", tiny_model), ("onnx", onnx_path)):
        argv = ["evaluate", str(path), "--data", str(tiny_dataset), "--out", str(tmp_path / name)]
        assert main([*argv, "--precision", "fp32"] if name == "pt" else argv) == 0
        scores[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert scores["onnx"]["precision"] == "fp32"
    assert scores["onnx"]["miou6"] == pytest.approx(scores["pt"]["miou6"], abs=1e-3)
    capsys.readouterr()
    assert main([*argv, "--precision", "bf16"]) == 2
    assert "ONNX Runtime's CPU, in fp32" in capsys.readouterr().err
