import pytest
import torch

from aerialseg.models import create_model
from aerialseg.models.pretrained import imagenet_state_dict, weight_file

ENCODER_TENSORS = {"lite0": 288, "lite2": 378}  # the timm feature extractor's state dict


@pytest.mark.parametrize(
    "name", ["unet-effnet-lite0", "fpn-effnet-lite0", "unet-effnet-lite2", "fpn-effnet-lite2"]
)
def test_imagenet_weights_are_really_loaded(name):
    variant = name.rsplit("-", 1)[1]
    package = list(torch.load(weight_file(variant), map_location="cpu", weights_only=True).values())
    model = create_model(name, 6, pretrained=True)
    encoder = model.encoder.model.state_dict()
    mapped = imagenet_state_dict(variant)
    # Every encoder tensor equals the package tensor at the same position.
    positions = {key: i for i, key in enumerate(mapped)}
    assert len(encoder) == ENCODER_TENSORS[variant]
    for key, tensor in encoder.items():
        assert torch.equal(tensor, package[positions[key]]), key
    # And a randomly initialised encoder is different: loading did something.
    random = create_model(name, 6, pretrained=False).encoder.model.state_dict()
    assert not torch.equal(random["conv_stem.weight"], encoder["conv_stem.weight"])


@pytest.mark.parametrize(("variant", "side"), [("lite0", 224), ("lite2", 260)])
def test_weights_recognise_the_cat_photo(variant, side):
    """The mapped weights form a working ImageNet classifier: scikit-image's (bundled) photo
    of Chelsea the cat comes out as class 285, "Egyptian cat"."""
    import timm
    from skimage.data import chelsea

    from aerialseg.models.network import normalization_for

    net = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False)
    net.load_state_dict(imagenet_state_dict(variant))
    net.eval()
    norm = normalization_for(f"unet-effnet-{variant}")
    image = torch.from_numpy(chelsea()).permute(2, 0, 1).float()[None]
    image = torch.nn.functional.interpolate(image, size=(side, side), mode="bilinear")
    image = (image - torch.tensor(norm["mean"]).view(1, 3, 1, 1)) / torch.tensor(norm["std"]).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        probs = net(image).softmax(1)[0]
    assert int(probs.argmax()) == 285
    assert probs[285] > 0.5


def test_four_band_stems_start_from_the_rgb_filters():
    """timm's rule for extra bands: RGB filters repeated over the bands, scaled by 3/4; every
    other encoder tensor is ImageNet's as it is."""
    rgb = create_model("fpn-effnet-lite0", 6, pretrained=True).encoder.model.state_dict()
    four = create_model("fpn-effnet-lite0", 6, in_channels=4, pretrained=True)
    state = four.encoder.model.state_dict()
    stem = rgb["conv_stem.weight"]
    assert state["conv_stem.weight"].shape == (32, 4, 3, 3)
    assert torch.allclose(state["conv_stem.weight"][:, :3], stem * 0.75)
    assert torch.allclose(state["conv_stem.weight"][:, 3], stem[:, 0] * 0.75)
    assert all(torch.equal(state[k], rgb[k]) for k in rgb if k != "conv_stem.weight")


def test_a_one_band_encoder_sees_grey_as_the_rgb_one_does():
    from aerialseg.models.network import build_network

    torch.manual_seed(0)
    grey = torch.rand(1, 1, 64, 64) * 255
    nets = [
        build_network("fpn-effnet-lite0", 6, pretrained=True, in_channels=bands).eval()
        for bands in (1, 3)
    ]
    # the decoders start random: compare the pretrained encoders' features
    with torch.no_grad():
        one = nets[0].model.encoder((grey - 127.5) / 127.5)
        three = nets[1].model.encoder((grey.repeat(1, 3, 1, 1) - 127.5) / 127.5)
    for a, b in zip(one, three, strict=True):
        assert torch.allclose(a, b, atol=1e-4)
