import pytest
from torch import nn

from aerialseg.models.network import gflops_per_megapixel


@pytest.mark.parametrize("training", [True, False])
def test_gflops_per_megapixel_counts_a_known_network_and_keeps_its_mode(training):
    # A 1x1 convolution from 3 to 6 channels: 3 * 6 multiply-adds, 36 FLOPs, per pixel.
    net = nn.Conv2d(3, 6, 1, bias=False).train(training)
    assert gflops_per_megapixel(net, side=64) == pytest.approx(36e6 / 1e9)
    assert net.training is training
    # per megapixel: the input size does not change the figure of a convolutional network
    assert gflops_per_megapixel(net, side=128) == pytest.approx(gflops_per_megapixel(net, 64))
