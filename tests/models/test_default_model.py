"""The bundled default model: small, fp16, self-describing, used when --model is left out."""

import json
import re
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aerialseg.cli import main
from aerialseg.data.classes import DUBAI_CLASSES, IGNORE_INDEX, encode_mask
from aerialseg.models.io import load_model
from tests.helpers.paths import REAL_DATA, SPLIT_JSON, requires_real_data

ASSETS = Path(str(files("aerialseg") / "assets"))
BUNDLED = ASSETS / "default-model.pt"
# The smallest test image of the protocol (Tile 2, 509 x 544 px).
TEST_PAIR = REAL_DATA / "Semantic segmentation dataset" / "Tile 2"

pytestmark = pytest.mark.skipif(not BUNDLED.is_file(), reason="no default model bundled")


def test_bundled_file_is_small_fp16_and_carries_its_test_metrics():
    assert BUNDLED.stat().st_size <= 15 * 2**20
    raw = torch.load(BUNDLED, map_location="cpu", weights_only=True)
    floats = [t for t in raw["state_dict"].values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float16 for t in floats)
    model = load_model(BUNDLED)
    assert model.classes == DUBAI_CLASSES
    metrics = model.meta["test_metrics"]
    assert set(metrics) == {"miou6", "miou5", "pixel_accuracy", "mean_dice"}
    # The card quotes the figures the file carries.
    card = (ASSETS / "MODEL_CARD.md").read_text()
    row = re.search(r"\| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \|", card)
    quoted = [float(x) for x in row.groups()]
    carried = [metrics[k] for k in ("miou6", "miou5", "pixel_accuracy", "mean_dice")]
    assert quoted == pytest.approx(carried, abs=5e-4)


@pytest.mark.slow
@requires_real_data()
def test_bundled_file_carries_the_scores_that_evaluate_gives_it(tmp_path):
    """The figures the file and its card quote are what ``evaluate`` gives it today, to
    4 decimals: a change in how images are read or predicted shows here, not in a user's
    report (bench/bundle_default.py --card-only scores it again)."""
    args = ["evaluate", str(BUNDLED), "--data", str(REAL_DATA), "--split-file", str(SPLIT_JSON),
            "--split", "test", "--precision", "fp32", "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    measured = json.loads((tmp_path / "metrics.json").read_text())
    carried = load_model(BUNDLED).meta["test_metrics"]
    assert {k: round(measured[k], 4) for k in carried} == {
        k: round(v, 4) for k, v in carried.items()
    }


@requires_real_data()
def test_predict_without_model_uses_the_bundled_one(tmp_path):
    image = TEST_PAIR / "images" / "image_part_002.jpg"
    assert main(["predict", str(image), "--out", str(tmp_path)]) == 0
    pred = np.asarray(Image.open(tmp_path / "image_part_002_classes.png"))
    truth = encode_mask(
        np.asarray(Image.open(TEST_PAIR / "masks" / "image_part_002.png").convert("RGB")),
        DUBAI_CLASSES,
    )
    labelled = truth.ids != IGNORE_INDEX
    assert pred.shape == truth.ids.shape
    # A trained model, not a random one nor one that paints the commonest class everywhere
    # (Land: 0.535 of this image's labelled pixels; the bundled model scored 0.814).
    accuracy = (pred[labelled] == truth.ids[labelled]).mean()
    majority = np.bincount(truth.ids[labelled]).max() / labelled.sum()
    assert accuracy > 0.75 and accuracy > majority + 0.2
