"""How many of predict's polygons are specks, and what the default --min-area drops.

The bundled model predicts the 16 test images (PROTOCOL.md) once; their class rasters are
then turned into polygons with ``--min-area 0`` (every region) and with the default (under
vector.MIN_AREA_PIXELS pixels dropped). Reports polygon counts, how many regions have 1,
2, 3 pixels, the share of pixels the dropped polygons held, and the seconds polygonize
took over all images each way (GeoPackage, with its style). The Dubai JPEGs have no
georeference, so areas are in pixels. Writes bench/results/polygons.json.

    .venv/bin/python bench/polygons.py
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import fiona
import torch
from common import BUNDLED, DATA, SHARED, write_result

from aerialseg.inference.predict import Predictor
from aerialseg.inference.run import PredictOptions, predict_files
from aerialseg.inference.vector import MIN_AREA_PIXELS, polygonize
from aerialseg.models.io import load_model


def polygon_pixels(path: Path) -> list[int]:
    with fiona.open(path, layer="polygons") as src:
        return [round(f["properties"]["area_px"]) for f in src]  # a plain image: pixels


def main() -> None:
    listed = json.loads((SHARED / "benchmark" / "split.json").read_text())["test"]
    test = [DATA / "Semantic segmentation dataset" / name for name in listed]
    loaded = load_model(BUNDLED)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        opts = PredictOptions(outputs=frozenset({"classes"}), progress=False)
        with torch.inference_mode():
            predictor = Predictor(loaded.net, loaded.spec, loaded.classes, "cpu")
            summary = predict_files(predictor, test, out, opts)
        rasters = [files["classes"] for files in summary.done.values()]
        every: list[int] = []
        kept: list[int] = []
        seconds = {}
        for name, min_area, sizes in (("min_area_0", 0.0, every), ("default", None, kept)):
            start = time.perf_counter()
            for raster in rasters:
                stem = out / name / raster.stem
                stem.parent.mkdir(exist_ok=True)
                written = polygonize(raster, loaded.classes, stem, "gpkg", min_area=min_area)
                sizes.extend(polygon_pixels(written["polygons"]))
            seconds[name] = round(time.perf_counter() - start, 2)
    small = Counter(n for n in every if n < MIN_AREA_PIXELS)
    write_result(
        "polygons",
        {
            "images": len(rasters),
            "min_area_pixels": MIN_AREA_PIXELS,
            "polygons_min_area_0": len(every),
            "polygons_default": len(kept),
            "regions_by_pixels_below_default": {str(k): small[k] for k in sorted(small)},
            "dropped_share_of_polygons": round(1 - len(kept) / len(every), 4),
            "dropped_share_of_pixels": round(1 - sum(kept) / sum(every), 6),
            "polygonize_seconds": seconds,
        },
    )


if __name__ == "__main__":
    main()
