"""LightningModule: loss, optimiser, schedule, and native-resolution validation."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassConfusionMatrix

from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.errors import ConfigError
from aerialseg.evaluation.calibration import TemperatureSample
from aerialseg.evaluation.metrics import metrics_from_confusion
from aerialseg.inference.predict import Predictor
from aerialseg.models.network import build_network
from aerialseg.training.config import TrainConfig
from aerialseg.training.progress import TimeBudget, run_fraction


def ignore_near_boundaries(masks: torch.Tensor, px: int) -> torch.Tensor:
    """(N, H, W) class ids with every pixel that has another label within ``px`` (in any
    direction, diagonals included) set to IGNORE_INDEX; ``px`` 0 leaves them as they are."""
    if px <= 0:
        return masks
    ids = masks[:, None].float()
    highest = F.max_pool2d(ids, 2 * px + 1, stride=1, padding=px)
    lowest = -F.max_pool2d(-ids, 2 * px + 1, stride=1, padding=px)
    return masks.masked_fill((highest != lowest)[:, 0], IGNORE_INDEX)


def cutmix(
    images: torch.Tensor, masks: torch.Tensor, share: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix for segmentation: in ``share`` of the samples (drawn at random) a box of
    another sample of the batch replaces the same box, image and mask alike; the box's
    area is uniform in 0..1 of the crop (Yun et al. 2019). Written here because
    torchvision's CutMix mixes class labels of whole images, not masks."""
    n, _, h, w = images.shape
    if share <= 0 or n < 2:
        return images, masks
    mixed_images, mixed_masks = images.clone(), masks.clone()
    for i in torch.nonzero(torch.rand(n) < share).flatten().tolist():
        j = (i + int(torch.randint(1, n, ()))) % n  # another sample of the batch
        side = math.sqrt(torch.rand(()).item())
        bh, bw = round(h * side), round(w * side)
        top = int(torch.randint(0, h - bh + 1, ()))
        left = int(torch.randint(0, w - bw + 1, ()))
        rows, cols = slice(top, top + bh), slice(left, left + bw)
        mixed_images[i, :, rows, cols] = images[j, :, rows, cols]
        mixed_masks[i, rows, cols] = masks[j, rows, cols]
    return mixed_images, mixed_masks


