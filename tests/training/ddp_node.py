"""One "node" of test_ddp.py's two-node run: trains on the data it is given with DDP over
gloo (the launch comes from the torchrun-style environment), then writes the windows this
rank drew (a digest of each) and the weights it ended with, for the test to compare.

Usage: python -m tests.training.ddp_node DATA OUT RECORDS [LABELS CLASSES SPLIT]

With LABELS (polygons, attribute ``class``), CLASSES and SPLIT (a block split), DATA is a
scene streamed window by window (cache_megabytes=0); each rank also records what its
training scenes are, to show that none decoded the scene whole.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from aerialseg.data.catalog import LabelSpec
from aerialseg.data.classes import DUBAI_CLASSES, ClassTable
from aerialseg.training.config import resolve_config
from aerialseg.training.run import train


class Record(Callback):
    def __init__(self, folder: Path):
        self.folder, self.windows = folder, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        images = batch[0]
        self.windows += [hashlib.sha1(im.numpy().tobytes()).hexdigest() for im in images]

    def on_train_end(self, trainer, pl_module) -> None:
        rank = trainer.global_rank
        scenes = [type(s).__name__ for s in trainer.datamodule.train_set.items]
        (self.folder / f"scenes-{rank}.json").write_text(json.dumps(scenes))
        weights = {k: v.detach().cpu() for k, v in pl_module.net.state_dict().items()}
        torch.save(weights, self.folder / f"weights-{rank}.pt")
        (self.folder / f"windows-{rank}.json").write_text(json.dumps(self.windows))


def main(data: str, out: str, records: str, *polygon_args: str) -> None:
    streamed = ["cache_megabytes=0"] if polygon_args else []
    cfg = resolve_config(
        "default",
        None,
        [
            "model=seed-unet",
            "pretrained=false",
            "base_width=4",
            "crop_size=32",
            "window=64",
            "ema_decay=0",
            "batch_size=4",
            "samples_per_epoch=16",  # 2 steps a rank an epoch
            "max_epochs=2",
            "accelerator=cpu",
            "devices=1",
            "num_nodes=2",
            *streamed,
        ],
    )
    record = [Record(Path(records))]
    if not polygon_args:
        train(cfg, data, out, classes=DUBAI_CLASSES, extra_callbacks=record)
        return
    labels, classes, split = polygon_args
    spec = LabelSpec(labels, "class")
    table = ClassTable.from_file(classes)
    train(cfg, data, out, split_file=split, classes=table, labels=spec, extra_callbacks=record)


if __name__ == "__main__":
    main(*sys.argv[1:])
