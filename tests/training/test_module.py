"""The LightningModule's pieces that need no trainer: what the loss is taken against."""

import math
from types import SimpleNamespace

import pytest
import segmentation_models_pytorch as smp
import torch

from aerialseg.data.classes import DUBAI_CLASSES, IGNORE_INDEX
from aerialseg.evaluation.calibration import PIXELS_PER_IMAGE
from aerialseg.evaluation.metrics import metrics_from_confusion
from aerialseg.inference.predict import Predictor
from aerialseg.models.network import build_network
from aerialseg.training.config import resolve_config
from aerialseg.training.module import SegmentationTask, cutmix, ignore_near_boundaries
from aerialseg.training.progress import TimeBudget

TINY = ["model=seed-unet", "pretrained=false", "base_width=4", "crop_size=32"]


def halves(height: int = 8, width: int = 12) -> torch.Tensor:
    """One mask: class 1 on the left half, class 3 on the right."""
    mask = torch.full((1, height, width), 3)
    mask[:, :, : width // 2] = 1
    return mask


def test_pixels_near_another_label_are_ignored():
    mask = halves()
    for px in (1, 2):
        out = ignore_near_boundaries(mask, px)
        ignored = (out == IGNORE_INDEX)[0].all(0)  # columns ignored top to bottom
        assert ignored.tolist() == [abs(c - 5.5) < px for c in range(12)]
        kept = out != IGNORE_INDEX
        assert torch.equal(out[kept], mask[kept])  # the rest keep their labels
    assert torch.equal(ignore_near_boundaries(mask, 0), mask)
    uniform = torch.full((1, 8, 8), 2)
    assert torch.equal(ignore_near_boundaries(uniform, 2), uniform)


def test_training_step_takes_the_loss_without_the_boundary_band():
    cfg = resolve_config("default", None, [*TINY, "boundary_ignore=1"])
    task = SegmentationTask(cfg.to_dict(), DUBAI_CLASSES.to_dict())
    seen = []
    task.loss = lambda logits, target: seen.append(target) or logits.mean()
    masks = halves(32, 48).repeat(2, 1, 1)
    task.training_step((torch.rand(2, 3, 32, 48) * 255, masks), 0)
    assert torch.equal(seen[0], ignore_near_boundaries(masks, 1))
    assert (seen[0] == IGNORE_INDEX).sum() == 2 * 2 * 32  # a column either side of the edge


def test_cutmix_pastes_the_same_box_of_another_sample_into_image_and_mask():
    torch.manual_seed(0)
    n, h, w = 6, 32, 40
    # sample k: image and mask filled with k, so every pixel tells where it came from
    images = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 3, h, w)
    masks = torch.arange(n)[:, None, None].expand(n, h, w)
    mixed_images, mixed_masks = cutmix(images, masks, 1.0)
    assert torch.equal(mixed_images[:, 0].long(), mixed_masks)  # image and mask move alike
    assert (mixed_images[:, 0] == mixed_images[:, 2]).all()  # all bands alike
    pasted_areas = []
    for k in range(n):
        other = mixed_masks[k] != k
        assert len(mixed_masks[k][other].unique()) <= 1  # from one other sample
        rows, cols = other.any(1).nonzero(), other.any(0).nonzero()
        if len(rows):  # the pasted pixels fill one box
            box = other[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            assert box.all() and other.sum() == box.numel()
        pasted_areas.append(other.float().mean().item())
    assert 0 < sum(pasted_areas) / n < 1
    assert torch.equal(images[:, 0, 0, 0], torch.arange(n, dtype=torch.float32))  # untouched


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_cutmix_share_is_the_share_of_samples_mixed(share):
    torch.manual_seed(1)
    masks = torch.arange(400)[:, None, None].expand(400, 16, 16)
    images = masks[:, None].float()
    _, mixed = cutmix(images, masks, share)
    changed = (mixed != masks).flatten(1).any(1).float().mean().item()
    assert abs(changed - share) < 0.07  # a box of area ~0 can leave a sample unchanged


def test_label_smoothing_reaches_the_cross_entropy():
    cfg = resolve_config("default", None, [*TINY, "label_smoothing=0.1", "dice_weight=0"])
    task = SegmentationTask(cfg.to_dict(), DUBAI_CLASSES.to_dict())
    logits = torch.full((1, 6, 1, 1), -20.0)
    logits[0, 2] = 20.0
    target = torch.full((1, 1, 1), 2)
    # a confident right answer still costs: 0.1 of the target is spread over the 6 classes
    assert task.loss(logits, target).item() == pytest.approx(0.1 * 5 / 6 * 40, rel=1e-3)


# --- the task's steps, hooks and optimiser, driven without a Trainer ----------------------
# A stand-in for the attributes of Lightning's Trainer that the task reads; ``log`` is
# replaced by a recorder, since Lightning's needs a running loop.


def _task(*settings: str) -> SegmentationTask:
    torch.manual_seed(0)
    cfg = resolve_config("default", None, [*TINY, "window=32", *settings])
    return SegmentationTask(cfg.to_dict(), DUBAI_CLASSES.to_dict())


def _trainer(**attributes) -> SimpleNamespace:
    found = {"sanity_checking": False, "global_rank": 0, "global_step": 0, "callbacks": []}
    return SimpleNamespace(**{**found, **attributes})


def _logged(task: SegmentationTask) -> list[tuple[str, float, dict]]:
    seen: list[tuple[str, float, dict]] = []
    task.log = lambda name, value, **kw: seen.append(
        (name, float(value.detach() if isinstance(value, torch.Tensor) else value), kw)
    )  # type: ignore[method-assign]
    return seen


def test_validation_judges_by_the_scored_classes_miou():
    """Dubai's Unlabeled is not scored: the validation mIoU that chooses the weights and
    stops early is evaluate's headline mIoU-5, not the mean over all six classes."""
    task = _task().eval()
    task._trainer = _trainer()
    seen = _logged(task)
    images = torch.rand(2, 3, 40, 56) * 255
    predictor = Predictor(task.net, task.cfg.spec, task.classes, "cpu", 4)
    predicted = torch.stack(
        [torch.from_numpy(predictor.predict_image(image).ids).long() for image in images]
    )
    masks = (
        torch.arange(predicted.numel()).reshape(predicted.shape) % 6
    )  # every class, mostly wrong
    task.on_validation_epoch_start()
    with torch.no_grad():
        task.validation_step((images, masks), 0)
    task.on_validation_epoch_end()
    cm = torch.zeros(6, 6, dtype=torch.long)
    for truth, guess in zip(masks.flatten(), predicted.flatten(), strict=True):
        cm[truth, guess] += 1
    expected = metrics_from_confusion(cm.numpy(), task.classes)
    assert expected["miou5"] != pytest.approx(expected["miou6"])
    logged = {name: value for name, value, _ in seen}
    assert logged["val_miou"] == pytest.approx(expected["miou5"])


def test_validation_scores_whole_images_as_predict_does_and_keeps_the_best_sample():
    task = _task().eval()
    task._trainer = _trainer()
    seen = _logged(task)
    images = torch.rand(2, 3, 40, 56) * 255
    predictor = Predictor(task.net, task.cfg.spec, task.classes, "cpu", 4)
    results = [predictor.predict_image(image, probabilities=True) for image in images]
    predicted = torch.stack([torch.from_numpy(r.ids).long() for r in results])

    def epoch(masks: torch.Tensor) -> list:
        seen.clear()
        task.on_validation_epoch_start()
        with torch.no_grad():
            task.validation_step((images, masks), 0)
        task.on_validation_epoch_end()
        return list(seen)

    masks = predicted.clone()
    masks[0, :4] = IGNORE_INDEX
    logged = epoch(masks)
    losses = [value for name, value, _ in logged if name == "val_loss"]
    for result, mask, value in zip(results, masks, losses, strict=True):
        log_probs = torch.log(result.probs.clamp_min(1e-8))[None]
        assert value == pytest.approx(float(task.loss(log_probs, mask[None])))
    assert all(
        kw == {"on_epoch": True, "batch_size": 1, "sync_dist": True}
        for name, _, kw in logged
        if name == "val_loss"
    )
    assert [kw for name, _, kw in logged if name.startswith("val_") and name != "val_loss"] == [
        {"prog_bar": True}, {}, {}
    ]  # fmt: skip
    cm = torch.zeros(6, 6, dtype=torch.long)
    for truth, guess in zip(masks.flatten(), predicted.flatten(), strict=True):
        if truth != IGNORE_INDEX:
            cm[truth, guess] += 1
    expected = metrics_from_confusion(cm.numpy(), task.classes)
    scores = {
        name: value for name, value, _ in logged if name.startswith("val_") and name != "val_loss"
    }
    assert scores == pytest.approx(
        {
            "val_miou": expected["miou6"],
            "val_acc": expected["pixel_accuracy"],
            "val_dice": expected["mean_dice"],
        }  # fmt: skip
    )
    assert scores["val_acc"] == 1.0  # the masks are the predictions
    labelled = int((masks != IGNORE_INDEX).sum())
    first = task.best_sample
    assert first is not None and first[0] == pytest.approx(scores["val_miou"])
    assert sum(len(labels) for labels in first[1].labels) == min(labelled, 2 * PIXELS_PER_IMAGE)
    # how many scored classes that mean is over (truth or prediction holds them), for the
    # summary's "mIoU over 3 of the 5 scored classes"
    scored_ids = {i for i, c in enumerate(task.classes.classes) if c.scored}
    assert task.best_present == len(scored_ids & set(predicted.unique().tolist()))
    # a worse validation keeps the best one's sample; an equal one does too (strictly better)
    epoch((predicted + 1) % 6)
    assert task.best_sample is first
    epoch(masks)
    assert task.best_sample is first
    # no labelled pixel: every score logs as 0, and it is no better than what was best
    task.best_sample = half = (0.5, first[1])
    unlabelled = [value for name, value, _ in epoch(torch.full_like(masks, IGNORE_INDEX))]
    assert unlabelled[-3:] == [0.0, 0.0, 0.0] and task.best_sample is half
    task.best_sample = first
    assert task.val_cm.confmat.sum() == 0  # each epoch's confusion starts empty
    # a better one takes its place, and a first one without labels counts as 0
    task.best_sample = (0.0, first[1])
    epoch(masks)
    assert task.best_sample[0] == first[0] and task.best_sample[1] is not first[1]
    task.best_sample = None
    epoch(torch.full_like(masks, IGNORE_INDEX))
    assert task.best_sample is not None and task.best_sample[0] == 0.0
    # the sanity check's validation before training keeps none
    task.best_sample, task._trainer = None, _trainer(sanity_checking=True)
    epoch(masks)
    assert task.best_sample is None
    assert len(task.temperature_sample.labels) == 2  # a fresh sample each epoch


def test_budget_progress_is_steps_epochs_or_time_whichever_is_further():
    task = _task()
    task._trainer = _trainer(max_steps=200, global_step=50)
    assert task._budget_progress() == 0.25
    task._trainer = _trainer(max_steps=200, global_step=300)
    assert task._budget_progress() == 1.0  # never past the end
    by_epochs = {"max_steps": -1, "max_epochs": 4, "num_training_batches": 10}
    task._trainer = _trainer(**by_epochs, accumulate_grad_batches=2, global_step=5)
    assert task._budget_progress() == 0.25  # 20 optimiser steps in all
    task._trainer = _trainer(**by_epochs, accumulate_grad_batches=1, global_step=5)
    assert task._budget_progress() == 0.125
    for batches in (0, math.inf):  # not known yet
        task._trainer = _trainer(**{**by_epochs, "num_training_batches": batches}, global_step=5)
        assert task._budget_progress() == 0.0
    one_batch = {**by_epochs, "max_epochs": 1, "num_training_batches": 1}
    task._trainer = _trainer(**one_batch, accumulate_grad_batches=1, global_step=1)
    assert task._budget_progress() == 1.0
    task._trainer = _trainer(**one_batch, accumulate_grad_batches=2, global_step=0)
    assert task._budget_progress() == 0.0
    task._trainer = _trainer(max_steps=1, global_step=1)  # one step in all
    assert task._budget_progress() == 1.0
    budget = TimeBudget(600, 0.0, 1)
    budget.progress = lambda: 0.6  # type: ignore[method-assign]
    task._trainer = _trainer(max_steps=200, global_step=50, callbacks=[object(), budget])
    assert task._budget_progress() == 0.6
    task._trainer = _trainer(max_steps=200, global_step=180, callbacks=[budget])
    assert task._budget_progress() == 0.9


def test_the_cosine_schedule_anneals_to_2_percent_over_the_budget_each_step():
    task = _task("scheduler=cosine", "lr=0.01")
    task._trainer = _trainer(max_steps=100, global_step=0)
    found = task.configure_optimizers()
    assert found["lr_scheduler"]["interval"] == "step"
    factor = found["lr_scheduler"]["scheduler"].lr_lambdas[0]
    assert found["optimizer"] is found["lr_scheduler"]["scheduler"].optimizer
    for step, expected in ((0, 1.0), (50, 0.51), (100, 0.02), (25, 0.02 + 0.49 * (1 + 0.5**0.5))):
        task._trainer = _trainer(max_steps=100, global_step=step)
        assert factor(step) == pytest.approx(expected)


def test_plateau_halves_the_rate_when_validation_miou_stalls():
    task = _task("scheduler=plateau", "plateau_patience=3")
    found = task.configure_optimizers()
    plateau = found["lr_scheduler"]["scheduler"]
    assert found["lr_scheduler"]["monitor"] == "val_miou"
    assert isinstance(plateau, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert (plateau.mode, plateau.factor, plateau.patience) == ("max", 0.5, 3)
    assert found["optimizer"] is plateau.optimizer


def test_optimiser_kind_rate_and_decay_come_from_the_settings():
    for name, kind in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)):
        task = _task(f"optimizer={name}", "lr=0.02", "weight_decay=0.003", "scheduler=none")
        found = task.configure_optimizers()
        assert list(found) == ["optimizer"]
        optimizer = found["optimizer"]
        assert type(optimizer) is kind
        (group,) = optimizer.param_groups  # no encoder apart: one group of everything
        assert (group["lr"], group["weight_decay"]) == (0.02, 0.003)
        assert len(group["params"]) == len(list(task.parameters()))


