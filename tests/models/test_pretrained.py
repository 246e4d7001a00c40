import pytest
import torch

from aerialseg.models import create_model
from aerialseg.models.pretrained import lite0_imagenet_state_dict, lite0_weight_file


@pytest.mark.parametrize("name", ["unet-effnet-lite0", "fpn-effnet-lite0"])
def test_lite0_weights_are_really_loaded(name):
    package = list(torch.load(lite0_weight_file(), map_location="cpu", weights_only=True).values())
    model = create_model(name, 6, pretrained=True)
    encoder = model.encoder.model.state_dict()
    mapped = lite0_imagenet_state_dict()
    # Every encoder tensor equals the package tensor at the same position.
    positions = {key: i for i, key in enumerate(mapped)}
    assert len(encoder) == 288
    for key, tensor in encoder.items():
        assert torch.equal(tensor, package[positions[key]]), key
    # And a randomly initialised encoder is different: loading did something.
    random = create_model(name, 6, pretrained=False).encoder.model.state_dict()
    assert not torch.equal(random["conv_stem.weight"], encoder["conv_stem.weight"])


def test_lite0_recognises_the_cat_photo():
    """The mapped weights form a working ImageNet classifier: scikit-image's (bundled) photo
    of Chelsea the cat comes out as class 285, "Egyptian cat"."""
    import timm
    from skimage.data import chelsea

    from aerialseg.models.network import normalization_for

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    net.load_state_dict(lite0_imagenet_state_dict())
    net.eval()
    norm = normalization_for("unet-effnet-lite0")
    image = torch.from_numpy(chelsea()).permute(2, 0, 1).float()[None]
    image = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear")
    image = (image - torch.tensor(norm["mean"]).view(1, 3, 1, 1)) / torch.tensor(norm["std"]).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        probs = net(image).softmax(1)[0]
    assert int(probs.argmax()) == 285
    assert probs[285] > 0.5
