import re
from pathlib import Path

import numpy as np
import pytest
import torch

import aerialseg
from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.errors import ModelFileError
from aerialseg.models.io import bundled_model_path, load_model, save_model
from aerialseg.models.network import build_network
from aerialseg.training.config import resolve_config


def test_model_file_is_self_describing(tmp_path):
    cfg = resolve_config("seed", None, ["base_width=4"])
    torch.manual_seed(0)
    net = build_network(cfg.model, 6, pretrained=False, base_width=4).eval()
    save_model(
        tmp_path / "m.pt", net, cfg.spec, DUBAI_CLASSES, {"val_miou": 0.5}, recipe=cfg.to_dict()
    )
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.spec == cfg.spec and loaded.classes == DUBAI_CLASSES
    assert loaded.recipe == cfg.to_dict()  # kept to explain the model
    assert loaded.meta["val_miou"] == 0.5
    x = torch.rand(1, 3, 32, 32) * 255
    saved, reloaded = net.state_dict(), loaded.net.state_dict()
    assert all(torch.equal(saved[k], reloaded[k]) for k in saved)
    with torch.no_grad():  # same weights; the CPU's channels-last layout reorders sums
        torch.testing.assert_close(loaded.net(x), net(x), rtol=1e-4, atol=1e-4)
    assert list(tmp_path.iterdir()) == [tmp_path / "m.pt"]  # no temporary file left


def test_decoder_widths_travel_in_the_model_file(tmp_path):
    cfg = resolve_config(
        "default",
        None,
        ["model=unet-effnet-lite0", "decoder_channels=[32,16,16,8,8]", "pretrained=false"],
    )
    net = build_network(cfg.model, 6, pretrained=False, decoder_channels=cfg.decoder_channels)
    save_model(tmp_path / "m.pt", net.eval(), cfg.spec, DUBAI_CLASSES)
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.spec.decoder_channels == (32, 16, 16, 8, 8)
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded.net(x), net(x), rtol=1e-4, atol=1e-4)


def test_half_precision_file_is_smaller_and_close(tmp_path):
    cfg = resolve_config("seed", None, ["base_width=8"])
    net = build_network(cfg.model, 6, pretrained=False, base_width=8).eval()
    save_model(tmp_path / "full.pt", net, cfg.spec, DUBAI_CLASSES)
    save_model(tmp_path / "half.pt", net, cfg.spec, DUBAI_CLASSES, half=True)
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size
    x = torch.rand(1, 3, 32, 32) * 255
    with torch.no_grad():
        assert torch.allclose(load_model(tmp_path / "half.pt").net(x), net(x), atol=1e-2)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not an aerialseg model file"),
        (b"hello world", "not an aerialseg model file"),
    ],
)
def test_files_that_are_not_models(tmp_path, content, message):
    (tmp_path / "m.pt").write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        load_model(tmp_path / "m.pt")


def test_torch_file_without_metadata(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "m.pt")
    with pytest.raises(ModelFileError, match="no aerialseg metadata"):
        load_model(tmp_path / "m.pt")


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "nope.pt")


def test_downsampled_network_round_trips_through_model_file_and_onnx(tmp_path):
    from aerialseg.inference.engine import OnnxEngine
    from aerialseg.models.export import export_onnx

    cfg = resolve_config("seed", None, ["base_width=4", "downsample=2"])
    torch.manual_seed(0)
    net = build_network(cfg.model, 6, pretrained=False, base_width=4, downsample=2).eval()
    save_model(tmp_path / "m.pt", net, cfg.spec, DUBAI_CLASSES)
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.net.downsample == 2 and loaded.net.stride == 32
    x = torch.rand(1, 3, 64, 96) * 255
    with torch.no_grad():
        expected = net(x)
        torch.testing.assert_close(loaded.net(x), expected, rtol=1e-4, atol=1e-4)
    # ONNX keeps the downsampling and the upsampling to any (stride-multiple) input size.
    export_onnx(loaded, tmp_path / "m.onnx")
    engine = OnnxEngine(tmp_path / "m.onnx")
    assert engine.stride == 32 and engine.spec == cfg.spec
    torch.testing.assert_close(engine(x), expected, rtol=1e-3, atol=1e-3)