def test_each_rank_and_each_resumed_run_draws_its_own_crops():
    task = _task("seed=7")
    draws = []
    for rank, step in ((0, 0), (1, 0), (0, 40), (1, 0)):
        task._trainer = _trainer(global_rank=rank, global_step=step)
        task.on_train_start()
        draws.append(torch.rand(4))
        torch.manual_seed(7 + 1_000_003 * rank + step)
        assert torch.equal(draws[-1], torch.rand(4))
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    assert torch.equal(draws[1], draws[3])


def test_class_weights_reach_the_loss_and_must_name_every_class():
    task = _task("class_weights=[1,2,3,4,5,6]", "dice_weight=0")
    assert task.ce.weight.tolist() == [1, 2, 3, 4, 5, 6]
    logits, target = torch.zeros(1, 6, 1, 2), torch.tensor([[[0, 5]]])
    # equal logits: each pixel costs log 6, weighted by its class and averaged by weight
    assert float(task.loss(logits, target)) == pytest.approx(math.log(6))
    focal = _task("class_weights=[1,2,3,4,5,6]", "focal_gamma=2", "dice_weight=0")
    assert focal.ce.class_weights.tolist() == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="class_weights has 2 values for 6 classes"):
        _task("class_weights=[1,2]")


def test_the_network_trains_channels_last_and_forward_is_the_network():
    task = _task()
    convs = [m.weight for m in task.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert any(not w.is_contiguous() for w in convs if w.shape[-1] > 1)
    image = torch.rand(1, 3, 32, 32) * 255
    assert torch.equal(task.eval()(image), task.net(image))


def test_training_step_logs_the_epochs_loss_and_takes_it_at_each_blocks_centre():
    task = _task("downsample=2", "crop_size=64", "window=64", "cutmix=0", "boundary_ignore=0")
    seen = _logged(task)
    targets = []
    task.loss = lambda logits, target: targets.append(target) or logits.mean()  # type: ignore[method-assign]
    masks = torch.randint(0, 6, (2, 64, 64))
    loss = task.training_step((torch.rand(2, 3, 64, 64) * 255, masks), 0)
    assert torch.equal(targets[0], masks[:, 1::2, 1::2])
    ((name, value, kw),) = seen
    assert (name, value) == ("train_loss", float(loss.detach()))
    assert kw == {"on_step": False, "on_epoch": True, "prog_bar": True, "batch_size": 2,
                  "sync_dist": True}  # fmt: skip
    mixed = _task("cutmix=1", "boundary_ignore=0")
    _logged(mixed)
    mixed.loss = lambda logits, target: targets.append(target) or logits.mean()  # type: ignore[method-assign]
    torch.manual_seed(3)
    mixed.training_step((torch.rand(2, 3, 64, 64) * 255, masks), 0)
    assert not torch.equal(targets[-1], masks)  # boxes of other samples pasted in


def test_an_encoder_apart_learns_at_its_rate_only_where_it_differs():
    # the seed U-Net has no encoder apart: one group whatever the factor
    (group,) = (
        _task("encoder_lr_factor=0.1", "scheduler=none")
        .configure_optimizers()["optimizer"]
        .param_groups
    )
    assert group["lr"] == 1e-3
    lite = ["model=fpn-effnet-lite0", "pretrained=false", "crop_size=64", "window=64"]
    for factor, groups in (("1", 1), ("0.5", 2)):
        task = _task(*lite, f"encoder_lr_factor={factor}", "scheduler=none")
        found = task.configure_optimizers()["optimizer"].param_groups
        assert len(found) == groups


def test_the_network_is_built_as_the_settings_say():
    task = _task("base_width=8", "dropout=0.3", "bands=[1,2,3,4]")
    expected = build_network(
        "seed-unet", 6, pretrained=False, base_width=8, dropout=0.3, in_channels=4
    )
    assert repr(task.net) == repr(expected)
    settings = ["model=fpn-effnet-lite0", "pretrained=false", "crop_size=64", "window=64"]
    lite = _task(*settings, "decoder_channels=[64,32]", "drop_path=0.1", "downsample=2")
    expected = build_network(
        "fpn-effnet-lite0", 6, pretrained=False, decoder_channels=[64, 32], drop_path=0.1,
        downsample=2,
    )  # fmt: skip
    assert repr(lite.net) == repr(expected)
    assert repr(lite.net) != repr(build_network("fpn-effnet-lite0", 6, pretrained=False))
    imagenet = _task(*settings, "pretrained=true")
    torch.manual_seed(0)
    weights = build_network("fpn-effnet-lite0", 6, pretrained=True).state_dict()
    encoder = [k for k in weights if ".encoder." in k and k.endswith("weight")]
    assert encoder and all(torch.equal(imagenet.net.state_dict()[k], weights[k]) for k in encoder)


def test_focal_loss_takes_its_gamma():
    for gamma in (0.5, 3.0):
        task = _task(f"focal_gamma={gamma}")
        assert isinstance(task.ce, smp.losses.FocalLoss)
        logits, target = torch.randn(2, 6, 4, 4), torch.randint(0, 6, (2, 4, 4))
        expected = smp.losses.FocalLoss("multiclass", gamma=gamma, ignore_index=IGNORE_INDEX)
        assert float(task.ce(logits, target)) == pytest.approx(float(expected(logits, target)))


def test_cutmix_leaves_a_batch_of_one_and_mixes_a_batch_of_two():
    image, mask = torch.zeros(1, 3, 16, 16), torch.zeros(1, 16, 16, dtype=torch.long)
    assert cutmix(image, mask, 1.0) == (image, mask)
    torch.manual_seed(0)
    masks = torch.arange(2)[:, None, None].expand(2, 64, 64)
    for _ in range(20):  # each takes a box of the other, every time
        _, mixed = cutmix(masks[:, None].float(), masks, 1.0)
        assert (mixed[0] == 1).any() and (mixed[1] == 0).any()


def test_cutmix_boxes_are_squares_of_a_square_crop_anywhere_in_it():
    torch.manual_seed(2)
    n = 200
    masks = torch.arange(n)[:, None, None].expand(n, 24, 24)
    _, mixed = cutmix(masks[:, None].float(), masks, 1.0)
    tops, bottoms = set(), set()
    for k in range(n):
        other = mixed[k] != k
        rows, cols = other.any(1).nonzero().flatten(), other.any(0).nonzero().flatten()
        if len(rows):
            assert len(rows) == len(cols)  # the same share of each side: a square
            tops.add(int(rows.min()))
            bottoms.add(int(rows.max()))
    assert 0 in tops and 23 in bottoms  # boxes reach every edge
