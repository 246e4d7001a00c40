import pytest
import torch
from torch import nn

from aerialseg.models import MODEL_NAMES
from aerialseg.models.fuse import fold_batchnorms
from aerialseg.models.network import build_network


def randomise_batchnorms(net: nn.Module) -> None:
    """Statistics and affine parameters far from the identity, as trained ones are."""
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_folded_network_predicts_the_same_without_batchnorms(name):
    torch.manual_seed(0)
    net = build_network(name, 6, pretrained=False).eval()
    randomise_batchnorms(net)
    before = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    folded, count = fold_batchnorms(net, torch.rand(1, 3, 64, 64) * 255)
    after = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert count > 0 and after == before - count
    if name != "seed-unet":  # every EfficientNet BatchNorm follows a conv
        assert after == 0
    x = torch.rand(2, 3, 96, 128) * 255  # another size than the sample
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), rtol=1e-3, atol=1e-3)
    # The original is left as it was.
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == before


class SharedOutput(nn.Module):
    """A conv whose output two modules read: its BatchNorm must stay."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.side = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + self.side(y)


class FunctionalRead(nn.Module):
    """A conv output read by a plain tensor op, which hooks cannot see."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_batchnorm_of_a_shared_output_is_kept():
    torch.manual_seed(0)
    net = SharedOutput().eval()
    randomise_batchnorms(net)
    folded, count = fold_batchnorms(net, torch.rand(1, 3, 8, 8))
    assert count == 0 and isinstance(folded.bn, nn.BatchNorm2d)


def test_a_fold_that_changes_the_output_is_refused():
    torch.manual_seed(0)
    net = FunctionalRead().eval()
    randomise_batchnorms(net)
    with pytest.raises(RuntimeError, match="changed the output"):
        fold_batchnorms(net, torch.rand(1, 3, 8, 8))


def test_training_mode_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorms(SharedOutput().train(), torch.rand(1, 3, 8, 8))
