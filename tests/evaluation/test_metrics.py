import numpy as np
import pytest

from aerialseg.data.classes import DUBAI_CLASSES, ClassTable
from aerialseg.evaluation.metrics import format_table, headline_keys, metrics_from_confusion

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
    # found by a review: the table said "over all 3 classes" of a mean over 2
    headline, absent = format_table(m, THREE).splitlines()[:2]
    assert absent == "  (left out of the means: void, in neither the labels nor the predictions)"
    # and the headline says so itself, from the metrics alone, as evaluate prints them (a
    # review: "mIoU over 6 classes" of a mean over three)
    assert headline.startswith("mIoU over 2 of the 3 classes 1.0000,"), headline
    assert format_table(m).splitlines()[0] == headline
    cm[2, 2] = 5  # void labelled and found: every mean over all its classes
    text = format_table(metrics_from_confusion(cm, THREE))
    assert text.startswith("mIoU over all 3 classes 1.0000, mIoU over 2 scored classes 1.0000")


def test_dubai_headline_keys_and_table():
    cm = np.eye(6, dtype=int) * 7
    cm[0, 1] = 7
    m = metrics_from_confusion(cm, DUBAI_CLASSES)
    assert {"miou6", "miou5", "pixel_accuracy", "mean_dice"} <= m.keys()
    assert m["miou6"] == pytest.approx((0.5 + 0.5 + 4) / 6)
    text = format_table(m, DUBAI_CLASSES)
    assert "mIoU over all 6 classes" in text and "mIoU over 5 scored classes" in text
    assert m["miou_all"] == m["miou6"] and m["miou_scored"] == m["miou5"]


def test_a_class_seen_once_is_scored_and_an_empty_matrix_has_no_figures():
    one = metrics_from_confusion(np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0]]), THREE)
    assert one["per_class"]["a"] == {
        "iou": 1.0,
        "dice": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "support": 1,
    }
    assert one["miou3"] == 1.0 and one["pixel_accuracy"] == 1.0
    empty = metrics_from_confusion(np.zeros((3, 3), dtype=np.int64), THREE)
    assert empty["miou3"] is None and empty["miou2"] is None and empty["mean_dice"] is None
    assert empty["pixel_accuracy"] is None and empty["labelled_pixels"] == 0


def test_support_and_the_matrix_are_reported_as_whole_numbers():
    cm = np.array([[50, 10, 0], [5, 30, 5], [0, 0, 0]])
    m = metrics_from_confusion(cm, THREE)
    assert [m["per_class"][n]["support"] for n in ("a", "b", "void")] == [60, 40, 0]
    assert m["confusion_matrix"] == cm.tolist()
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)  # JSON: 50, not 50.0


def test_a_narrow_integer_matrix_does_not_overflow():
    # 2 x TP is 400: past the 255 of a uint8 matrix's own type
    cm = np.array([[200, 10, 0], [5, 100, 0], [0, 0, 0]], dtype=np.uint8)
    m = metrics_from_confusion(cm, THREE)
    assert m["per_class"]["a"]["dice"] == pytest.approx(400 / 415)
    assert m["per_class"]["b"]["dice"] == pytest.approx(200 / 215)


def test_headline_keys_name_the_scored_classes_only_when_some_are_not():
    assert headline_keys(THREE) == ["miou3", "miou2", "pixel_accuracy", "mean_dice"]
    two = ClassTable.from_dict(
        {"classes": [{"name": "a", "mask_value": 1}, {"name": "b", "mask_value": 2}]}
    )
    assert headline_keys(two) == ["miou2", "pixel_accuracy", "mean_dice"]


def test_table_lines():
    cm = np.array([[50, 10, 0], [5, 30, 5], [0, 0, 0]])
    m = metrics_from_confusion(cm, THREE)
    m["mean_dice"] = None  # as a report of no labelled pixels shows it
    assert format_table(m, THREE).splitlines() == [
        "mIoU over all 3 classes 0.4564, mIoU over 2 scored classes 0.6846,"
        " pixel accuracy 0.8000, mean Dice n/a",
        "  class            IoU    Dice    prec  recall",
        "  a             0.7692  0.8696  0.9091  0.8333",
        "  b             0.6000  0.7500  0.7500  0.7500",
        "  void          0.0000  0.0000  0.0000     n/a",
    ]
