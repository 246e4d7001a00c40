"""ModelSpec: the record a model file loads by, read from any release's saved dict."""

import numpy as np
import pytest

from aerialseg.models.spec import VERSION, ModelSpec

BASE = {"model": "fpn-effnet-lite0"}


def test_values_come_back_in_the_fields_types():
    spec = ModelSpec.from_dict(
        BASE
        | {
            "bands": [3, 2, 1],
            "decoder_channels": [64, 32],
            "window": 256.0,
            "overlap": 0,
            "confidence_temperature": 2,
            "input_mode": np.str_("crop"),
            "ground_resolution": [0.5, 2],
        }
    )
    assert spec.bands == (3, 2, 1) and spec.decoder_channels == (64, 32)
    assert type(spec.window) is int and spec.window == 256
    assert type(spec.overlap) is float and type(spec.confidence_temperature) is float
    assert type(spec.input_mode) is str and type(ModelSpec.from_dict({"model": 7}).model) is str
    assert spec.ground_resolution == (0.5, 2.0) and spec.in_channels == 3
    saved = spec.to_dict()
    assert saved["bands"] == [3, 2, 1] and type(saved["bands"]) is list
    assert ModelSpec.from_dict(saved) == spec


def test_an_older_record_is_read_as_this_version():
    assert ModelSpec.from_dict(BASE | {"version": 0}).version == VERSION
    with pytest.raises(ValueError, match="upgrade aerialseg"):
        ModelSpec.from_dict(BASE | {"version": VERSION + 1})
    with pytest.raises(ValueError, match="no model architecture named"):
        ModelSpec.from_dict({"window": 512})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"window": True}, "window=True is not a valid value"),
        ({"window": 512.5}, "window=512.5 is not a valid value"),
        ({"window": 0}, "window, resize_to and downsample must be positive"),
        ({"resize_to": 0}, "window, resize_to and downsample must be positive"),
        ({"downsample": 0}, "window, resize_to and downsample must be positive"),
        ({"overlap": 1}, r"overlap 1.0 is not in \[0, 1\)"),
        ({"overlap": 1.5}, r"overlap 1.5 is not in \[0, 1\)"),
        ({"input_mode": "squash"}, "input_mode 'squash' is not crop or resize"),
    ],
)
def test_values_the_window_cannot_run_with_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec.from_dict(BASE | changes)


def test_the_smallest_values_are_accepted():
    spec = ModelSpec.from_dict(BASE | {"window": 1, "resize_to": 1, "downsample": 1, "overlap": 0})
    assert (spec.window, spec.resize_to, spec.downsample, spec.overlap) == (1, 1, 1, 0.0)
