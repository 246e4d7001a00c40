import pytest

from aerialseg.errors import ConfigError
from aerialseg.training.config import (
    TrainConfig,
    duration_text,
    parse_duration,
    resolve_config,
)


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
    # YAML 1.1 (PyYAML's own resolver) read "3e-4" as text; the loader reads it as 1.2 does
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
        ("colour=red", r"^unknown setting 'colour' \(aerialseg train --list-settings lists"),
        # a review: no suggestion for another tool's name, and an empty key read as one
        ("learning_rate=1", r"^unknown setting 'learning_rate'; did you mean 'lr'\? \(aerialseg"),
        ("lrr=1", r"^unknown setting 'lrr'; did you mean 'lr'\? \(aerialseg"),
        ("=3", r"^override '=3' is not key=value$"),
        ("model=vgg", "not one of: seed-unet, unet-effnet-lite0, fpn-effnet-lite0"),
        ("batch_size=two", "must be a whole number"),
        ("samples_per_epoch=1e3", "must be a whole number, written in digits"),
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
        # 0.99 of a 512 px window was a stride of 5 px: hundreds of times the work
        ("overlap=0.99", "overlap must be 0 to 0.5: more predicts each pixel"),
        ("confidence_temperature=0", "confidence_temperature must be positive"),
        ("max_steps=0", r"max_steps must be -1 \(no limit\) or a positive number of steps"),
        ("max_steps=-2", "max_steps must be -1"),
        ("bands=[]", "bands must be 1 to 16 band numbers from 1"),
        ("bands=[0,1,2]", "bands must be 1 to 16 band numbers from 1"),
        (f"bands=[{','.join(['1'] * 17)}]", "bands must be 1 to 16 band numbers from 1"),
        ("downsample=2 crop_size=288", "crop_size must be a positive multiple of 64"),
        ("downsample=2 crop_size=512 window=480", "window must be a positive multiple of 64"),
        ("crop_size=0", "crop_size must be a positive multiple of 32"),  # a review: 0 is one
        ("window=0", "window must be a positive multiple of 32"),
        ("resize_to=-32", "resize_to must be a positive multiple of 32"),
        # found by a review: each trained a broken model, or failed after writing into --out
        ("lr=inf", "lr=inf must be a finite number"),
        ("lr=1e999", "must be a finite number"),
        ("weight_decay=nan", "weight_decay=nan must be a finite number"),
        ("class_weights=[.nan,1,1,1,1,1]", "must be a finite number"),
        ("scale_range=[0.5,.inf]", "must be a finite number"),
        ("dropout=2", r"dropout must be in \[0, 1\)"),
        ("base_width=0", "base_width must be positive"),
        ("val_every=0", "val_every must be 1 or more"),
        ("num_workers=-1", r"num_workers must be in 0\.\.256"),
        # found by a review: all-zero weights and a vast batch trained a NaN model or
        # crashed in the sampler after writing
        ("class_weights=[0,0,0,0,0,0]", "class_weights must be 0 or more, one of them above 0"),
        (f"batch_size={10**21}", "batch_size must be positive and at most samples_per_epoch"),
        ("num_workers=10000", r"num_workers must be in 0\.\.256"),
        ("bands=3", r"bands must be a list, e.g. bands=\[1,2\]"),
        ("weight_decay=-1", "weight_decay must be 0 or more"),
        ("max_epochs=0", "max_epochs must be positive"),
        ("samples_per_epoch=0", "samples_per_epoch must be positive"),
        ("class_weights=[-1,1,1,1,1,1]", "class_weights must be 0 or more"),
        ("seed=-1", r"seed must be in \[0, 2\*\*32\)"),
        (f"seed={2**32}", "seed must be in"),
        ("precision=garbage", "precision must be one of Lightning's: 32-true"),
        ("precision=", "precision needs a value"),
        ("max_time=25:99:99", "minutes and seconds 0 to 59"),
        # a review: int() read "1_0" and other scripts' digits
        ("max_time=1_0", r"max_time '1_0' is not HH:MM:SS, MM:SS or seconds, e.g. 01:30:00"),
        ("max_time=\u0663\u0660", "is not HH:MM:SS, MM:SS or seconds"),
        ("max_time=-1", "is not HH:MM:SS, MM:SS or seconds"),
        ("ground_resolution=[2,1]", r"ground_resolution must be \[finest, coarsest\]"),
        ("bands=[3,", "quote the whole setting for the shell"),
        ("init_from=%x", None),  # text: taken as typed (no such file: train says so)
        ("init_from=null max_time=null", None),  # as --list-settings writes None
    ],
)
def test_bad_overrides(override, message):
    if message is None:
        resolve_config("default", None, override.split())
        return
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
    with pytest.raises(ConfigError, match="give seconds"):  # was math.ceil's OverflowError
        duration_text(float("inf"))


def test_scale_range_must_be_an_ordered_positive_pair():
    assert resolve_config("default", None, ["scale_range=[0.5,2]"]).scale_range == [0.5, 2.0]
    for bad in ("scale_range=[2,1]", "scale_range=[0,1]", "scale_range=[1]"):
        with pytest.raises(ConfigError, match="scale_range must be"):
            resolve_config("default", None, [bad])


def test_text_settings_are_taken_as_typed():
    """YAML read 'runs/v #2/model.pt' as 'runs/v' (a comment), 'yes' as True, '0755' as 493
    and '&a' as nothing, all silently."""
    for text in ("runs/v #2/model.pt", "yes", "0755", "- x", "*.tif", "[a.jpg,b.jpg]"):
        cfg = resolve_config("default", None, [f"init_from={text}"])
        assert cfg.init_from == text
    assert resolve_config("default", None, ["unlabelled=*.tif", "init_from=default"]).unlabelled
    assert resolve_config("default", None, ["init_from="]).init_from is None


def test_config_files_of_other_shapes_and_encodings_are_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    for content, message in (
        (b"lr: 0.01\n\xff\n", "is not UTF-8 text"),
        (b"1: 2\n", "1 is not a setting name"),
        (b"[]\n", "must be a mapping of keys to values"),
        (b"0\n", "must be a mapping of keys to values"),
        (b"init_from: 0755\n", "must be text; in a config file, quote it"),
    ):
        path.write_bytes(content)
        with pytest.raises(ConfigError, match=message):
            resolve_config("default", path)
    path.write_bytes(b"")
    assert resolve_config("default", path) == resolve_config("default")


def test_python_settings_take_numpy_numbers_and_refuse_other_keys():
    import numpy as np

    cfg = resolve_config("default", settings={"crop_size": np.int64(64), "lr": np.float32(0.5)})
    assert cfg.crop_size == 64 and type(cfg.crop_size) is int and cfg.lr == 0.5
    with pytest.raises(ConfigError, match="is not a setting name"):
        resolve_config("default", settings={1: 2})


def test_python_settings_take_max_time_as_train_does():
    """A review: settings={"max_time": 30} said to quote it in a config file."""
    from datetime import timedelta

    for given in (30, 30.0, timedelta(seconds=30), "00:00:30"):
        assert resolve_config("default", settings={"max_time": given}).max_time == "00:00:30"
    with pytest.raises(ConfigError, match="max_time -1: give seconds, a datetime.timedelta"):
        resolve_config("default", settings={"max_time": -1})
    assert resolve_config("default", settings={"max_time": None}).max_time is None


def test_null_is_none_for_a_text_setting_that_may_be_none():
    cfg = resolve_config("finetune", None, ["max_time=null", "init_from=null"])
    assert cfg.max_time is None and cfg.init_from is None
