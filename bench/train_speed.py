"""Training throughput: 256x256 patches per second, data loading included (PROTOCOL.md).

Measures, in one run on one machine, over --steps steps after --warmup steps:
  - aerialseg's Lightning training step (``SegmentationTask`` + ``SegmentationDataModule``,
    exactly what ``aerialseg train`` runs, EMA included, validation left out) for each
    --models entry;
  - a plain eager PyTorch loop (same network, loss, optimiser and data loader; no Lightning,
    no EMA) over each of those models, the reference for the ratios;
  - the ``seed`` preset (whole images squashed to 256x256, its U-Net).

    .venv/bin/python bench/train_speed.py
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
from common import DATA, write_result

from aerialseg.data.catalog import open_catalog
from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.data.splits import make_split
from aerialseg.training.config import resolve_config
from aerialseg.training.datamodule import SegmentationDataModule
from aerialseg.training.module import SegmentationTask
from aerialseg.training.run import WarmEMA


class StepTimer(L.Callback):
    """Wall time from the end of step ``warmup`` to the end of step ``warmup + steps``."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_train_batch_end(self, trainer, *_) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def setup(preset: str, overrides: list[str], steps: int):
    cfg = resolve_config(preset, None, overrides)
    # One epoch long enough that no validation interrupts the timed steps.
    cfg.samples_per_epoch = cfg.batch_size * (steps + 10)
    classes = DUBAI_CLASSES
    catalog = open_catalog(DATA, classes)
    datamodule = SegmentationDataModule(catalog, make_split(catalog.entries, None), cfg)
    datamodule.setup("fit")
    return cfg, classes, datamodule


def lightning_rate(preset: str, overrides: list[str], warmup: int, steps: int) -> float:
    cfg, classes, datamodule = setup(preset, overrides, warmup + steps)
    L.seed_everything(cfg.seed, verbose=False)
    timer = StepTimer(warmup)
    # The weight average is part of every training step of `aerialseg train`.
    ema = [WarmEMA(cfg.ema_decay)] if cfg.ema_decay else []
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=warmup + steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        deterministic=True,
        callbacks=[*ema, timer],
    )
    trainer.fit(SegmentationTask(cfg.to_dict(), classes.to_dict()), datamodule=datamodule)
    return steps * cfg.batch_size / (timer.end - timer.start)


def eager_rate(preset: str, overrides: list[str], warmup: int, steps: int) -> float:
    """The plain loop: the same network, loss, optimiser and batches, no framework."""
    cfg, classes, datamodule = setup(preset, overrides, warmup + steps)
    torch.manual_seed(cfg.seed)
    task = SegmentationTask(cfg.to_dict(), classes.to_dict())
    # Plain: torch's default NCHW layout (the task lays its network out channels-last).
    net = task.net.to(memory_format=torch.contiguous_format).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = 0.0
    for step, (images, masks) in enumerate(datamodule.train_dataloader()):
        if step == warmup:
            start = time.perf_counter()
        if step == warmup + steps:
            break
        loss = task.loss(net(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * cfg.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument(
        "--models",
        nargs="+",
        default=["fpn-effnet-lite0", "unet-effnet-lite0"],
        help="models timed through Lightning with the default preset (first: the default)",
    )
    parser.add_argument("--name", default="train_speed")
    args = parser.parse_args()
    w, n = args.warmup, args.steps
    eager = {m: eager_rate("default", [f"model={m}"], w, n) for m in args.models}
    ours = {m: lightning_rate("default", [f"model={m}"], w, n) for m in args.models}
    # The plateau schedule needs validation, which the timing leaves out; the LR does not
    # change the cost of a step.
    seed = lightning_rate("seed", ["scheduler=none"], w, n)
    write_result(
        args.name,
        {
            "benchmark": "training throughput, 256x256 patches/s, data loading included",
            "warmup_steps": w,
            "timed_steps": n,
            "default_model": resolve_config("default").model,
            "patches_per_s": {
                **{f"eager loop, {m}": round(r, 2) for m, r in eager.items()},
                **{f"aerialseg, {m}": round(r, 2) for m, r in ours.items()},
                "aerialseg, seed preset (seed-unet, batch 16)": round(seed, 2),
            },
            "ratio_vs_eager_same_model": {m: round(ours[m] / eager[m], 2) for m in ours},
            "ratio_vs_seed_preset": {m: round(r / seed, 2) for m, r in ours.items()},
        },
    )


if __name__ == "__main__":
    main()
