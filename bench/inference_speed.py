"""Inference throughput over the 16 protocol test images, reading and writing included.

Compares, in one run on one machine (PROTOCOL.md: speed as a ratio):
  - aerialseg: ``predict_files`` (row-band sliding windows) with the given model, on
    PyTorch and on ONNX Runtime (``predict --engine onnx``);
  - eager: a plain PyTorch loop over the same network: read the JPEG, pad to the stride,
    one forward pass over the whole image, argmax, write a PNG (no tiling, no export);
  - the same eager loop over an smp U-Net (smp's decoder widths) on the same encoder at
    native resolution, the reference of issue 4's speed target (random weights: speed does
    not depend on them);
  - aerialseg with the ``seed`` preset's network and settings (random weights);
  - aerialseg with the weights in torch's default NCHW layout, not channels-last;
  - aerialseg in bf16 (``--precision bf16``, what ``auto`` picks on a CPU that computes
    bf16 natively; its accuracy: bench/precision.py).
aerialseg predicts with batch norms folded into the convolutions (models/fuse.py), the
eager loop with the model file's network as it is.
Each program runs --repeats times and the fastest run counts: a single run of a few
seconds on this shared machine varies by 10 % or more, and the first one of a program
also pays for creating its kernels.
Also the network's GFLOPs per megapixel (torch's FlopCounterMode on a 512 px input) and
the achieved GFLOP/s beside this machine's measured fp32 matrix-multiply peak.

    .venv/bin/python bench/inference_speed.py --model runs/main/model.pt
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import DATA, SHARED, write_result
from PIL import Image

from aerialseg.inference.engine import (
    OnnxEngine,
    engine_precision,
    resolve_precision,
    with_precision,
)
from aerialseg.inference.predict import Predictor
from aerialseg.inference.run import PredictOptions, predict_files
from aerialseg.models.export import export_onnx
from aerialseg.models.fuse import fold_batchnorms
from aerialseg.models.io import LoadedModel, load_model
from aerialseg.models.network import build_network, gflops_per_megapixel
from aerialseg.training.config import resolve_config


def test_images() -> list[Path]:
    split = json.loads((SHARED / "benchmark" / "split.json").read_text())
    root = DATA / "Semantic segmentation dataset"
    return [root / rel for rel in split["test"]]


def eager_loop(net, images: list[Path], out: Path) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for path in images:
            rgb = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1)
            h, w = rgb.shape[1:]
            pad_h, pad_w = (-h) % net.stride, (-w) % net.stride
            x = F.pad(rgb[None].float(), (0, pad_w, 0, pad_h), mode="reflect")
            ids = net(x)[0, :, :h, :w].argmax(0).to(torch.uint8).numpy()
            Image.fromarray(ids).save(out / f"{path.parent.parent.name}-{path.stem}.png")
    return time.perf_counter() - start


def matmul_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


class EngineClock:
    """Wraps an engine to add up the time spent in it and the pixels it was given, so a
    run splits into the network's share and the rest (reading, blending, writing)."""

    def __init__(self, engine):
        self.engine = engine
        self.stride = engine.stride
        self.precision = engine_precision(engine)  # predict picks its batch size from it
        self.seconds = 0.0
        self.pixels = 0

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = self.engine(batch)
        self.seconds += time.perf_counter() - start
        self.pixels += batch.shape[0] * batch.shape[2] * batch.shape[3]
        return out


def timed_predict(
    engine, model, images: list[Path], out: Path, batch_size: int | None = None
) -> float:
    """Seconds of ``predict_files`` over ``images`` with ``engine`` and the windows and classes
    of ``model`` (a LoadedModel); ``batch_size`` None: predict's default."""
    start = time.perf_counter()
    summary = predict_files(
        Predictor(engine, model.spec, model.classes, "cpu"),
        images,
        out,
        PredictOptions(outputs=frozenset({"classes"}), batch_size=batch_size),
    )
    assert len(summary.done) == len(images), summary.failed
    return time.perf_counter() - start