def test_random_bytes_and_pickled_objects_are_one_line_without_torchs_page(tmp_path):
    """torch's weights_only text (a page of advice) was quoted for a random file."""
    np_random = __import__("numpy").random.default_rng(0)
    (tmp_path / "random.pt").write_bytes(np_random.bytes(1000))
    torch.save({"array": np_random.random(3)}, tmp_path / "objects.pt")  # a numpy object
    for name, reason in [
        ("random.pt", "not a PyTorch file"),
        ("objects.pt", "a PyTorch file of more than weights; aerialseg runs no code"),
    ]:
        with pytest.raises(ModelFileError) as caught:
            load_model(tmp_path / name)
        message = str(caught.value)
        assert message.startswith(f"{tmp_path / name}: not an aerialseg model file ({reason}")
        assert "weights_only" not in message and "\n" not in message


def test_weights_of_another_architecture_are_one_line(tmp_path):
    """A file whose config names another network than its weights: torch listed all 189
    mismatched tensors."""
    cfg = resolve_config("seed", None, ["base_width=4"])
    net = build_network(cfg.model, 6, pretrained=False, base_width=4).eval()
    save_model(tmp_path / "m.pt", net, cfg.spec, DUBAI_CLASSES)
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    for change, counts in [
        ({"base_width": 8}, "0 missing, 0 unexpected and"),
        ({"model": "unet-effnet-lite0"}, " missing, "),
    ]:
        payload["spec"] = {**payload["spec"], **change}
        torch.save(payload, tmp_path / "other.pt")
        with pytest.raises(ModelFileError) as caught:
            load_model(tmp_path / "other.pt")
        message = str(caught.value)
        assert "\n" not in message and len(message) < 400, message
        assert f"not those of the {payload['spec']['model']} network its config names" in message
        assert counts in message


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RELEASED = FIXTURES / "model-v1-e71fee0"  # written by the release at e71fee0: never rewrite


@pytest.mark.parametrize("suffix", [".pt", ".ckpt"])
def test_model_files_of_the_e71fee0_release_still_load_and_predict(suffix):
    """Users hold model files of earlier releases: today's loader reads them and predicts
    what that release predicted (tests/fixtures/make_model_fixture.py wrote the files)."""
    expected = np.load(f"{RELEASED}-expected.npz")
    image = expected["image"]
    model = aerialseg.load_model(f"{RELEASED}{suffix}", device="cpu", precision="fp32")
    assert model.class_names == DUBAI_CLASSES.names
    assert model.spec.model == "seed-unet" and model.spec.base_width == 2
    first = model.predict(image, probabilities=True, confidence=True)
    again = model.predict(image, probabilities=True, confidence=True)
    assert first.class_ids.shape == image.shape[:2] and first.class_ids.dtype == np.uint8
    assert first.valid.all() and set(np.unique(first.class_ids)) <= set(range(6))
    assert len(np.unique(first.class_ids)) > 1  # a network that looks at the image
    np.testing.assert_array_equal(first.class_ids, again.class_ids)
    np.testing.assert_array_equal(first.probabilities, again.probabilities)
    # The checkpoint holds the same weights; model.pt adds the fitted temperature, which
    # changes probabilities, never class ids.
    np.testing.assert_array_equal(first.class_ids, expected["class_ids"])
    if suffix == ".pt":
        assert model.spec.confidence_temperature == pytest.approx(0.4554)
        assert model.meta["global_step"] == 32 and model.meta["trained_on"] == "data"
        np.testing.assert_allclose(first.probabilities, expected["probabilities"], atol=1e-5)
    else:
        assert model.spec.confidence_temperature is None
    np.testing.assert_allclose(first.confidence, first.probabilities.max(0))


def _seed_file(tmp_path):
    cfg = resolve_config("seed", None, ["base_width=4", "window=64", "overlap=0.25"])
    torch.manual_seed(0)
    net = build_network(cfg.model, 6, pretrained=False, base_width=4).eval()
    save_model(tmp_path / "m.pt", net, cfg.spec, DUBAI_CLASSES, recipe=cfg.to_dict())
    return cfg, torch.load(tmp_path / "m.pt", weights_only=True)


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: {**{k: v for k, v in c.items() if k != "lr"}, "learning_rate": c["lr"]},
        lambda c: {k: v for k, v in c.items() if k != "cutmix"},  # a setting removed
        lambda c: {**c, "cutmix": 7.5, "ema_decay": -1},  # bounds tightened since
        lambda c: {**c, "a_setting_of_a_later_release": [1, 2]},
    ],
)
def test_a_changed_training_recipe_does_not_break_the_model_file(tmp_path, edit):
    """Only the spec is read to load a model: its training settings may be renamed,
    removed or bounded otherwise in a later release."""
    cfg, payload = _seed_file(tmp_path)
    for files_spec in (True, False):  # a file of today, and one written before the spec
        changed = {**payload, "config": edit(payload["config"])}
        if not files_spec:
            del changed["spec"]
        torch.save(changed, tmp_path / "changed.pt")
        assert load_model(tmp_path / "changed.pt").spec == cfg.spec


