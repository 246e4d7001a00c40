"""Fine-tuning's start: another model's weights across class tables and band counts."""

from __future__ import annotations

import pytest
import torch
from timm.models import adapt_input_conv

from aerialseg.data.classes import DUBAI_CLASSES, ClassTable, SegClass
from aerialseg.errors import ConfigError
from aerialseg.models.io import LoadedModel
from aerialseg.models.network import build_network
from aerialseg.models.transfer import init_from
from aerialseg.training.config import TrainConfig

# The Dubai classes turned round, one left out and one added: rows must follow the names.
OTHER_CLASSES = ClassTable(
    classes=(
        SegClass("Water", "#E2A929", "#50E3C2"),
        SegClass("Tree", "#00FF00", "#00FF00"),
        SegClass("Building", "#3C1098", "#D0021B"),
        SegClass("Road", "#6EC1E4", "#DE597F"),
    ),
)


def source_model(name: str = "fpn-effnet-lite0", **config) -> LoadedModel:
    torch.manual_seed(1)
    cfg = TrainConfig(model=name, pretrained=False, **config)
    net = build_network(name, 6, pretrained=False, decoder_channels=cfg.decoder_channels)
    with torch.no_grad():  # batch-norm statistics too, so every tensor is told apart
        for key, tensor in net.model.state_dict().items():
            if key.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif tensor.is_floating_point():
                tensor.uniform_(-0.1, 0.1)
    return LoadedModel(net.eval(), cfg.spec, DUBAI_CLASSES)


@pytest.mark.parametrize("name", ["seed-unet", "fpn-effnet-lite0", "unet-effnet-lite0"])
def test_same_classes_and_bands_copy_every_tensor(name):
    source = source_model(name)
    torch.manual_seed(2)
    net = build_network(name, 6, pretrained=False).eval()
    report = init_from(net, name, DUBAI_CLASSES, source)
    assert report.copied == report.total and not report.new_classes and not report.adapted_stem
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        out = net(x)
        assert out.isfinite().all() and torch.equal(out, source.net(x))


def test_head_rows_follow_the_class_names():
    source = source_model()
    torch.manual_seed(2)
    net = build_network("fpn-effnet-lite0", 4, pretrained=False)
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    report = init_from(net, "fpn-effnet-lite0", OTHER_CLASSES, source)
    assert report.kept_classes == ["Water", "Building", "Road"]
    assert report.new_classes == ["Tree"]
    assert "classes new to it: Tree" in report.describe("default")
    theirs, own = source.net.state_dict(), net.state_dict()
    for suffix in ("weight", "bias"):
        key = f"model.segmentation_head.0.{suffix}"
        for row, source_row in ((0, 4), (2, 0), (3, 2)):  # Water, Building, Road
            assert torch.equal(own[key][row], theirs[key][source_row])
        assert torch.equal(own[key][1], fresh[key][1])  # Tree as initialised
    body = "model.decoder.p5.weight"
    assert torch.equal(own[body], theirs[body])


def test_head_rows_follow_names_in_any_case_and_spacing():
    """As polygon labels and evaluate match names: a table that says 'building' keeps the
    source's Building row rather than starting it anew."""
    source = source_model()
    lower = ClassTable(tuple(SegClass(f" {c.name.lower()}", None, "#000000") for c in
                             DUBAI_CLASSES.classes[:2]))  # fmt: skip
    net = build_network("fpn-effnet-lite0", 2, pretrained=False)
    report = init_from(net, "fpn-effnet-lite0", lower, source)
    assert report.kept_classes == [" building", " land"] and not report.new_classes
    key = "model.segmentation_head.0.weight"
    assert torch.equal(net.state_dict()[key][1], source.net.state_dict()[key][1])


def test_an_rgb_model_starts_a_four_band_one():
    source = source_model()
    net = build_network("fpn-effnet-lite0", 6, pretrained=False, in_channels=4)
    report = init_from(net, "fpn-effnet-lite0", DUBAI_CLASSES, source)
    assert report.adapted_stem and report.copied == report.total
    stem = "model.encoder.model.conv_stem.weight"
    expected = adapt_input_conv(4, source.net.state_dict()[stem])
    assert torch.equal(net.state_dict()[stem], expected)
    assert net.mean.shape == (1, 4, 1, 1)  # normalisation follows the run's bands


def test_other_architectures_are_named():
    with pytest.raises(ConfigError, match="that model is a fpn-effnet-lite0.*set model="):
        init_from(
            build_network("seed-unet", 6, pretrained=False),
            "seed-unet",
            DUBAI_CLASSES,
            source_model(),
        )
    net = build_network("fpn-effnet-lite0", 6, pretrained=False, decoder_channels=[64, 32])
    with pytest.raises(ConfigError, match="set decoder_channels"):
        init_from(net, "fpn-effnet-lite0", DUBAI_CLASSES, source_model())
