"""Where the repository, the shared folder and the real Dubai dataset lie."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Beside the repository; from a copy of the tests deeper down (bench/mutation.py's, under
# .mutation/MODULE/mutants/), the nearest shared/ above it: there the real-data tests were
# skipped, and mutants only they would kill lived.
SHARED = next(
    (p / "shared" for p in REPO.parents if (p / "shared" / "datasets").is_dir()),
    REPO.parent / "shared",
)
REAL_DATA = SHARED / "datasets" / "dubai-aerial"
SPLIT_JSON = SHARED / "benchmark" / "split.json"
SAMPLE = REPO / "examples" / "dubai-sample.tif"  # a Dubai scene as a GeoTIFF in UTM 40N


def requires_real_data():
    return pytest.mark.skipif(
        not REAL_DATA.is_dir(), reason=f"real dataset not found at {REAL_DATA}"
    )