def test_files_without_a_spec_and_lightning_checkpoints_take_it_from_their_config(tmp_path):
    cfg, payload = _seed_file(tmp_path)
    old = {k: v for k, v in payload.items() if k != "spec"}  # as every file until now
    torch.save(old, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").spec == cfg.spec
    checkpoint = {
        "hyper_parameters": {"config": payload["config"], "classes": payload["classes"]},
        "state_dict": {f"net.{k}": v for k, v in payload["state_dict"].items()},
        "epoch": 3,
    }
    torch.save(checkpoint, tmp_path / "best.ckpt")
    loaded = load_model(tmp_path / "best.ckpt")
    assert loaded.spec == cfg.spec and loaded.meta["epoch"] == 3


def test_a_spec_of_a_later_version_or_without_a_model_is_one_line(tmp_path):
    _, payload = _seed_file(tmp_path)
    for spec, reason in [
        ({**payload["spec"], "version": 99}, "version 99: upgrade aerialseg"),
        ({k: v for k, v in payload["spec"].items() if k != "model"}, "no model architecture"),
        ({**payload["spec"], "window": "wide"}, "window='wide' is not a valid value"),
    ]:
        torch.save({**payload, "spec": spec}, tmp_path / "bad.pt")
        with pytest.raises(ModelFileError, match=reason):
            load_model(tmp_path / "bad.pt")


def test_the_bundled_model_loads_as_committed():
    loaded = load_model(bundled_model_path())
    assert loaded.spec.model == loaded.recipe["model"] and loaded.classes.num_classes == 6
    assert loaded.spec.ground_resolution == (1.0, 2.5) and loaded.spec.confidence_temperature
    assert "lr" in loaded.recipe  # the training settings, kept to explain it


def test_model_files_with_damaged_records_are_one_line(tmp_path):
    """Values of the wrong kind where the model record, weights or windows belong, as an
    edited or hostile file holds them: each was a traceback (AttributeError, KeyError,
    OverflowError) instead of ModelFileError."""
    cfg = resolve_config("seed", None, ["base_width=4"])
    net = build_network(cfg.model, 6, pretrained=False, base_width=4).eval()
    save_model(tmp_path / "m.pt", net, cfg.spec, DUBAI_CLASSES)
    good = torch.load(tmp_path / "m.pt", weights_only=True)
    first, nan = next(iter(good["state_dict"])), float("nan")
    damaged = {
        "no weights": ({k: v for k, v in good.items() if k != "state_dict"}, "no weights inside"),
        "weights a list": ({**good, "state_dict": [1, 2]}, "no weights inside"),
        "weights not tensors": (
            {**good, "state_dict": dict.fromkeys(good["state_dict"], 1)},
            "its weights are not those of the seed-unet network",
        ),
        "spec a list": ({**good, "spec": [1]}, r"model metadata is damaged \(the model record"),
        "spec text": ({**good, "spec": "x"}, "is str, not a mapping"),
        "window infinite": (
            {**good, "spec": {**good["spec"], "window": float("inf")}},
            "window=inf is not a valid value",
        ),
        # a review: NaN confidences and a crash in evaluate; a crash at the first file
        "temperature NaN": (
            {**good, "spec": {**good["spec"], "confidence_temperature": float("nan")}},
            "confidence_temperature=nan is not a positive number",
        ),
        "bands zero": (
            {**good, "spec": {**good["spec"], "bands": [0, 0, 0]}},
            r"bands=\[0, 0, 0\] are not raster bands",
        ),
        "pixel size negative": (
            {**good, "spec": {**good["spec"], "pixel_size": -2}},
            "pixel_size=-2.0 is not a positive number",
        ),
        "ground resolution reversed": (
            {**good, "spec": {**good["spec"], "ground_resolution": [2.5, 1.0]}},
            r"ground_resolution=\[2.5, 1.0\] is no range",
        ),
        "weights NaN": (  # a review: class 0 everywhere, NaN confidence
            {**good, "state_dict": {**good["state_dict"], first: good["state_dict"][first] * nan}},
            f"1 of its weight tensors hold NaN or infinity \\(e.g. {re.escape(first)}\\)",
        ),
        "a newer format": (  # a review: it loaded without a word
            {**good, "version": 99},
            "a model file of format version 99, newer than this aerialseg reads",
        ),
        "a checkpoint's weights a list": (
            {"hyper_parameters": {"config": {}}, "state_dict": [1]},
            "no aerialseg metadata inside",
        ),
        "a checkpoint's parameters a list": (
            {"hyper_parameters": ["config"], "state_dict": {}},
            "no aerialseg metadata inside",
        ),
    }
    for payload, message in damaged.values():
        torch.save(payload, tmp_path / "bad.pt")
        with pytest.raises(ModelFileError, match=message):
            load_model(tmp_path / "bad.pt")


def test_onnx_files_with_damaged_metadata_are_one_line(tmp_path):
    import json

    import onnx

    from aerialseg.inference.engine import OnnxEngine
    from aerialseg.models.export import METADATA_KEY, export_onnx

    cfg = resolve_config("seed", None, ["base_width=4"])
    net = build_network(cfg.model, 6, pretrained=False, base_width=4).eval()
    save_model(tmp_path / "m.pt", net, cfg.spec, DUBAI_CLASSES)
    export_onnx(load_model(tmp_path / "m.pt"), tmp_path / "m.onnx")
    proto = onnx.load(tmp_path / "m.onnx")
    (entry,) = [e for e in proto.metadata_props if e.key == METADATA_KEY]
    info = json.loads(entry.value)
    for value, message in [
        ("[]", "list, not a mapping"),
        ("null", "NoneType, not a mapping"),
        ('"text"', "str, not a mapping"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (json.dumps({**info, "spec": "x"}), "is str, not a mapping"),
        (json.dumps({**info, "spec": {**info["spec"], "window": 1e400}}), "window=inf is not"),
        # a review: a ZeroDivisionError traceback when predicting
        (json.dumps({**info, "stride": 0}), "stride=0 is not a whole number of pixels"),
        (json.dumps({**info, "stride": "32"}), "stride='32' is not a whole number"),
        # a review: NaN confidences, then a crash in evaluate; a crash at the first file
        (
            json.dumps({**info, "spec": {**info["spec"], "confidence_temperature": -1}}),
            r"confidence_temperature=-1.0 is not a positive number",
        ),
        (
            json.dumps({**info, "spec": {**info["spec"], "bands": [0, 0, 0]}}),
            r"bands=\[0, 0, 0\] are not raster bands",
        ),
    ]:
        entry.value = value
        onnx.save(proto, tmp_path / "bad.onnx")
        with pytest.raises(ModelFileError, match=f"its aerialseg metadata is damaged .*{message}"):
            OnnxEngine(tmp_path / "bad.onnx")
    # metadata the network contradicts (a review: one class short, it predicted an id with
    # no name; a stride it does not have failed in onnxruntime at the first image)
    short = DUBAI_CLASSES.to_dict()
    short["classes"] = short["classes"][:-1]
    for value, message in [
        ({**info, "classes": short}, "its network gives 6 class score"),
        ({**info, "stride": 7}, "its aerialseg metadata does not fit its network"),
    ]:
        entry.value = json.dumps(value)
        onnx.save(proto, tmp_path / "bad.onnx")
        with pytest.raises(ModelFileError, match=message):
            OnnxEngine(tmp_path / "bad.onnx")
    entry.value = json.dumps(info)  # the metadata as written: it loads
    onnx.save(proto, tmp_path / "good.onnx")
    assert OnnxEngine(tmp_path / "good.onnx").classes.num_classes == 6


def test_a_run_folder_names_its_model_wherever_a_model_is_taken(tiny_model, tmp_path):
    """A review: init_from=runs/base and evaluate runs/base said "no such model file";
    the folder train --out names is taken as its model.pt (a folder without one is not)."""
    from aerialseg.inference.engine import OnnxEngine
    from aerialseg.inference.load import load_predictor
    from aerialseg.models.io import model_path
    from aerialseg.training.run import _source_model

    run = tmp_path / "runs" / "base"
    run.mkdir(parents=True)
    (run / "model.pt").write_bytes(Path(tiny_model).read_bytes())
    assert model_path(run) == run / "model.pt" and model_path(str(run)) == run / "model.pt"
    assert load_predictor(run, device="cpu").path == run / "model.pt"
    assert aerialseg.load_model(run).path == run / "model.pt"
    assert _source_model(str(run)).spec == load_model(run / "model.pt").spec
    empty = tmp_path / "empty"
    empty.mkdir()
    assert model_path(empty) == empty  # and loading it says what it is
    for load in (load_model, OnnxEngine):  # a review: it was "no such model file"
        with pytest.raises(ModelFileError, match="a folder without a model.pt, not a model file"):
            load(empty)
