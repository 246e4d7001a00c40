"""Temperature scaling, so that ``predict --confidence`` reads as a probability.

A network trained with cross-entropy is overconfident on images unlike its training ones:
the bundled model's pixels average 0.91 confidence at 0.85 accuracy on the test images
(bench/results/confidence.json). One temperature T, fitted on the validation images by
minimising the negative log-likelihood of their labels, rescales every probability as
``p ** (1 / T)``, renormalised (Guo et al. 2017, "On calibration of modern neural
networks"); the class of every pixel stays the same. Applied by inference/predict.py's
``with_temperature``. Written here because torchmetrics measures calibration but fits no
temperature, and the one-parameter fit is a few lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.scenes import LabelledImage
from aerialseg.inference.predict import Predictor, with_temperature
from aerialseg.models.spec import ModelSpec

PIXELS_PER_IMAGE = 20_000  # labelled pixels sampled per image: enough for one parameter


def fit_temperature(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """The T in [0.05, 20] that minimises the labels' negative log-likelihood under
    ``with_temperature(probs, T)``; ``probs`` (N, classes), ``labels`` (N,)."""
    log_probs = probs.double().clamp_min(1e-30).log()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def nll() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(log_probs / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(nll)
    return float(log_t.detach().exp().clamp(0.05, 20))


class TemperatureSample:
    """Up to PIXELS_PER_IMAGE labelled pixels an image, drawn at random, with their class
    probabilities: what a temperature is fitted on. Training fills one during each
    validation, so the model it ships is calibrated without predicting the images again."""

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.probs: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    @property
    def images(self) -> int:
        return len(self.labels)

    def add(self, probs: torch.Tensor, mask: torch.Tensor) -> None:
        """``probs`` (classes, H, W) of one image, ``mask`` (H, W) its class ids."""
        mask = mask.long().flatten().cpu()
        labelled = torch.nonzero(mask != IGNORE_INDEX).flatten()
        pick = labelled[torch.randperm(len(labelled), generator=self.generator)[:PIXELS_PER_IMAGE]]
        self.probs.append(probs.detach().cpu().flatten(1)[:, pick].T.float())
        self.labels.append(mask[pick])

    def fit(self) -> float | None:
        """The fitted temperature; None without a labelled pixel."""
        if sum(len(x) for x in self.labels) == 0:
            return None
        return fit_temperature(torch.cat(self.probs), torch.cat(self.labels))


def fit_on_images(
    predictor: Predictor,
    items: Iterable[LabelledImage],
    seed: int = 0,
    *,
    until: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> float | None:
    """Fit the temperature on labelled images, predicted as ``aerialseg predict`` does;
    None when they hold no labelled pixel. ``until``: a ``time.monotonic()`` after which no
    further image is predicted (the first always is); ``progress`` is called with the
    count of images done after each."""
    sample = TemperatureSample(seed)
    one = replace(predictor, batch_size=1)  # one window a pass, as temperatures were fitted
    for item in items:
        probs = one.predict_image(item.image.float(), probabilities=True).probs
        assert probs is not None  # asked for
        sample.add(probs, item.mask)
        if progress is not None:
            progress(sample.images)
        if until is not None and time.monotonic() >= until:
            break
    return sample.fit()


def with_fitted_temperature(predictor: Predictor, items: Iterable[LabelledImage]) -> ModelSpec:
    """The predictor's spec with its confidence_temperature fitted on ``items`` (what
    ``aerialseg train`` stores in a model); the spec itself when they hold no labelled
    pixel."""
    temperature = fit_on_images(predictor, items)
    if temperature is None:
        return predictor.spec
    return replace(predictor.spec, confidence_temperature=round(temperature, 4))


class ConfidenceTally:
    """Labelled pixels, and the right ones among them, per whole-percent confidence, as
    ``predict --confidence`` writes it: what calibration is measured from."""

    def __init__(self) -> None:
        self.pixels = np.zeros(101, dtype=np.int64)
        self.correct = np.zeros(101, dtype=np.int64)

    def add(self, probs: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> None:
        """``probs`` (classes, H, W) of one image, ``mask`` (H, W) its class ids."""
        top = with_temperature(probs, temperature).max(0)
        percent = (100 * top.values).round().long()
        labelled = mask != IGNORE_INDEX
        right = labelled & (top.indices == mask)
        self.pixels += torch.bincount(percent[labelled], minlength=101).cpu().numpy()
        self.correct += torch.bincount(percent[right], minlength=101).cpu().numpy()

    def mean_confidence(self) -> float:
        return float((np.arange(101) * self.pixels).sum() / max(self.pixels.sum(), 1) / 100)

    def calibration_error(self) -> float:
        """Expected calibration error: the pixel-weighted gap between confidence and
        accuracy over ten bands, 0-9 %, ..., 80-89 %, 90-100 %."""
        total, error = max(self.pixels.sum(), 1), 0.0
        edges = [*range(0, 100, 10), 101]
        for low, high in zip(edges[:-1], edges[1:], strict=True):
            n = self.pixels[low:high].sum()
            if n:
                confidence = (np.arange(low, high) * self.pixels[low:high]).sum() / n / 100
                error += n / total * abs(self.correct[low:high].sum() / n - confidence)
        return float(error)

    def summary(self, temperature: float) -> dict:
        return {
            "temperature": temperature,
            "mean": round(self.mean_confidence(), 4),
            "calibration_error": round(self.calibration_error(), 4),
        }
