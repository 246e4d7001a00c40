import numpy as np
import pytest

from aerialseg.data.classes import DUBAI_CLASSES, ClassTable
from aerialseg.evaluation.metrics import format_table, metrics_from_confusion

THREE = ClassTable.from_dict(
    {
        "classes": [
            {"name": "a", "mask_color": "#010101"},
            {"name": "b", "mask_color": "#020202"},
            {"name": "void", "mask_color": "#030303", "scored": False},
        ]
    }
)


def test_metrics_from_hand_computed_matrix():
    # rows true, columns predicted
    cm = np.array([[50, 10, 0], [5, 30, 5], [0, 0, 0]])
    m = metrics_from_confusion(cm, THREE)
    # a: TP 50, FP 5, FN 10 -> IoU 50/65, Dice 100/115
    assert m["per_class"]["a"]["iou"] == pytest.approx(50 / 65)
    assert m["per_class"]["a"]["dice"] == pytest.approx(100 / 115)
    assert m["per_class"]["a"]["precision"] == pytest.approx(50 / 55)
    assert m["per_class"]["a"]["recall"] == pytest.approx(50 / 60)
    # b: TP 30, FP 10, FN 10 -> IoU 30/50
    assert m["per_class"]["b"]["iou"] == pytest.approx(30 / 50)
    # void: TP 0, FP 5, FN 0 -> IoU 0 (predicted but never true)
    assert m["per_class"]["void"]["iou"] == 0
    assert m["per_class"]["void"]["recall"] is None  # no true pixels
    assert m["miou3"] == pytest.approx((50 / 65 + 30 / 50 + 0) / 3)
    assert m["miou2"] == pytest.approx((50 / 65 + 30 / 50) / 2)
    assert m["pixel_accuracy"] == pytest.approx(80 / 100)
    assert m["mean_dice"] == pytest.approx((100 / 115 + 60 / 80 + 0) / 3)
    assert m["labelled_pixels"] == 100


def test_absent_class_is_left_out_of_means():
    cm = np.array([[10, 0, 0], [0, 10, 0], [0, 0, 0]])
    m = metrics_from_confusion(cm, THREE)
    assert m["per_class"]["void"]["iou"] is None
    assert m["miou3"] == 1.0


def test_dubai_headline_keys_and_table():
    cm = np.eye(6, dtype=int) * 7
    cm[0, 1] = 7
    m = metrics_from_confusion(cm, DUBAI_CLASSES)
    assert {"miou6", "miou5", "pixel_accuracy", "mean_dice"} <= m.keys()
    assert m["miou6"] == pytest.approx((0.5 + 0.5 + 4) / 6)
    assert "miou6=" in format_table(m, DUBAI_CLASSES)