class SegmentationTask(L.LightningModule):
    """Trains a SegmentationNet; validation predicts whole images like ``evaluate`` does."""

    def __init__(self, config: dict[str, Any], classes: dict[str, Any]):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = TrainConfig.from_dict(config)
        self.classes = ClassTable.from_dict(classes)
        n = self.classes.num_classes
        self.net = build_network(
            self.cfg.model,
            n,
            pretrained=self.cfg.pretrained,
            base_width=self.cfg.base_width,
            dropout=self.cfg.dropout,
            decoder_channels=self.cfg.decoder_channels,
            downsample=self.cfg.downsample,
            drop_path=self.cfg.drop_path,
            in_channels=self.cfg.in_channels,
        )
        # oneDNN's convolutions run channels-last natively: a training step on 2 CPU cores
        # takes 1.23 s instead of 1.47 s (FPN-Lite0, batch 8 of 256 px). Done here, before
        # the weight average copies the network.
        self.net.to(memory_format=torch.channels_last)
        weight = torch.tensor(self.cfg.class_weights) if self.cfg.class_weights else None
        if weight is not None and len(weight) != n:
            raise ValueError(f"class_weights has {len(weight)} values for {n} classes")
        if self.cfg.focal_gamma > 0:
            self.ce = smp.losses.FocalLoss(
                "multiclass",
                gamma=self.cfg.focal_gamma,
                ignore_index=IGNORE_INDEX,
                class_weights=self.cfg.class_weights,
            )
        else:
            self.ce = nn.CrossEntropyLoss(
                weight=weight,
                ignore_index=IGNORE_INDEX,
                label_smoothing=self.cfg.label_smoothing,
            )
        self.dice = smp.losses.DiceLoss("multiclass", ignore_index=IGNORE_INDEX)
        self.lovasz = smp.losses.LovaszLoss("multiclass", ignore_index=IGNORE_INDEX)
        self.val_cm = MulticlassConfusionMatrix(n, ignore_index=IGNORE_INDEX)
        # pixels of each validation for the confidence temperature, and the best one's
        self.temperature_sample = TemperatureSample(seed=self.cfg.seed)
        self.best_sample: tuple[float, TemperatureSample] | None = None
        # how many scored classes had an IoU in that validation: "mIoU over 3 of the 5"
        self.best_present: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def train(self, mode: bool = True) -> SegmentationTask:
        """Lightning puts the module in training mode for every epoch; with ``freeze_bn``
        its batch norms stay in eval mode, normalising by the running statistics they
        started with and leaving them as they are."""
        super().train(mode)
        if mode and self.cfg.freeze_bn:
            for module in self.net.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not (target != IGNORE_INDEX).any():
            # No labelled pixel in the batch (crops of labelled blocks whose polygons cover
            # part of them, without a background class): nothing to learn from, and a mean
            # over no pixel is NaN, which stopped the run as if lr were too high (a review).
            # A zero that keeps the graph, so every rank of a DDP run steps alike.
            return logits.sum() * 0.0
        loss = self.ce(logits, target)
        if self.cfg.dice_weight:
            loss = loss + self.cfg.dice_weight * self.dice(logits, target)
        if self.cfg.lovasz_weight:
            loss = loss + self.cfg.lovasz_weight * self.lovasz(logits, target)
        return loss

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # before Lightning restores its loops and callbacks from it
        finish_stopped_epoch(checkpoint)
        renew_early_stopping(checkpoint, self.cfg.early_stop_patience)

    def on_train_start(self) -> None:
        # Every rank seeds alike (identical initial weights, which DDP also enforces), so
        # with in-process loading all ranks would draw the same crops: give each rank, and
        # each resumed run, its own stream.
        torch.manual_seed(self.cfg.seed + 1_000_003 * self.global_rank + self.global_step)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        images, masks = batch
        # The loss is taken where the network computes: on a downsampled network, against
        # the label at the centre of each k x k block. Upsampling the logits to the crop
        # and taking the loss there cost a third more time per step for labels that are
        # polygons many pixels wide (1/2-resolution labels keep mIoU-6 0.97 of the masks).
        k = self.net.downsample
        images, masks = cutmix(images, masks, self.cfg.cutmix)
        masks = ignore_near_boundaries(masks, self.cfg.boundary_ignore)
        logits = self.net.reduced_logits(images.contiguous(memory_format=torch.channels_last))
        loss = self.loss(logits, masks[:, k // 2 :: k, k // 2 :: k])
        if not torch.isfinite(loss):  # the weights follow it: a model of NaN, class 0 everywhere
            raise ConfigError(
                f"the training loss is {loss.item()} at step {self.global_step}: the learning"
                f" rate is too high for this data (lr={self.cfg.lr:g}), or class_weights"
                " leave nothing to learn; lower lr"
            )
        self.log(
            "train_loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=images.shape[0],
            sync_dist=True,
        )
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        images, masks = batch
        # The live network, as ``aerialseg predict`` would run it (4 windows a pass).
        predictor = Predictor(self.net, self.cfg.spec, self.classes, str(images.device), 4)
        for image, mask in zip(images, masks, strict=True):
            result = predictor.predict_image(image, probabilities=True)
            probs = result.probs
            assert probs is not None  # asked for
            # log p are logits of p (softmax(log p) = p): the training loss, on whole images.
            log_probs = torch.log(probs.clamp_min(1e-8))[None]
            self.log(
                "val_loss",
                self.loss(log_probs, mask[None]),
                on_epoch=True,
                batch_size=1,
                sync_dist=True,
            )
            ids = torch.from_numpy(result.ids).to(mask.device).long()
            self.val_cm.update(ids[None], mask[None])
            self.temperature_sample.add(probs, mask)

    def on_validation_epoch_start(self) -> None:
        self.temperature_sample = TemperatureSample(seed=self.cfg.seed)

    def on_validation_epoch_end(self) -> None:
        cm = self.val_cm.compute().cpu().numpy()
        self.val_cm.reset()
        m = metrics_from_confusion(cm, self.classes)
        # Judged by the classes the table scores (its headline mIoU), as evaluate is: a
        # class with no visual meaning (Dubai's Unlabeled, 0.5 % of pixels) swings
        # from 0 to 0.5 between validations on a few images, and chose the weights and
        # ended fine-tuning runs by that noise.
        miou = m["miou_scored"]
        if not self.trainer.sanity_checking and (
            self.best_sample is None or (miou or 0.0) > self.best_sample[0]
        ):
            # the validation of the weights the best checkpoint keeps (ModelCheckpoint
            # keeps a strictly higher val_miou too): their temperature is fitted on it
            self.best_sample = (miou or 0.0, self.temperature_sample)
            scored = set(m["scored_classes"])
            self.best_present = sum(
                v["iou"] is not None for k, v in m["per_class"].items() if k in scored
            )
        self.log("val_miou", miou if miou is not None else 0.0, prog_bar=True)
        self.log("val_acc", m["pixel_accuracy"] or 0.0)
        self.log("val_dice", m["mean_dice"] or 0.0)

    def _budget_progress(self) -> float:
        """Share of the run's budget used: steps or training time (the part of max_time left
        for it), whichever is further along."""
        callbacks = self.trainer.callbacks  # type: ignore[attr-defined]  # set by Trainer
        budget = next((c for c in callbacks if isinstance(c, TimeBudget)), None)
        return run_fraction(self.trainer, budget)

    def configure_optimizers(self) -> Any:  # Lightning's optimizer-and-scheduler dict
        opt_cls = torch.optim.AdamW if self.cfg.optimizer == "adamw" else torch.optim.Adam
        encoder = getattr(self.net.model, "encoder", None)  # the seed U-Net has none apart
        if encoder is None or self.cfg.encoder_lr_factor == 1:
            groups: list[dict[str, Any]] = [{"params": list(self.parameters())}]
        else:
            own = {id(p) for p in encoder.parameters()}
            groups = [
                {
                    "params": list(encoder.parameters()),
                    "lr": self.cfg.lr * self.cfg.encoder_lr_factor,
                },
                {"params": [p for p in self.parameters() if id(p) not in own]},
            ]
        optimizer = opt_cls(groups, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        if self.cfg.scheduler == "plateau":
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=0.5, patience=self.cfg.plateau_patience
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": plateau, "monitor": "val_miou"},
            }
        if self.cfg.scheduler == "cosine":
            # Cosine over the budget, stepped per batch; a time budget counts as the budget.
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer,
                lambda _: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * self._budget_progress())),
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
            }
        return {"optimizer": optimizer}


