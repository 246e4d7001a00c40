"""Temperature scaling: the fit finds a known temperature; classes never change."""

import pytest
import torch

from aerialseg.data.classes import DUBAI_CLASSES, IGNORE_INDEX
from aerialseg.data.scenes import LabelledImage
from aerialseg.evaluation.calibration import ConfidenceTally, fit_on_images, fit_temperature
from aerialseg.inference.predict import Predictor, with_temperature
from aerialseg.training.config import resolve_config


def overconfident(temperature: float, n: int = 40_000, classes: int = 6, seed: int = 0):
    """Probabilities softmax(z) for labels drawn from softmax(z / temperature): a model
    whose probabilities need exactly that temperature."""
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, classes, generator=generator)
    labels = torch.multinomial((logits / temperature).softmax(1), 1, generator=generator)[:, 0]
    return logits.softmax(1), labels


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_fit_recovers_the_temperature_the_labels_follow(true_temperature):
    probs, labels = overconfident(true_temperature)
    assert fit_temperature(probs, labels) == pytest.approx(true_temperature, rel=0.08)


def test_temperature_keeps_classes_and_spreads_or_sharpens():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4]]).T  # classes along dim 0
    assert torch.equal(with_temperature(probs, 1.0), probs)
    soft, sharp = with_temperature(probs, 2.0), with_temperature(probs, 0.5)
    for scaled in (soft, sharp):
        assert torch.allclose(scaled.sum(0), torch.ones(2))
        assert torch.equal(scaled.argmax(0), probs.argmax(0))
    assert (soft.max(0).values < probs.max(0).values).all()
    assert (sharp.max(0).values > probs.max(0).values).all()
    # softmax(z / T) from softmax(z): 0.7 and 0.2 are e^z in proportion 3.5
    assert soft[0, 0] / soft[1, 0] == pytest.approx(3.5**0.5)


def test_fit_on_images_skips_unlabelled_pixels_and_images_without_any():
    cfg = resolve_config("default", None, ["window=64"])

    def predictor() -> Predictor:
        return Predictor(Confident(), cfg.spec, DUBAI_CLASSES)

    class Confident:  # always class 0, at probability ~0.99
        stride = 1

        def __call__(self, batch):
            logits = torch.zeros(batch.shape[0], 6, *batch.shape[2:])
            logits[:, 0] = 5.0
            return logits

    image = torch.zeros(3, 32, 32, dtype=torch.uint8)
    unlabelled = LabelledImage("none", image, torch.full((32, 32), IGNORE_INDEX))
    assert fit_on_images(predictor(), [unlabelled]) is None
    half_right = torch.zeros(32, 32, dtype=torch.uint8)
    half_right[:, 16:] = 3
    labelled = LabelledImage("half", image, half_right)
    # right half of the time at 0.99 confidence: a high temperature flattens it
    assert fit_on_images(predictor(), [unlabelled, labelled]) > 3


@pytest.mark.parametrize("right_share, error", [(0.8, 0.0), (0.5, 0.3)])
def test_calibration_error_is_the_gap_between_confidence_and_accuracy(right_share, error):
    probs = torch.full((3, 10, 10), 0.1)
    probs[0] = 0.8  # class 0 everywhere, at 80 %
    mask = torch.ones(10, 10, dtype=torch.long)
    mask.view(-1)[: int(100 * right_share)] = 0
    mask[9, 9] = IGNORE_INDEX  # not counted
    tally = ConfidenceTally()
    tally.add(probs, mask)
    assert tally.pixels.sum() == 99 and tally.pixels[80] == 99
    assert tally.mean_confidence() == pytest.approx(0.8)
    assert tally.calibration_error() == pytest.approx(error, abs=0.011)
    softened = ConfidenceTally()
    softened.add(probs, mask, temperature=3.0)
    assert softened.mean_confidence() < 0.6  # a temperature above 1 lowers confidence
