"""Scenes of a dataset decoded as training reads them, for tests that look at pixels."""

from pathlib import Path

from aerialseg.data.catalog import open_catalog
from aerialseg.data.classes import ClassTable
from aerialseg.data.scenes import LabelledImage, Reading


def decoded(
    data: Path, ids, classes: ClassTable, max_unknown: float = 0.05, **reading
) -> list[LabelledImage]:
    """The scenes ``ids`` of the dataset ``data``, decoded into memory."""
    catalog = open_catalog(data, classes, pixel_size=reading.pop("pixel_size", None))
    chosen = Reading(max_unknown=max_unknown, cache_megabytes=float("inf"), **reading)
    return catalog.read(list(ids), chosen)  # type: ignore[return-value]
