"""The models by name and what each one's shape is, without importing torch: a command's
--help and the training config read these, and neither should pay for torch's import."""

from __future__ import annotations

from typing import Literal, get_args

ModelName = Literal[
    "seed-unet", "unet-effnet-lite0", "fpn-effnet-lite0", "unet-effnet-lite2", "fpn-effnet-lite2"
]
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)

# Input sides must be multiples of this for each model (its total downsampling).
STRIDE = {name: 16 if name == "seed-unet" else 32 for name in MODEL_NAMES}
# A side every model takes, and crop_size, resize_to and window's multiple (times
# downsample): one place for the 32 that training, suggest's tasks and its printed crop use
SIZE_MULTIPLE = max(STRIDE.values())

# Where each model keeps its first convolution (which sees the bands) and its class head
# (one output row per class), as state-dict prefixes: what fine-tuning adapts.
STEM = {
    name: "down.0.0.weight" if name == "seed-unet" else "encoder.model.conv_stem.weight"
    for name in MODEL_NAMES
}
CLASS_HEAD = {
    name: "head." if name == "seed-unet" else "segmentation_head.0." for name in MODEL_NAMES
}

# Decoder widths when a config gives none. U-Net: five stages, deepest first (smp's).
# FPN: pyramid and segmentation-head widths, half of smp's 256/128: on 2 CPU cores a
# 512 px window predicts 1.8x and a batch trains 1.5x faster than with smp's widths
# (bench/results/architectures.json).
DEFAULT_DECODER_CHANNELS = {
    name: [256, 128, 64, 32, 16] if name.startswith("unet") else [128, 64]
    for name in MODEL_NAMES
    if name != "seed-unet"
}
