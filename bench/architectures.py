"""Decoder choice on the Lite0 encoder: cost per megapixel, inference and training speed.

The record behind the default model's decoder. For each candidate network (random weights:
speed does not depend on them), on this machine:
  - parameters and GFLOPs per megapixel (torch's FlopCounterMode, 512 px input);
  - eager inference, megapixels/s over one 512 px window (the default prediction window);
  - training, 256x256 patches/s for a batch of 8 (forward, cross-entropy, backward, AdamW),
    no data loading: the network's own cost, which bench/train_speed.py puts in context.

Speed alone does not pick a model: how much each learns per step is measured by
bench/quality.py runs, whose results the README compares.

    .venv/bin/python bench/architectures.py
"""

from __future__ import annotations

import argparse
import time

import segmentation_models_pytorch as smp
import torch
from common import write_result

from aerialseg.models.network import (
    SegmentationNet,
    build_network,
    gflops_per_megapixel,
    normalization_for,
)

NUM_CLASSES = 6
ENCODER = "tf_efficientnet_lite0"


def ours(name: str, decoder_channels: list[int] | None = None):
    return lambda: build_network(
        name, NUM_CLASSES, pretrained=False, decoder_channels=decoder_channels
    )


def deeplab(channels: int):
    """DeepLabV3+ is not one of aerialseg's models; built from smp for the comparison."""

    def build() -> SegmentationNet:
        model = smp.DeepLabV3Plus(
            f"tu-{ENCODER}", encoder_weights=None, classes=NUM_CLASSES, decoder_channels=channels
        )
        norm = normalization_for("unet-effnet-lite0")
        return SegmentationNet(model, norm["mean"], norm["std"], 16)

    return build


CANDIDATES = {
    "unet-effnet-lite0 (decoder 256,128,64,32,16)": ours("unet-effnet-lite0"),
    "unet-effnet-lite0 (decoder 128,64,32,16,8)": ours("unet-effnet-lite0", [128, 64, 32, 16, 8]),
    "fpn-effnet-lite0 (pyramid 256, head 128)": ours("fpn-effnet-lite0", [256, 128]),
    "fpn-effnet-lite0 (pyramid 128, head 64)": ours("fpn-effnet-lite0", [128, 64]),
    "fpn-effnet-lite0 (pyramid 64, head 32)": ours("fpn-effnet-lite0", [64, 32]),
    "smp DeepLabV3+ (decoder 128)": deeplab(128),
}


def inference_mps(net, side: int, repeats: int) -> float:
    x = torch.rand(1, 3, side, side) * 255
    with torch.inference_mode():
        net.eval()(x)  # warm-up: first-call allocations and kernel choice
        start = time.perf_counter()
        for _ in range(repeats):
            net(x)
    return side * side / 1e6 * repeats / (time.perf_counter() - start)


def train_patches_per_s(net, batch: int, steps: int) -> float:
    net.train()
    optimizer = torch.optim.AdamW(net.parameters())
    x = torch.rand(batch, 3, 256, 256) * 255
    y = torch.randint(0, NUM_CLASSES, (batch, 256, 256))
    start = 0.0
    for step in range(steps + 2):  # two warm-up steps
        if step == 2:
            start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed 512 px forward passes")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--name", default="architectures")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = {}
    for label, build in CANDIDATES.items():
        net = build()
        rows[label] = {
            "params_millions": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
            "gflops_per_megapixel": round(gflops_per_megapixel(net), 1),
            "inference_megapixels_per_s_512": round(inference_mps(net, 512, args.repeats), 2),
            "train_patches_per_s_batch8": round(train_patches_per_s(net, 8, args.steps), 2),
        }
        print(label, rows[label], flush=True)
    write_result(
        args.name,
        {
            "benchmark": "decoder candidates on the Lite0 encoder: cost and speed, random weights",
            "timed_forward_passes": args.repeats,
            "timed_train_steps": args.steps,
            "candidates": rows,
        },
    )


if __name__ == "__main__":
    main()
