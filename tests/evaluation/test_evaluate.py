"""``evaluate`` scores what ``predict`` would write, with and without flip TTA."""

import json
import shlex
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from aerialseg.cli import main
from aerialseg.data.classes import (
    DUBAI_CLASSES,
    IGNORE_INDEX,
    ClassTable,
    encode_mask,
    parse_color,
)
from aerialseg.data.source import DatasetSource
from aerialseg.errors import AerialsegError, ClassTableError
from aerialseg.evaluation.evaluate import evaluate
from aerialseg.inference.engine import with_precision
from aerialseg.inference.load import load_predictor
from aerialseg.inference.predict import Predictor
from aerialseg.models.io import load_model
from aerialseg.public import default_model_path, evaluation_folder
from tests.helpers.scenes import decoded


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
    model = Predictor(TopLeftQuadrant(), trained.spec, trained.classes)
    second = trained.classes.names[1]

    plain = evaluate(model, tiny_dataset, tmp_path / "plain", split_name="val")
    tta = evaluate(model.with_options(tta=True), tiny_dataset, tmp_path / "tta", split_name="val")

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
    second = trained.classes.names[1]

    def in_precision(precision: str) -> Predictor:
        return Predictor(with_precision(NearTie(), precision, "cpu"), trained.spec, trained.classes)

    fp32 = evaluate(in_precision("fp32"), tiny_dataset, tmp_path / "fp32", split_name="val")
    bf16 = evaluate(in_precision("bf16"), tiny_dataset, tmp_path / "bf16", split_name="val")

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
    model = Predictor(AllFirstClass(), trained.spec, trained.classes)
    report = evaluate(model, tiny_dataset, tmp_path, split_name="test")

    masks = {
        item.id: item.mask for item in decoded(tiny_dataset, report["images"], trained.classes)
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
    model = Predictor(TopLeftQuadrant(), trained.spec, trained.classes)
    second = trained.classes.names[1]

    own = evaluate(model, tiny_dataset, tmp_path / "own", split_name="val")
    ensemble = replace(model, engine=AllFirstClass())  # as the benchmarks score theirs
    other = evaluate(ensemble, tiny_dataset, tmp_path / "other", split_name="val")

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


# ---- scoring other data: another class table, test-only split files, every image ----

# The Dubai classes in another order and palette, as another dataset's masks may come.
OTHER_PALETTE = {
    "Water": "#0000FF",
    "Road": "#808080",
    "Building": "#FF0000",
    "Unlabeled": "#FFFFFF",
    "Land": "#A0522D",
    "Vegetation": "#00FF00",
}


def recoloured(tiny_dataset, dest, palette, rename=None):
    """tiny_dataset with its masks in ``palette`` (class name -> colour; the Dubai class
    ``rename`` maps from gets the other name), and that dataset's class table file."""
    shutil.copytree(tiny_dataset, dest)
    source = DatasetSource(dest)
    rename = rename or {}
    colours = np.zeros((256, 3), np.uint8)  # ignored pixels (the black rows) stay black
    for i, name in enumerate(DUBAI_CLASSES.names):
        colours[i] = parse_color(palette[rename.get(name, name)])
    for pair in source.pairs:
        mask = np.array(Image.open(dest / pair.mask).convert("RGB"))
        ids = encode_mask(mask, DUBAI_CLASSES).ids
        Image.fromarray(colours[ids]).save(dest / pair.mask)
    table = {
        "classes": [{"name": n, "mask_color": c} for n, c in palette.items()],
        "ignore_colors": ["#000000"],
    }
    path = dest.parent / "other-classes.yaml"
    path.write_text(yaml.safe_dump(table, sort_keys=False))
    return path


def test_another_palette_scores_as_the_models_own_by_class_name(tiny_model, tiny_dataset, tmp_path):
    table = recoloured(tiny_dataset, tmp_path / "other", OTHER_PALETTE)
    model = load_predictor(tiny_model, device="cpu")
    own = evaluate(model, tiny_dataset, tmp_path / "own")
    other = evaluate(model, tmp_path / "other", tmp_path / "o", classes=ClassTable.from_file(table))
    assert other["confusion_matrix"] == own["confusion_matrix"]
    assert other["miou5"] == own["miou5"] and other["headline"] == own["headline"]
    assert other["class_match"] == {
        "by": "name",
        "matched": DUBAI_CLASSES.names,
        "dataset_only": [],
        "model_only": [],
    }
    assert own["class_match"] is None
    with pytest.raises(ClassTableError, match="match no class colour"):  # the model's table
        evaluate(model, tmp_path / "other", tmp_path / "x")


def test_classes_one_side_has_are_reported_and_left_out(tiny_model, tiny_dataset, tmp_path, capsys):
    palette = {**OTHER_PALETTE, "sea": OTHER_PALETTE["Water"]}  # the dataset's name for water
    del palette["Water"]
    table = recoloured(tiny_dataset, tmp_path / "other", palette, rename={"Water": "sea"})
    # the model loaded as the command loads it (for inference: other rounding than load_model)
    assert (
        main(
            [
                "evaluate",
                str(tiny_model),
                "--data",
                str(tiny_dataset),
                "--out",
                str(tmp_path / "own"),
            ]
        )
        == 0
    )
    own = json.loads((tmp_path / "own" / "metrics.json").read_text())
    argv = ["evaluate", str(tiny_model), "--data", str(tmp_path / "other"), "--classes", str(table)]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    other = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert other["class_match"] == {
        "by": "name",
        "matched": ["Building", "Land", "Road", "Vegetation", "Unlabeled"],
        "dataset_only": ["sea"],
        "model_only": ["Water"],
    }
    assert (
        "classes matched by name: Building, Land, Road, Vegetation, Unlabeled; the dataset's,"
        " not the model's (not scored): sea; the model's, not the dataset's (left out of"
        " mIoU): Water" in out
    )
    water = DUBAI_CLASSES.names.index("Water")
    expected = np.array(own["confusion_matrix"])
    expected[water] = 0  # the truth's water pixels are not scored; predictions of water are
    assert other["confusion_matrix"] == expected.tolist()
    assert other["headline"] == ["miou4", "pixel_accuracy", "mean_dice"]  # no mIoU-6
    scored = [other["per_class"][n]["iou"] for n in ("Building", "Land", "Road", "Vegetation")]
    assert other["miou4"] == pytest.approx(np.mean([v for v in scored if v is not None]))
    # a review: mean Dice counted Water, which no truth pixel has (0 where it is predicted)
    dice = [other["per_class"][n]["dice"] for n in other["class_match"]["matched"]]
    assert other["mean_dice"] == pytest.approx(np.mean([v for v in dice if v is not None]))


def test_a_table_sharing_no_class_name_is_one_line(tiny_model, tiny_dataset, tmp_path, capsys):
    table = tmp_path / "t.yaml"
    table.write_text(yaml.safe_dump({"classes": [{"name": "Tree", "mask_color": "#00FF00"}]}))
    argv = ["evaluate", str(tiny_model), "--data", str(tiny_dataset), "--classes", str(table)]
    argv += ["--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "none of the class table's classes (Tree) is one of the model's (Building," in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def renamed_dataset(tiny_dataset, dest):
    """tiny_dataset with images named unlike the Dubai set's, so no default split."""
    shutil.copytree(tiny_dataset, dest)
    for path in sorted(dest.rglob("image_part_*")):
        path.rename(path.with_name(path.name.replace("image_part_", "scene")))
    return dest


def test_a_test_only_split_file_and_every_image(tiny_model, tiny_dataset, tmp_path, capsys):
    data = renamed_dataset(tiny_dataset, tmp_path / "mine")
    split = tmp_path / "test-only.json"
    chosen = ["Tile 1/images/scene003.jpg", "Tile 2/images/scene009.jpg"]
    split.write_text(json.dumps({"test": chosen}))
    base = ["evaluate", str(tiny_model), "--data", str(data)]
    assert main([*base, "--split-file", str(split), "--out", str(tmp_path / "t")]) == 0
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["images"] == chosen
    assert main([*base, "--split", "all", "--out", str(tmp_path / "all")]) == 0
    report = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert len(report["images"]) == 18 and report["split_rule"].startswith("all:")
    assert report["scored"] == "images"
    capsys.readouterr()
    # no split file and names unlike the Dubai set's: what to pass instead
    assert main([*base, "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "no test images in this dataset" in err and "--split-file" in err
    assert "--split all" in err and not (tmp_path / "none").exists()
    assert main([*base, "--split", "val", "--split-file", str(split)]) == 2
    assert "no val images" in capsys.readouterr().err
    assert main([*base, "--split", "all", "--split-file", str(split)]) == 2
    assert "--split all scores every image of the dataset; drop --split-file" in (
        capsys.readouterr().err
    )


def test_max_unknown_and_resize_masks_are_evaluates_own(
    tiny_model, fresh_dataset, tmp_path, capsys
):
    path = fresh_dataset / "Tile 1" / "masks" / "image_part_002.png"  # a test image's mask
    original = Image.open(path)
    recoloured_half = np.array(original.convert("RGB"))
    recoloured_half[36:] = (1, 2, 3)  # half of it in a colour of no class
    Image.fromarray(recoloured_half).save(path)
    base = ["evaluate", str(tiny_model), "--data", str(fresh_dataset)]
    assert main([*base, "--out", str(tmp_path / "a")]) == 2
    assert "set by --max-unknown" in capsys.readouterr().err
    assert main([*base, "--max-unknown", "0.6", "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()

    small = original.resize((40, 36), Image.Resampling.NEAREST)
    small.save(path)
    assert main([*base, "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "mask is 40x36 but its image is 80x72" in err and "--resize-masks resamples" in err
    assert main([*base, "--resize-masks", "--out", str(tmp_path / "d")]) == 0
    resized = evaluate(
        load_predictor(tiny_model, device="cpu"), fresh_dataset, tmp_path / "e", resize_masks=True
    )
    assert (
        resized["labelled_pixels"]
        == json.loads((tmp_path / "d" / "metrics.json").read_text())["labelled_pixels"]
    )


def test_an_out_that_is_a_file_is_refused_before_scoring(tiny_model, tiny_dataset, tmp_path):
    """Said only after every image was scored, as a FileExistsError traceback."""
    taken = tmp_path / "evfile"
    taken.write_text("mine")
    predictor = load_predictor(tiny_model, device="cpu")
    with pytest.raises(AerialsegError, match="a file; give the folder to write the scores in"):
        evaluate(predictor, tiny_dataset, taken)
    assert taken.read_text() == "mine"


def test_a_split_with_no_pixel_to_score_is_one_line(tiny_model, tiny_dataset, tmp_path):
    """Found by a review: masks that are all an ignore value scored nothing, wrote a
    metrics.json of made-up confidence figures and ended in a TypeError traceback."""
    colours = [c.mask_color for c in DUBAI_CLASSES.classes]
    table = ClassTable.from_dict(
        {"classes": [{"name": "Building", "mask_color": "#010203"}], "ignore_colors": colours}
    )
    predictor = load_predictor(tiny_model, device="cpu")
    with pytest.raises(AerialsegError, match="have no labelled pixel to score"):
        evaluate(predictor, tiny_dataset, tmp_path / "ev", classes=table)
    assert not (tmp_path / "ev" / "metrics.json").exists()


def test_grey_images_are_scored_with_bands_and_looked_at_alike(
    tiny_model, tiny_dataset, tmp_path, capsys
):
    """A review: a grey dataset could not be evaluated (the error's bands= was no option
    of evaluate), and the printed predict command read and predicted otherwise than scored."""
    grey = tmp_path / "grey"
    shutil.copytree(tiny_dataset, grey)
    for path in grey.rglob("images/*.jpg"):
        Image.open(path).convert("L").save(path)
    base = ["evaluate", str(tiny_model), "--data", str(grey), "--split", "all"]
    assert main([*base, "--out", str(tmp_path / "refused")]) == 2
    assert capsys.readouterr().err.rstrip().endswith("e.g. --bands 1,1,1")
    assert main([*base, "--out", str(tmp_path / "ev"), "--bands", "1,1,1", "--tta"]) == 0
    out = capsys.readouterr().out
    look = shlex.split(out.splitlines()[out.splitlines().index("next:") + 1])
    assert look[look.index("--bands") + 1] == "1,1,1" and "--tta" in look
    assert main(look[1:]) == 0 and list((tmp_path / "ev" / "lowest").glob("*_classes.png"))


def test_without_out_scores_go_beside_a_model_file_and_here_for_the_bundled_model(
    tiny_dataset, tmp_path, monkeypatch, capsys
):
    """A review: the bundled model's scores were written into the installed package, and
    reported in the working folder."""
    assert evaluation_folder(tmp_path / "run" / "model.pt", "val") == tmp_path / "run" / "eval-val"
    assert evaluation_folder(default_model_path(), "test") == Path("eval-test")
    assert evaluation_folder(None, "all") == Path("eval-all")
    # an install without a bundled model scores a model file all the same (a review)
    import aerialseg.models.io

    with monkeypatch.context() as patch:
        patch.setattr(aerialseg.models.io, "bundled_model_path", lambda: tmp_path / "none.pt")
        assert evaluation_folder(tmp_path / "r" / "model.pt", "val") == tmp_path / "r" / "eval-val"
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "default", "--data", str(tiny_dataset), "--split", "all"]) == 0
    assert "written to eval-all/metrics.json" in capsys.readouterr().out
    assert (tmp_path / "eval-all" / "metrics.json").is_file()
    assert not (default_model_path().parent / "eval-all").exists()
