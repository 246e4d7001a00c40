"""The settings reference is generated from TrainConfig, and every setting has a meaning."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from aerialseg.cli import main
from aerialseg.training.config import TrainConfig
from aerialseg.training.settings import format_settings, settings, settings_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "training-runs.md"


def test_every_setting_has_a_meaning_type_and_default():
    listed = settings()
    assert [s.name for s in listed] == [f.name for f in fields(TrainConfig)]
    defaults = TrainConfig()
    for s in listed:
        assert len(s.meaning.split()) >= 3, f"{s.name} has no help in training/config.py"
        assert s.default == getattr(defaults, s.name)
    by_name = {s.name: s for s in listed}
    # the help of a long setting and of a short one, from their definitions
    assert by_name["max_time"].meaning.startswith('wall-clock budget "HH:MM:SS" for the whole')
    assert by_name["crop_size"].meaning == "crop mode: side of the training crops, native px"
    assert by_name["input_mode"].kind == "one of: crop, resize"
    assert by_name["bands"].kind == "list of int or null"
    # each help belongs to its own setting
    assert "Sliding windows" in by_name["window"].meaning
    assert "Sliding windows" not in by_name["confidence_temperature"].meaning


def test_list_settings_and_help_print_every_setting(capsys):
    assert main(["train", "--list-settings"]) == 0
    listed = capsys.readouterr().out
    assert listed.strip() == format_settings()
    for f in fields(TrainConfig):
        assert f"\n  {f.name}=" in listed, f.name
    assert "  max_epochs=60  (int)\n      epochs at most" in listed

    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    assert "--list-settings" in help_text and "lr=0.001  (float)" in help_text
    assert "  logger=csv  (one of: csv, tensorboard, mlflow)" in help_text


def test_the_docs_carry_the_generated_settings_table():
    assert settings_table() in DOCS.read_text(), (
        "docs/training-runs.md's settings table is out of date: paste"
        " aerialseg.training.settings.settings_table() over it"
    )
