"""Self-training (unlabelled=): the starting model labels the pixels it is sure of, and
training crops are drawn from those images too."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aerialseg.cli import main
from aerialseg.data.catalog import open_catalog
from aerialseg.data.classes import DUBAI_CLASSES, IGNORE_INDEX, ClassTable
from aerialseg.data.splits import make_split
from aerialseg.errors import ConfigError
from aerialseg.inference.load import load_predictor
from aerialseg.training import pseudo
from aerialseg.training.config import resolve_config
from aerialseg.training.datamodule import SegmentationDataModule
from aerialseg.training.pseudo import labelling_device, pseudo_label, pseudo_labelled
from tests.helpers.geotiff import write_geotiff
from tests.helpers.images import rgb_scene
from tests.helpers.models import FAST


def test_the_models_classes_are_matched_to_the_runs_by_name():
    model = ClassTable.from_dict(DUBAI_CLASSES.to_dict())
    kept = [c for c in model.to_dict()["classes"] if c["name"] in ("Water", "Building")]
    run = ClassTable.from_dict({**model.to_dict(), "classes": kept[::-1]})  # Water, Building
    lut = model.ids_in(run)
    assert lut[model.names.index("Water")] == 0 and lut[model.names.index("Building")] == 1
    others = [i for i, n in enumerate(model.names) if n not in ("Water", "Building")]
    assert (lut[others] == IGNORE_INDEX).all() and lut[IGNORE_INDEX] == IGNORE_INDEX
    # in any case, as polygon labels and evaluate match names
    upper = ClassTable.from_dict(
        {"classes": [{**c, "name": c["name"].upper()} for c in kept[::-1]]}
    )
    assert (model.ids_in(upper) == lut).all()


def test_pixels_are_labelled_with_the_models_class_only_where_it_is_sure(tiny_model, tmp_path):
    pixels = rgb_scene(90, 150, seed=3)
    path = write_geotiff(tmp_path / "region.tif", pixels)
    predictor = load_predictor(tiny_model, device="cpu", precision="fp32")
    expected = predictor.predict_image(pixels.astype(np.float32), confidence=True)
    lut = predictor.classes.ids_in(predictor.classes)
    # any confidence: every pixel, with the class predict gives it, and the file's pixels
    every = pseudo_label(predictor, path, lut, 0.01, None, "region")
    assert np.array_equal(every.mask.numpy(), expected.ids)
    assert np.array_equal(every.image.numpy(), pixels) and every.id == "unlabelled:region"
    # the median confidence: about half the pixels, each with the model's class
    least = float(np.median(expected.confidence)) / 100
    some = pseudo_label(predictor, path, lut, least, None, "region").mask.numpy()
    sure = expected.confidence >= round(100 * least)
    assert 0.2 < sure.mean() < 1
    assert np.array_equal(some[sure], expected.ids[sure])
    assert (some[~sure] == IGNORE_INDEX).all()


def test_settings_that_cannot_self_train_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="unlabelled= needs init_from="):
        resolve_config(overrides=[f"unlabelled={tmp_path}"])
    with pytest.raises(ConfigError, match="use input_mode=crop"):
        resolve_config(overrides=["unlabelled=x", "init_from=default", "input_mode=resize"])
    with pytest.raises(ConfigError, match=r"pseudo_confidence must be in \(0, 1\]"):
        resolve_config(overrides=["pseudo_confidence=0"])
    big = tmp_path / "big"
    big.mkdir()
    write_geotiff(big / "a.tif", rgb_scene(600, 500, seed=1))  # 4 x 300,000 bytes decoded
    cfg = resolve_config(
        overrides=[f"unlabelled={big}", "init_from=no-such-model.pt", "cache_megabytes=1"]
    )
    # refused from the header, before the model is loaded (it does not exist here)
    with pytest.raises(ConfigError, match="take 1 MB decoded, more than cache_megabytes=1"):
        pseudo_labelled(cfg, DUBAI_CLASSES)
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = resolve_config(overrides=[f"unlabelled={empty}", "init_from=default"])
    with pytest.raises(ConfigError, match="no images found there"):
        pseudo_labelled(cfg, DUBAI_CLASSES)


def test_a_run_draws_crops_from_the_unlabelled_images_too(tiny_dataset, tiny_model, tmp_path):
    region = tmp_path / "region"
    region.mkdir()
    write_geotiff(region / "a.tif", rgb_scene(70, 80, seed=1))
    write_geotiff(region / "b.tif", rgb_scene(64, 96, seed=2))
    settings = [*FAST, f"init_from={tiny_model}", f"unlabelled={region}"]
    cfg = resolve_config(overrides=[*settings, "pseudo_confidence=0.01"])
    pseudo = pseudo_labelled(cfg, DUBAI_CLASSES)
    assert [p.id for p in pseudo] == ["unlabelled:a", "unlabelled:b"]
    catalog = open_catalog(tiny_dataset, DUBAI_CLASSES)
    datamodule = SegmentationDataModule(catalog, make_split(catalog.entries), cfg, None, pseudo)
    datamodule.setup("fit")
    items = datamodule.train_set.items  # type: ignore[union-attr]
    assert items[-2:] == pseudo and len(items) > 2
    # through the command line: trained, and the summary of what was labelled
    out = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(out), *settings, "max_steps=2"]
    assert main(argv) == 0
    assert (out / "model.pt").exists()


def test_the_summary_says_how_many_pixels_were_labelled(tiny_model, tmp_path, capsys):
    write_geotiff(tmp_path / "a.tif", rgb_scene(64, 64, seed=1))
    settings = [*FAST, f"init_from={tiny_model}", f"unlabelled={tmp_path}/*.tif"]
    (scene,) = pseudo_labelled(resolve_config(overrides=[*settings]), DUBAI_CLASSES)
    share = (scene.mask != IGNORE_INDEX).float().mean().item()
    out = capsys.readouterr().out
    assert f"1 unlabelled image(s), {share:.0%} of their pixels labelled by {tiny_model}" in out
    assert "at confidence >= 0.9" in out


def test_the_starting_model_reads_its_bands_on_the_runs_grid(tiny_model, tmp_path):
    """A review: a run on bands 3,2,1,4 from an RGB model fed it four bands (a traceback),
    and unlabelled images were read at their own pixel size while the run read its scenes
    at pixel_size=. The model reads the run's first three bands, which meet its R, G and B
    filters, and the images are on the run's grid; the run keeps all its bands."""
    bgr = rgb_scene(96, 128, seed=4)[::-1]
    nir = (bgr[1:2].astype(np.uint16) * 3 // 4).astype(np.uint8)
    path = write_geotiff(tmp_path / "bgrn.tif", np.concatenate([bgr, nir]))  # 0.5 m pixels
    predictor = load_predictor(tiny_model, device="cpu", precision="fp32")
    lut = predictor.classes.ids_in(predictor.classes)
    scene = pseudo_label(predictor, path, lut, 0.01, (3, 2, 1, 4), "bgrn")
    rgb = bgr[::-1].astype(np.float32)
    assert np.array_equal(scene.mask.numpy(), predictor.predict_image(rgb).ids)
    assert np.array_equal(scene.image.numpy(), np.concatenate([bgr, nir])[[2, 1, 0, 3]])
    coarse = pseudo_label(predictor, path, lut, 0.01, (3, 2, 1), "bgrn", pixel_size=1.0)
    assert coarse.image.shape == (3, 48, 64) and coarse.mask.shape == (48, 64)
    cfg = resolve_config(overrides=[f"unlabelled={path}", f"init_from={tiny_model}"])
    plain = tmp_path / "plain.png"  # no georeference: no pixel size to resample it to
    Image.fromarray(rgb_scene(32, 32).transpose(1, 2, 0)).save(plain)
    cfg = resolve_config(
        overrides=[f"unlabelled={plain}", f"init_from={tiny_model}", "pixel_size=1.0"]
    )
    with pytest.raises(ConfigError, match=r"^unlabelled=: .*plain.png: has no georeference"):
        pseudo_labelled(cfg, DUBAI_CLASSES)


def test_the_least_confidence_is_a_whole_percent_at_or_above_it(tiny_model, tmp_path):
    """Confidences come in whole percents: 0.985 took pixels of 98 %, 0.004 every pixel."""
    path = write_geotiff(tmp_path / "region.tif", rgb_scene(90, 150, seed=3))
    predictor = load_predictor(tiny_model, device="cpu", precision="fp32")
    lut = predictor.classes.ids_in(predictor.classes)
    percent = predictor.predict_image(
        rgb_scene(90, 150, seed=3).astype(np.float32), confidence=True
    )
    least = int(np.median(percent.confidence))
    for asked, kept in ((least / 100 - 0.006, least), (least / 100 + 0.001, least + 1)):
        mask = pseudo_label(predictor, path, lut, asked, None, "r").mask.numpy()
        assert np.array_equal(mask != IGNORE_INDEX, percent.confidence >= kept), asked


def test_the_starting_model_labels_on_the_runs_accelerator_and_ranks_gpu(monkeypatch, tmp_path):
    """A run told accelerator=cpu labelled on a GPU where there was one, and under DDP
    every rank labelled on GPU 0."""
    for name in pseudo.LOCAL_RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(pseudo.torch.cuda, "is_available", lambda: False)
    assert labelling_device("auto") == labelling_device("gpu") == "cpu"
    monkeypatch.setattr(pseudo.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(pseudo.torch.cuda, "device_count", lambda: 4)
    assert labelling_device("cpu") == "cpu"
    assert labelling_device("auto") == labelling_device("gpu") == "cuda:0"
    monkeypatch.setenv("SLURM_LOCALID", "2")  # srun's third task on a machine
    assert labelling_device("gpu") == "cuda:2"
    monkeypatch.setenv("LOCAL_RANK", "1")  # a second DDP rank, as Lightning starts it
    assert labelling_device("cuda") == "cuda:1"
    monkeypatch.setattr(pseudo.torch.cuda, "device_count", lambda: 1)  # one GPU a rank
    assert labelling_device("cuda") == "cuda:0"
    monkeypatch.setenv("LOCAL_RANK", "one")  # no rank: the next variable's
    assert labelling_device("cuda") == "cuda:0"
    # and pseudo_labelled loads its model there
    write_geotiff(tmp_path / "a.tif", rgb_scene(32, 32, seed=1))
    asked = []

    def loading(path, device):
        asked.append(device)
        raise ConfigError("stop here")

    monkeypatch.setattr(pseudo, "load_predictor", loading)
    settings = [*FAST, "init_from=default", f"unlabelled={tmp_path}/a.tif", "accelerator=cpu"]
    with pytest.raises(ConfigError, match="stop here"):
        pseudo_labelled(resolve_config(overrides=settings), DUBAI_CLASSES)
    assert asked == ["cpu"]


def test_labelling_stops_at_its_share_of_max_time_and_says_what_it_left_out(
    tiny_model, tiny_dataset, tmp_path, monkeypatch, capsys
):
    """Pseudo-labelling was not cut off by max_time: a run given many unlabelled images
    labelled them all, then trained one step, however long that took."""
    import time

    from aerialseg.training import run

    pixels = rgb_scene(70, 90, seed=3)
    (tmp_path / "region").mkdir()
    path = write_geotiff(tmp_path / "region" / "a.tif", pixels)
    write_geotiff(tmp_path / "region" / "b.tif", rgb_scene(64, 64, seed=4))
    predictor = load_predictor(tiny_model, device="cpu", precision="fp32")
    lut = predictor.classes.ids_in(predictor.classes)
    now = time.monotonic()
    assert pseudo_label(predictor, path, lut, 0.01, None, "a", deadline=now - 1) is None
    in_time = pseudo_label(predictor, path, lut, 0.01, None, "a", deadline=now + 3600)
    assert in_time is not None and np.array_equal(in_time.image.numpy(), pixels)
    # the run's images in order until the deadline passes: a's labelled in time, b's not
    real, deadlines = pseudo.pseudo_label, []

    def a_in_time(*args):
        deadlines.append(args[-1])
        return real(*args[:-1], None if len(deadlines) == 1 else time.monotonic() - 1)

    monkeypatch.setattr(pseudo, "pseudo_label", a_in_time)
    settings = [
        *FAST,
        f"init_from={tiny_model}",
        f"unlabelled={tmp_path}/region",
        "max_time=00:02:00",
    ]
    cfg = resolve_config(overrides=settings)
    (labelled,) = pseudo_labelled(cfg, DUBAI_CLASSES, deadline=now + 60)
    assert labelled.id == "unlabelled:a" and deadlines == [now + 60] * 2
    out = capsys.readouterr().out
    assert "self-training: labelling 2 unlabelled image(s) with" in out
    assert "1 of 2 unlabelled image(s) labelled in 50% of max_time=00:02:00, the share" in out
    assert "self-training: 1 unlabelled image(s), " in out
    monkeypatch.setattr(pseudo, "pseudo_label", real)  # past already: none labelled
    assert pseudo_labelled(cfg, DUBAI_CLASSES, deadline=now - 1) == []
    assert "0 of 2 unlabelled image(s) labelled" in capsys.readouterr().out
    # train gives labelling half of max_time from the command's start
    asked = []

    def labelling(cfg, classes, deadline):
        asked.append(deadline)
        raise ConfigError("stop here")

    monkeypatch.setattr(run, "pseudo_labelled", labelling)
    with pytest.raises(ConfigError, match="stop here"):
        run.train(cfg, tiny_dataset, tmp_path / "run", classes=DUBAI_CLASSES, started=100.0)
    assert asked == [100.0 + 60]
    cfg = resolve_config(overrides=[*FAST, f"init_from={tiny_model}", f"unlabelled={path}"])
    with pytest.raises(ConfigError, match="stop here"):
        run.train(cfg, tiny_dataset, tmp_path / "run", classes=DUBAI_CLASSES, started=100.0)
    assert asked[-1] is None  # no max_time: every image
