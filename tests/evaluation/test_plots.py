"""The evaluation plots."""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image

from aerialseg.data.classes import ClassTable
from aerialseg.evaluation.plots import plot_confusion


def test_class_names_the_font_cannot_draw_warn_no_one(tmp_path):
    """A review: evaluate printed matplotlib's 'Glyph 127968 missing from font' warning,
    with its source line, for a class named with an emoji."""
    table = ClassTable.from_dict({"classes": [{"name": "مبنى 🏠"}, {"name": "Road"}]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_confusion(np.array([[5, 1], [2, 7]]), table, tmp_path / "confusion.png")
    assert Image.open(tmp_path / "confusion.png").size[0] > 100
