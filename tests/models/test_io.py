import pytest
import torch

from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.errors import ModelFileError
from aerialseg.models.io import load_model, save_model
from aerialseg.models.network import build_network
from aerialseg.training.config import resolve_config


def test_model_file_is_self_describing(tmp_path):
    cfg = resolve_config("seed", None, ["base_width=4"])
    torch.manual_seed(0)
    net = build_network(cfg.model, 6, pretrained=False, base_width=4).eval()
    save_model(tmp_path / "m.pt", net, cfg, DUBAI_CLASSES, {"val_miou": 0.5})
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.config == cfg and loaded.classes == DUBAI_CLASSES
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
    save_model(tmp_path / "m.pt", net.eval(), cfg, DUBAI_CLASSES)
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.config.decoder_channels == [32, 16, 16, 8, 8]
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded.net(x), net(x), rtol=1e-4, atol=1e-4)


def test_half_precision_file_is_smaller_and_close(tmp_path):
    cfg = resolve_config("seed", None, ["base_width=8"])
    net = build_network(cfg.model, 6, pretrained=False, base_width=8).eval()
    save_model(tmp_path / "full.pt", net, cfg, DUBAI_CLASSES)
    save_model(tmp_path / "half.pt", net, cfg, DUBAI_CLASSES, half=True)
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
    save_model(tmp_path / "m.pt", net, cfg, DUBAI_CLASSES)
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.net.downsample == 2 and loaded.net.stride == 32
    x = torch.rand(1, 3, 64, 96) * 255
    with torch.no_grad():
        expected = net(x)
        torch.testing.assert_close(loaded.net(x), expected, rtol=1e-4, atol=1e-4)
    # ONNX keeps the downsampling and the upsampling to any (stride-multiple) input size.
    export_onnx(loaded, tmp_path / "m.onnx")
    engine = OnnxEngine(tmp_path / "m.onnx")
    assert engine.stride == 32
    torch.testing.assert_close(engine(x), expected, rtol=1e-3, atol=1e-3)