def finish_stopped_epoch(checkpoint: dict[str, Any]) -> None:
    """A run stopped by max_steps on its epoch's last batch saved that epoch as processed
    but not completed; Lightning 2 restores it as ended and then skips the next epoch too
    (a review: --resume max_epochs=2 after such a run of one epoch trained nothing, and an
    interrupted run resumed lost an epoch). The epoch is marked completed, as a run stopped
    at the end of an epoch by max_epochs has it."""
    fit = checkpoint.get("loops", {}).get("fit_loop", {})
    epochs, batches = fit.get("epoch_progress"), fit.get("epoch_loop.batch_progress", {})
    if not epochs or not batches.get("is_last_batch"):
        return
    for counts in (epochs["total"], epochs["current"]):
        counts["completed"] = counts["processed"]
    # and the next epoch starts from its first batch, not as one already at its last
    batches["is_last_batch"] = False
    batches["current"] = dict.fromkeys(batches["current"], 0)


def early_stopping_state(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """What Lightning's EarlyStopping saved in ``checkpoint``: its count of validations
    without gain ("wait_count"), its patience, and when it stopped."""
    states = checkpoint.get("callbacks", {})
    return next((v for k, v in states.items() if k.startswith("EarlyStopping{")), None)


def renew_early_stopping(checkpoint: dict[str, Any], patience: int) -> None:
    """Lightning's EarlyStopping restores the patience a checkpoint was saved with, so
    ``--resume early_stop_patience=30`` on a run stopped early had no effect (a review):
    the resumed run takes this run's patience, keeps its count of validations without
    gain, and starts without the earlier command's stop (which named early stopping as
    the reason a later run stopped by max_steps)."""
    state = early_stopping_state(checkpoint)
    if state is not None:
        state.update(patience=patience, stopped_epoch=0, stopping_reason=0)
        state["stopping_reason_message"] = None
