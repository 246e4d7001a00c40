"""Start a network from another model's weights: fine-tuning a trained model (the bundled
one, say) on one's own labels, which may name other classes or come with other bands.

Loaders of Lightning, timm and smp match tensors by name and shape; here the class head is
matched by class name, row by row, and the first convolution is adapted to another band
count with timm's rule, so no library call does it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from timm.models import adapt_input_conv

from aerialseg.data.classes import ClassTable
from aerialseg.errors import ConfigError
from aerialseg.models.io import LoadedModel
from aerialseg.models.names import CLASS_HEAD, STEM
from aerialseg.models.network import SegmentationNet

NET_PREFIX = "model."  # SegmentationNet holds the model under this name


@dataclass
class Transfer:
    """What ``init_from`` carried over."""

    copied: int = 0  # tensors copied whole or adapted
    total: int = 0
    kept_classes: list[str] = field(default_factory=list)  # head rows taken from the source
    new_classes: list[str] = field(default_factory=list)  # head rows left as initialised
    adapted_stem: bool = False

    def describe(self, source: str) -> str:
        line = f"weights from {source}: {self.copied} of {self.total} tensors"
        if self.adapted_stem:
            line += ", first convolution adapted to the bands"
        if self.new_classes:
            line += f"; classes new to it: {', '.join(self.new_classes)}"
        return line


def check_source(source: LoadedModel, model_name: str, in_channels: int) -> None:
    """Raise ConfigError where ``source`` cannot start a ``model_name`` network reading
    ``in_channels`` bands: another architecture, or other bands than an RGB model's (timm's
    adapt_input_conv, which spreads three bands' weights over any count, starts from RGB
    only: 4 bands to 3 were kept as they were, then a size mismatch traceback)."""
    if source.spec.model != model_name:
        raise ConfigError(
            f"init_from: that model is a {source.spec.model}, this run trains a"
            f" {model_name}; set model={source.spec.model} to fine-tune it"
        )
    theirs = source.spec.in_channels
    if theirs not in (3, in_channels):
        raise ConfigError(
            f"init_from: that model reads {theirs} bands and this run {in_channels}; only an"
            f" RGB model's first layer is adapted to other bands: choose {theirs} bands with"
            " bands="
        )


def init_from(
    net: SegmentationNet, model_name: str, classes: ClassTable, source: LoadedModel
) -> Transfer:
    """Copy ``source``'s weights into ``net`` (a ``model_name`` network for ``classes``).

    Every tensor but the head and the first convolution must fit as it is: another
    architecture or other decoder widths is a ConfigError naming what differs.
    """
    check_source(source, model_name, net.in_channels)
    own, theirs = net.state_dict(), source.net.state_dict()
    stem, head = NET_PREFIX + STEM[model_name], NET_PREFIX + CLASS_HEAD[model_name]
    report = Transfer(total=sum(key.startswith(NET_PREFIX) for key in own))
    state = {}
    for key, tensor in own.items():
        if not key.startswith(NET_PREFIX):
            continue  # the input normalisation follows this run's bands, not the source's
        theirs_tensor = theirs[key]
        if key.startswith(head):
            state[key] = tensor.clone()
            for i, name in enumerate(classes.names):
                row = source.classes.id_of(name)
                if row is not None:
                    state[key][i] = theirs_tensor[row]
        elif key == stem and tensor.shape != theirs_tensor.shape:
            state[key] = adapt_input_conv(tensor.shape[1], theirs_tensor)
            report.adapted_stem = True
        elif tensor.shape != theirs_tensor.shape:
            raise ConfigError(
                f"init_from: {key} is {tuple(theirs_tensor.shape)} in that model and"
                f" {tuple(tensor.shape)} here; set decoder_channels (or base_width) as it was"
                " trained"
            )
        else:
            state[key] = theirs_tensor
        report.copied += 1
    net.load_state_dict(state, strict=False)  # mean and std stay this run's
    known = [source.classes.id_of(name) is not None for name in classes.names]
    report.kept_classes = [name for name, k in zip(classes.names, known, strict=True) if k]
    report.new_classes = [name for name, k in zip(classes.names, known, strict=True) if not k]
    return report
