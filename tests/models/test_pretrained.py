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
