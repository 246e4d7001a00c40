import pytest

from aerialseg.errors import ConfigError
from aerialseg.training.config import TrainConfig, parse_duration, resolve_config


def test_presets_then_file_then_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("lr: 0.01\nbatch_size: 2\n")
    cfg = resolve_config(
        "seed", tmp_path / "c.yaml", ["batch_size=3", "class_weights=[1,2,3,4,5,6]"]
    )
    assert cfg.model == "seed-unet" and cfg.input_mode == "resize"  # preset
    assert cfg.lr == 0.01  # file
    assert cfg.batch_size == 3  # override wins
    assert cfg.class_weights == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_floats_in_exponent_notation(tmp_path):
    # PyYAML reads "3e-4" (no dot) as a string, the way most people write a learning rate.
    (tmp_path / "c.yaml").write_text("lr: 3e-4\nweight_decay: 1E-2\n")
    cfg = resolve_config("default", tmp_path / "c.yaml", ["ema_decay=9.9e-1"])
    assert (cfg.lr, cfg.weight_decay, cfg.ema_decay) == (3e-4, 1e-2, 0.99)
    assert resolve_config("default", None, ["lr=2e-3"]).lr == 2e-3
    weights = resolve_config("default", None, ["class_weights=[1e0,2,1,1,1,5e0]"]).class_weights
    assert weights == [1, 2, 1, 1, 1, 5]


def test_default_preset_is_the_pretrained_fpn_with_ema():
    cfg = resolve_config()
    assert cfg.model == "fpn-effnet-lite0" and cfg.pretrained and cfg.input_mode == "crop"
    assert cfg.ema_decay == 0.995
    assert resolve_config("seed").ema_decay == 0  # the notebook had no averaging


@pytest.mark.parametrize(
    "override, message",
    [
        ("colour=red", "unknown config key 'colour'; valid keys: model,"),
        ("model=vgg", "not one of: seed-unet, unet-effnet-lite0, fpn-effnet-lite0"),
        ("batch_size=two", "must be of type int"),
        ("lr=fast", "lr='fast' must be a number"),
        ("focal_gamma=-1", "focal_gamma must be 0 .off. or positive"),
        ("augment=maybe", "true or false"),
        ("crop_size=100", "multiple of 32"),
        ("max_time=soon", "HH:MM:SS"),
        ("lr", "not key=value"),
        ("model=unet-effnet-lite0 decoder_channels=[64,32]", "must be 5 positive widths"),
        ("model=fpn-effnet-lite0 decoder_channels=[64,32,16]", "must be 2 positive widths"),
        ("model=fpn-effnet-lite0 decoder_channels=[64,48]", "head width must be a multiple of 32"),
        ("model=seed-unet decoder_channels=[64,32]", "seed-unet takes no decoder_channels"),
        ("model=seed-unet decoder_channels=[]", "seed-unet takes no decoder_channels"),
        ("model=fpn-effnet-lite0 decoder_channels=[0,64]", "must be 2 positive widths"),
        ("downsample=5", "downsample must be 1, 2, 3 or 4"),
        ("drop_path=1", "drop_path must be in"),
        ("boundary_ignore=-1", "boundary_ignore must be 0 to 8 px"),
        ("model=seed-unet drop_path=0.1", "seed-unet takes no drop_path"),
        ("class_balanced=1.5", "class_balanced must be in"),
        ("label_smoothing=1", "label_smoothing must be in"),
        ("label_smoothing=0.1 focal_gamma=2", "use it without focal_gamma"),
        ("cutmix=-0.5", "cutmix must be in"),
        ("confidence_temperature=0", "confidence_temperature must be positive"),
        ("max_steps=0", r"max_steps must be -1 \(no limit\) or a positive number of steps"),
        ("max_steps=-2", "max_steps must be -1"),
        ("bands=[]", "bands must be 1 to 16 band numbers from 1"),
        ("bands=[0,1,2]", "bands must be 1 to 16 band numbers from 1"),
        (f"bands=[{','.join(['1'] * 17)}]", "bands must be 1 to 16 band numbers from 1"),
        ("downsample=2 crop_size=288", "crop_size must be a multiple of 64"),
        ("downsample=2 crop_size=512 window=480", "window must be a multiple of 64"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config("default", None, override.split())


def test_the_network_takes_as_many_bands_as_listed():
    assert resolve_config("default").in_channels == 3
    cfg = resolve_config("default", None, ["bands=[3,2,1,4]"])
    assert cfg.band_tuple == (3, 2, 1, 4) and cfg.in_channels == 4
    assert resolve_config("default", None, ["bands=[1]"]).in_channels == 1


def test_unknown_preset():
    with pytest.raises(ConfigError, match="presets: default, seed"):
        resolve_config("best")


def test_round_trip_through_yaml(tmp_path):
    cfg = resolve_config("seed", None, ["max_time=00:10:00"])
    cfg.save(tmp_path / "config.yaml")
    assert resolve_config("default", tmp_path / "config.yaml") == cfg
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_durations():
    assert parse_duration("01:02:03") == 3723
    assert parse_duration("18:00") == 1080
    assert parse_duration("90") == 90


def test_scale_range_must_be_an_ordered_positive_pair():
    assert resolve_config("default", None, ["scale_range=[0.5,2]"]).scale_range == [0.5, 2.0]
    for bad in ("scale_range=[2,1]", "scale_range=[0,1]", "scale_range=[1]"):
        with pytest.raises(ConfigError, match="scale_range must be"):
            resolve_config("default", None, [bad])
