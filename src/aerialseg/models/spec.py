"""What a model needs to predict: a small versioned record saved in every model file.

The training settings (training/config.py) are a recipe: they may gain, lose or rename a
setting, or tighten a bound, from one release to the next. A model file must keep loading
all the same, so loading reads only this record, the fields that the network's builder,
the raster readers and the sliding window need. Files written before the record existed
hold the whole training config instead: ``from_dict`` reads those too, picking its fields
and ignoring the rest (the way Hugging Face configs load older versions).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

VERSION = 1  # raise when a field changes meaning; from_dict then converts older records


@dataclass(frozen=True)
class ModelSpec:
    """A trained model's network shape and how it sees images.

    The defaults fill in a field that a file written before the field existed lacks, so
    they are what that release meant (TrainConfig's defaults as of e71fee0) and stay so
    when TrainConfig's defaults change: a new file always carries every field."""

    model: str  # the architecture (models/factory.py)
    base_width: int = 16  # seed-unet: first block width
    dropout: float = 0.2  # seed-unet: dropout before its class head (a layer of the net)
    decoder_channels: tuple[int, ...] | None = None  # None: the architecture's own
    downsample: int = 1  # the network sees images averaged over k x k blocks
    bands: tuple[int, ...] | None = None  # 1-based raster bands it sees; None: RGB
    pixel_size: float | None = None  # CRS units per pixel it reads rasters at; None: own
    ground_resolution: tuple[float, float] | None = None  # trained [finest, coarsest] m
    input_mode: Literal["crop", "resize"] = "crop"  # resize: whole images squashed
    resize_to: int = 256  # resize mode: side of the squashed image
    window: int = 512  # sliding-window side, native px
    overlap: float = 0.0625  # share of a window overlapping its neighbour
    confidence_temperature: float | None = None  # fitted on validation images; None: 1
    max_unknown: float = 0.05  # evaluate: largest share of unknown mask colours
    version: int = VERSION

    @property
    def band_tuple(self) -> tuple[int, ...] | None:
        """``bands`` in the form the raster readers take."""
        return self.bands or None

    @property
    def in_channels(self) -> int:
        """How many bands the network takes."""
        return len(self.bands) if self.bands else 3

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """A spec from a saved spec or from a whole saved training config (any release's).

        Raises:
            ValueError: a field the spec needs is missing or of the wrong kind, or the
                record is of a newer version than this aerialseg reads.
        """
        if not isinstance(data, dict):
            raise ValueError(f"the model record is {type(data).__name__}, not a mapping")
        version = data.get("version", VERSION)
        if not isinstance(version, int) or version > VERSION:
            raise ValueError(f"a model record of version {version}: upgrade aerialseg")
        if "model" not in data:
            raise ValueError("no model architecture named")
        known = {f.name: f for f in dataclasses.fields(cls)}
        values = {k: _value(k, v) for k, v in data.items() if k in known and k != "version"}
        spec = cls(**values)
        spec.check()
        return spec

    def check(self) -> None:
        """Raise ValueError where the sliding window could not run with these values."""
        if not (self.window > 0 and self.resize_to > 0 and self.downsample > 0):
            raise ValueError("window, resize_to and downsample must be positive")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap {self.overlap} is not in [0, 1)")
        if self.input_mode not in ("crop", "resize"):
            raise ValueError(f"input_mode {self.input_mode!r} is not crop or resize")
        # values a file may hold that no run writes (a review: a temperature of NaN gave NaN
        # confidences and a crash in evaluate; bands [0, 0, 0] a crash at the first file)
        for name in ("confidence_temperature", "pixel_size"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r} is not a positive number")
        if self.bands is not None and not all(1 <= band <= MAX_BAND for band in self.bands):
            raise ValueError(f"bands={list(self.bands)} are not raster bands (1-based)")
        if self.ground_resolution is not None:
            low, high = self.ground_resolution
            if not (math.isfinite(high) and 0 < low <= high):
                raise ValueError(f"ground_resolution={list(self.ground_resolution)} is no range")


# The most a setting or an option may overlap windows: beyond half a window every pixel is
# predicted more than twice along each axis (0.99 of 512 px was a stride of 5 px, a few
# hundred times the work). Model files keep any share below 1, as written.
MAX_OVERLAP = 0.5

MAX_BAND = 65535  # GDAL numbers a raster's bands with an int; none holds more

_INTS = {"base_width", "downsample", "resize_to", "window"}
_FLOATS = {"dropout", "overlap", "max_unknown"}
_OPTIONAL_FLOATS = {"pixel_size", "confidence_temperature"}


def _value(key: str, value: Any) -> Any:
    """A saved value in the field's type: JSON and YAML keep tuples as lists."""
    try:
        if key in _INTS:
            if isinstance(value, bool) or int(value) != value:
                raise ValueError
            return int(value)
        if key in _FLOATS or (key in _OPTIONAL_FLOATS and value is not None):
            return float(value)
        if key in ("decoder_channels", "bands") and value is not None:
            return tuple(int(v) for v in value)
        if key == "ground_resolution" and value is not None:
            low, high = (float(v) for v in value)
            return (low, high)
        if key in ("model", "input_mode"):
            return str(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{key}={value!r} is not a valid value") from None
    return value
