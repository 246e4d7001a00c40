import pytest
import torch

from aerialseg.errors import ConfigError
from aerialseg.models import MODEL_NAMES, create_model
from aerialseg.models.network import build_network
from aerialseg.models.seed_unet import SeedUNet


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_and_backward_on_64x64(name):
    torch.manual_seed(0)
    net = build_network(name, 6, pretrained=False)
    x = torch.rand(2, 3, 64, 64) * 255
    logits = net(x)
    assert logits.shape == (2, 6, 64, 64)
    logits.logsumexp(1).mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("bands", [1, 4])
def test_networks_take_other_band_counts(name, bands):
    net = build_network(name, 6, pretrained=False, in_channels=bands).eval()
    assert net.in_channels == bands and net.mean.shape == (1, bands, 1, 1)
    with torch.no_grad():
        assert net(torch.rand(1, bands, 64, 64) * 255).shape == (1, 6, 64, 64)
    with pytest.raises(RuntimeError):
        net(torch.rand(1, 3, 64, 64))


def test_unet_decoder_widths_are_configurable():
    slim = create_model(
        "unet-effnet-lite0", 6, pretrained=False, decoder_channels=[64, 32, 16, 8, 8]
    )
    widths = [block.conv2[0].out_channels for block in slim.decoder.blocks]
    assert widths == [64, 32, 16, 8, 8]
    default = create_model("unet-effnet-lite0", 6, pretrained=False)
    assert [block.conv2[0].out_channels for block in default.decoder.blocks] == [
        256,
        128,
        64,
        32,
        16,
    ]
    assert slim(torch.zeros(1, 3, 64, 64)).shape == (1, 6, 64, 64)


def test_fpn_widths_are_configurable_and_logits_come_from_quarter_resolution():
    fpn = create_model("fpn-effnet-lite0", 6, pretrained=False, decoder_channels=[48, 32])
    assert fpn.decoder.p5.out_channels == 48
    assert fpn.segmentation_head[0].out_channels == 6
    assert fpn.segmentation_head[0].in_channels == 32
    # The head sees a 1/4-resolution map; the logits are upsampled to the input size.
    assert fpn.segmentation_head[1].scale_factor == 4
    assert fpn(torch.zeros(1, 3, 64, 96)).shape == (1, 6, 64, 96)
    default = create_model("fpn-effnet-lite0", 6, pretrained=False)
    assert (default.decoder.p5.out_channels, default.segmentation_head[0].in_channels) == (128, 64)


def test_unknown_name_lists_valid_names():
    with pytest.raises(
        ConfigError, match="valid models: seed-unet, unet-effnet-lite0, fpn-effnet-lite0"
    ):
        create_model("resnet-9000", 6)


def test_seed_unet_widths_follow_base_width():
    net = SeedUNet(6, base_width=16)
    widths = [block[0].out_channels for block in net.down] + [net.bottom[0].out_channels]
    assert widths == [16, 32, 64, 128, 256]
    assert [block[0].out_channels for block in SeedUNet(6, base_width=8).down] == [8, 16, 32, 64]
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"BatchNorm2d", "MaxPool2d", "Dropout2d", "ConvTranspose2d"} <= kinds


def test_network_normalises_inside():
    net = build_network("seed-unet", 3, pretrained=False)
    assert net.std.flatten().tolist() == [255.0] * 3  # the notebook's [0, 1] scaling
    lite = build_network("unet-effnet-lite0", 3, pretrained=False)
    assert lite.mean.flatten().tolist() == [127.5] * 3  # Lite weights expect [-1, 1]


def test_downsampled_network_sees_block_averages_and_answers_at_native_size():
    torch.manual_seed(0)
    net = build_network("fpn-effnet-lite0", 6, pretrained=False, downsample=2).eval()
    assert net.stride == 64  # the encoder's 32, in native pixels
    seen = []
    net.model.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    x = torch.rand(1, 3, 128, 192) * 255
    with torch.no_grad():
        logits = net(x)
    assert logits.shape == (1, 6, 128, 192)
    assert seen[0].shape == (1, 3, 64, 96)
    # The model's input is the normalised image averaged over 2 x 2 blocks ...
    block = ((x - net.mean) / net.std)[..., :2, :2].mean((-2, -1))
    assert torch.allclose(seen[0][..., 0, 0], block, atol=1e-5)
    # ... and the answer is its logits, upsampled.
    with torch.no_grad():
        small = net.model(seen[0])
    expected = torch.nn.functional.interpolate(small, size=(128, 192), mode="bilinear")
    assert torch.allclose(logits, expected, atol=1e-5)


def test_drop_path_skips_encoder_blocks_in_training_only():
    torch.manual_seed(0)
    plain = create_model("fpn-effnet-lite0", 6, pretrained=False)
    dropped = create_model("fpn-effnet-lite0", 6, pretrained=False, drop_path=0.3)
    dropped.load_state_dict(plain.state_dict())  # stochastic depth adds no weights
    rates = [m.drop_prob for m in dropped.encoder.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.3, abs=0.03)  # rising to the rate
    x = torch.rand(2, 3, 64, 64) * 255
    plain.eval(), dropped.eval()
    torch.testing.assert_close(dropped(x), plain(x))  # inference is unchanged
    # The encoder has no other randomness: in training its features repeat without stochastic
    # depth and vary with it (the decoder's dropout is left out of the comparison).
    plain.train(), dropped.train()
    torch.testing.assert_close(plain.encoder(x)[-1], plain.encoder(x)[-1])
    first = dropped.encoder(x)[-1]
    assert any(not torch.equal(first, dropped.encoder(x)[-1]) for _ in range(3))
