"""Augmentation of training crops: joint image/mask geometry with torchvision's v2
transforms, which treat ``tv_tensors.Mask`` with nearest sampling and leave it out of
colour jitter."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.errors import ConfigError


class RandomRot90(v2.Transform):
    """Rotate by a random multiple of 90 degrees: exact, unlike interpolated rotation."""

    def make_params(self, flat_inputs: list) -> dict:
        return {"k": int(torch.randint(4, ()).item())}

    def transform(self, inpt, params: dict):
        if params["k"] == 0:
            return inpt
        # torch ops return plain tensors: wrapped again, an image stays an Image for the
        # transforms after it (BandJitter skipped what was no longer one)
        return tv_tensors.wrap(torch.rot90(inpt, params["k"], dims=(-2, -1)), like=inpt)


class RandomScaledCrop(v2.Transform):
    """A square of ``size * s`` px, s log-uniform in ``scale_range``, resized to ``size``:
    the network sees the scene at scales around its native one. The square is at most the
    image's shorter side, so no padding is needed for it."""

    def __init__(self, size: int, scale_range: tuple[float, float]):
        super().__init__()
        self.size = size
        self.log_range = (math.log(scale_range[0]), math.log(scale_range[1]))

    def make_params(self, flat_inputs: list) -> dict:
        height, width = v2.query_size(flat_inputs)
        scale = math.exp(float(torch.empty(()).uniform_(*self.log_range)))
        side = max(1, min(round(self.size * scale), height, width))
        top = int(torch.randint(height - side + 1, ()).item())
        left = int(torch.randint(width - side + 1, ()).item())
        return {"top": top, "left": left, "side": side}

    def transform(self, inpt, params: dict):
        side = params["side"]
        out = v2.functional.crop(inpt, params["top"], params["left"], side, side)
        if side == self.size:
            return out
        # Masks resize with nearest sampling (tv_tensors.Mask), images with antialiasing.
        return v2.functional.resize(out, [self.size, self.size], antialias=True)


class BandJitter(v2.Transform):
    """Brightness, contrast and saturation jitter for images of any band count, which
    torchvision's ColorJitter (1 or 3 channels) does not take. Its RGB definitions with the
    mean over bands in place of luminance: brightness scales every band, contrast blends
    with the image's mean value, saturation with each pixel's mean over bands."""

    def __init__(self, strength: float):
        super().__init__()
        self.strength = strength

    def make_params(self, flat_inputs: list) -> dict:
        factors = torch.empty(3).uniform_(1 - self.strength, 1 + self.strength)
        return dict(zip(("brightness", "contrast", "saturation"), factors.tolist(), strict=True))

    def transform(self, inpt, params: dict):
        if not isinstance(inpt, tv_tensors.Image):
            return inpt  # masks keep their labels
        x = inpt.as_subclass(torch.Tensor).float() * params["brightness"]
        x = x.clamp(0, 255)
        x = torch.lerp(x.mean(), x, params["contrast"]).clamp(0, 255)
        x = torch.lerp(x.mean(0, keepdim=True), x, params["saturation"]).clamp(0, 255)
        return tv_tensors.wrap(x.round().to(inpt.dtype), like=inpt)


class CheckedTransform:
    """A user's transform of the training pair (``train(transforms=)``), held to what
    training takes: the (image, mask) pair back, at the size and of the types it was given.
    A review: one returning the image alone failed in a DataLoader frame, and torchvision's
    ``ToDtype(float32, scale=True)`` trained without a word on images in 0..1 that predict
    then fed in 0..255."""

    def __init__(self, transform: Callable):
        self.transform = transform

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple:
        pair = self.transform(image, mask)
        if not (
            isinstance(pair, tuple | list)
            and len(pair) == 2
            and all(isinstance(t, torch.Tensor) for t in pair)
        ):
            raise ConfigError(
                f"transforms= returned a {type(pair).__name__}, not the (image, mask) pair of"
                " tensors it is given"
            )
        new_image, new_mask = pair
        if new_image.shape != image.shape or new_mask.shape != mask.shape:
            raise ConfigError(
                f"transforms= turned a {tuple(image.shape)} image and a {tuple(mask.shape)}"
                f" mask into {tuple(new_image.shape)} and {tuple(new_mask.shape)}: it must"
                " keep their sizes (crop_size sets the crop)"
            )
        for what, old, new in (("image", image, new_image), ("mask", mask, new_mask)):
            if new.dtype != old.dtype:
                raise ConfigError(
                    f"transforms= turned the {what}'s {old.dtype} values into {new.dtype}:"
                    " keep them as given (images in 0..255, which the network normalises"
                    " itself, as predict feeds them; leave out ToDtype and Normalize)"
                )
        return new_image, new_mask


def crop_transform(
    size: int,
    augment: bool,
    scale_range: tuple[float, float] | None = None,
    color_jitter: float = 0.2,
    bands: int = 3,
    extra: Callable | None = None,
) -> v2.Compose:
    """Crop (and with ``augment`` flip, turn, rescale and jitter) an image/mask pair, then
    apply ``extra`` (a user's torchvision v2 transform of the (image, mask) pair) if given.

    ``color_jitter`` is the brightness, contrast and saturation range (0.2: factors in
    0.8..1.2); 0 leaves colours alone. Jitter comes last, so geometry is drawn first.
    ``bands``: how many the images have; RGB ones get torchvision's jitter, others
    BandJitter.
    """
    steps: list = []
    if augment and scale_range is not None:
        steps.append(RandomScaledCrop(size, scale_range))
    # Pads a crop of an image smaller than ``size`` (masks with the ignore index).
    steps.append(
        v2.RandomCrop(
            size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}
        )
    )
    if augment:
        steps += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), RandomRot90()]
        if color_jitter > 0:
            # No hue jitter: on 512 px crops it cost 12 ms a crop, 5x the rest of the
            # jitter, about a tenth of a CPU training step.
            if bands == 3:
                strength = {k: color_jitter for k in ("brightness", "contrast", "saturation")}
                steps.append(v2.ColorJitter(**strength))
            else:
                steps.append(BandJitter(color_jitter))
    if extra is not None:
        steps.append(extra)
    return v2.Compose(steps)
