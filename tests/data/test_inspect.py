import json

import pytest

from aerialseg.cli import main
from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.data.inspect import inspect_dataset
from aerialseg.data.source import DatasetSource
from tests.conftest import REAL_DATA, requires_real_data

# ../shared/datasets/README.md
README_SHARES = {
    "Building": 0.133,
    "Land": 0.524,
    "Road": 0.094,
    "Vegetation": 0.103,
    "Water": 0.136,
    "Unlabeled": 0.005,
}


@requires_real_data()
def test_inspect_real_dataset_matches_its_readme(capsys):
    assert main(["data", "inspect", str(REAL_DATA), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 72
    assert len(report["tiles"]) == 8 and all(t["pairs"] == 9 for t in report["tiles"].values())
    shares = {c["name"]: c["share"] for c in report["classes"]}
    for name, share in README_SHARES.items():
        assert shares[name] == pytest.approx(share, abs=0.001), name
    assert report["unmatched_share"] == pytest.approx(0.0056, abs=0.0005)
    assert report["unknown_colors"] == []  # every unmatched pixel is black
    assert report["mask_modes"] == {"RGB": 54, "P": 18}  # Tiles 2 and 4 are palette PNGs
    assert report["image_modes"] == {"RGB": 72} and report["image_grids"] == {"none": 72}
    assert report["tiles"]["Tile 2"]["sizes"].keys() >= {"509x544"}
    assert "2149x1479" in report["tiles"]["Tile 8"]["sizes"]


def test_inspect_counts_synthetic_pixels(tiny_dataset):
    report = inspect_dataset(DatasetSource(tiny_dataset), DUBAI_CLASSES, 0.05)
    assert report["pairs"] == 18
    assert report["pixels"] == 18 * 72 * 80
    assert report["ignore_color_pixels"] == 18 * 80  # one black row per mask
    assert sum(c["pixels"] for c in report["classes"]) == report["labelled_pixels"]
    assert report["labelled_pixels"] + report["unmatched_pixels"] == report["pixels"]


def test_inspect_table_output(tiny_dataset, capsys):
    assert main(["data", "inspect", str(tiny_dataset)]) == 0
    out = capsys.readouterr().out
    assert "pairs: 18 in 2 tile(s)" in out and "Building" in out