def best_predict(engine, model, images: list[Path], out: Path, repeats: int):
    """(seconds, EngineClock) of the fastest of ``repeats`` timed runs."""
    runs = []
    for i in range(repeats):
        clock = EngineClock(engine)
        runs.append((timed_predict(clock, model, images, out / str(i)), clock))
    return min(runs, key=lambda run: run[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--name", default="inference_speed")
    parser.add_argument(
        "--repeats", type=int, default=2, help="timed runs of each program; the fastest counts"
    )
    args = parser.parse_args()
    n = args.repeats
    model = load_model(args.model, for_inference=True)  # as `aerialseg predict` runs it
    plain = load_model(args.model)  # batch norms unfolded: the eager loop's network
    num_classes = model.classes.num_classes
    # The reference network of issue 4: an smp U-Net (smp's widths) on the model's encoder,
    # at native resolution.
    variant = model.spec.model.rsplit("-", 1)[1] if "effnet" in model.spec.model else "lite0"
    unet = build_network(f"unet-effnet-{variant}", num_classes, pretrained=False)
    seed_cfg = resolve_config("seed")
    # As load_model(for_inference=True) gives it to `aerialseg predict` on a CPU.
    seed_net = build_network("seed-unet", num_classes, pretrained=False).eval()
    seed_net, _ = fold_batchnorms(seed_net, torch.rand(1, 3, 64, 64) * 255)
    seed_net.to(memory_format=torch.channels_last)
    seed = LoadedModel(seed_net, seed_cfg.spec, model.classes)
    images = test_images()
    megapixels = sum(np.prod(Image.open(p).size) for p in images) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        # load_model gives a CPU network channels-last weights; the plain loop is plain:
        # torch's default NCHW layout. Module.to converts in place.
        plain.net.to(memory_format=torch.contiguous_format)
        eager_s = min(eager_loop(plain.net, images, Path(tmp)) for _ in range(n))
        model.net.to(memory_format=torch.contiguous_format)
        unet_eager_s = min(eager_loop(unet.eval(), images, Path(tmp)) for _ in range(n))
        nchw_s, _ = best_predict(model.net, model, images, Path(tmp) / "nchw", n)
        model.net.to(memory_format=torch.channels_last)
        ours_s, ours = best_predict(model.net, model, images, Path(tmp) / "torch", n)
        bf16_engine = with_precision(model.net, "bf16", "cpu")
        bf16_s, bf16 = best_predict(bf16_engine, model, images, Path(tmp) / "bf16", n)
        export_onnx(plain, Path(tmp) / "model.onnx")  # what `aerialseg export` writes
        onnx_engine = OnnxEngine(Path(tmp) / "model.onnx")
        onnx_s, ort = best_predict(onnx_engine, model, images, Path(tmp) / "ort", n)
        seed_s, _ = best_predict(seed.net, seed, images, Path(tmp) / "seed", n)
    per_mp = gflops_per_megapixel(plain.net)
    # Where the cost lies. The encoder sees the image downsampled k x k (its FLOPs scale
    # with pixels), the rest of the network is the difference.
    k = model.net.downsample
    encoder_per_mp = gflops_per_megapixel(plain.net.model.encoder) / k**2
    ours_mps = megapixels / ours_s
    write_result(
        args.name,
        {
            "benchmark": "inference throughput, 16 test images, JPEG read and mask write included",
            "model": args.model,
            "architecture": model.spec.model,
            "downsample": model.spec.downsample,
            "megapixels": round(megapixels, 2),
            "repeats": n,  # each figure the fastest of this many runs
            "aerialseg": {
                "seconds": round(ours_s, 1),
                "megapixels_per_s": round(ours_mps, 3),
                "window": model.spec.window,
                "overlap": model.spec.overlap,
                "network_seconds": round(ours.seconds, 1),
                "window_megapixels": round(ours.pixels / 1e6, 2),  # overlaps counted twice
            },
            "aerialseg_bf16": {
                "seconds": round(bf16_s, 1),
                "megapixels_per_s": round(megapixels / bf16_s, 3),
                "network_seconds": round(bf16.seconds, 1),
            },
            "predict_precision_here": resolve_precision("auto", "cpu"),
            "aerialseg_nchw_weights": {
                "seconds": round(nchw_s, 1),
                "megapixels_per_s": round(megapixels / nchw_s, 3),
            },
            "aerialseg_onnxruntime": {
                "seconds": round(onnx_s, 1),
                "megapixels_per_s": round(megapixels / onnx_s, 3),
                "network_seconds": round(ort.seconds, 1),
            },
            "eager_whole_image": {
                "seconds": round(eager_s, 1),
                "megapixels_per_s": round(megapixels / eager_s, 3),
            },
            "eager_whole_image_smp_unet_same_encoder": {
                "seconds": round(unet_eager_s, 1),
                "megapixels_per_s": round(megapixels / unet_eager_s, 3),
                "gflops_per_megapixel": round(gflops_per_megapixel(unet), 1),
            },
            "seed_preset": {
                "seconds": round(seed_s, 1),
                "megapixels_per_s": round(megapixels / seed_s, 3),
                "input_mode": seed_cfg.input_mode,
            },
            "speedup_vs_eager": round(eager_s / ours_s, 2),
            "speedup_vs_eager_onnxruntime": round(eager_s / onnx_s, 2),
            "speedup_vs_eager_smp_unet": round(unet_eager_s / ours_s, 2),
            "speedup_vs_eager_smp_unet_onnxruntime": round(unet_eager_s / onnx_s, 2),
            "speedup_vs_eager_smp_unet_bf16": round(unet_eager_s / bf16_s, 2),
            "speedup_vs_seed_preset": round(seed_s / ours_s, 2),
            "gflops_per_megapixel": round(per_mp, 1),
            "encoder_gflops_per_megapixel": round(encoder_per_mp, 1),
            "achieved_gflops_per_s": round(per_mp * ours_mps, 1),
            "fp32_matmul_peak_gflops_per_s": round(matmul_peak_gflops(), 1),
        },
    )


if __name__ == "__main__":
    main()
