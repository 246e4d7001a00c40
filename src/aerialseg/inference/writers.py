"""Output files of ``predict``, streamed chunk by chunk and renamed only when complete.

Rasters are first written as tiled GeoTIFFs (GDAL can write those window by window), then
copied to their final form with GDAL's CreateCopy, which also streams: PNG, or a Cloud
Optimized GeoTIFF (deflated, with overviews, so that QGIS or a tile server shows a whole
scene at once). Class overviews take each block's most common class, never an average of
class ids. The copy costs about 0.9 s per 100 megapixels on 2 cores, some 3 % of
predicting them. Step files towards a GeoTIFF, the format of large scenes, are compressed
with Zstandard at level 1, which keeps a 100 MP scene's class ids in about 2 MB of disk
instead of 105 MB (a colour mask's 315 MB); towards a PNG they are left uncompressed,
which saved 0.5 s over the 16 test images (some 8 % of predicting them).

For GIS software: the class raster gets its class names in a GDAL ``.aux.xml`` sidecar and
a QGIS style (``.qml``) beside it (see styles.py); the colour mask has an alpha band, clear
where the input has no data; a PNG of a georeferenced input keeps its georeference in the
``.aux.xml`` that GDAL writes beside it.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import DatasetWriter

from aerialseg.data.classes import ClassTable
from aerialseg.data.raster import RasterInput, display_rgb
from aerialseg.files import temp_path
from aerialseg.inference.predict import CONFIDENCE_NODATA, ChunkResult
from aerialseg.inference.styles import class_pam, raster_qml

OVERLAY_ALPHA = 0.5
BLOCK = 256
PNG_MAX_SIDE = 1_000_000  # libpng refuses wider or taller images ("Invalid IHDR data")


def _palette(classes: ClassTable) -> np.ndarray:
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: classes.num_classes] = classes.display_palette()
    return lut


def _tmp(path: Path) -> Path:
    return temp_path(path)


def aux_path(path: Path) -> Path:
    """GDAL's sidecar of ``path``: what its format cannot hold (names, georeference)."""
    return path.with_name(path.name + ".aux.xml")


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` under a temporary name, then rename it to ``path``."""
    tmp = _tmp(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _step(path: Path) -> Path:
    """The GeoTIFF that predictions stream into before their final copy."""
    return temp_path(path, "step.tif")


class RasterOutputs:
    """Class ids (+ colour mask, overlay, confidence) for one input, plus pixel counts per
    class."""

    def __init__(
        self,
        raster: RasterInput,
        classes: ClassTable,
        stem: Path,
        *,
        fmt: str,
        color: bool,
        overlay: bool,
        confidence: bool = False,
    ):
        self.raster, self.classes, self.fmt = raster, classes, fmt
        self.lut = _palette(classes)
        self.codes, nodata, dtype = classes.raster_coding()
        self.write_values = classes.by_value  # else ids, which need no lookup
        self.counts = np.zeros(classes.num_classes, dtype=np.int64)
        self.valid_pixels = 0
        suffix = ".tif" if fmt == "tif" else ".png"
        self.finals: dict[str, Path] = {"classes": stem.with_name(stem.name + "_classes" + suffix)}
        if color:
            self.finals["color"] = stem.with_name(stem.name + "_color" + suffix)
        if overlay:  # a picture: PNG where it can hold it
            fits = max(raster.width, raster.height) <= PNG_MAX_SIDE
            self.finals["overlay"] = stem.with_name(
                stem.name + "_overlay" + (".png" if fits else ".tif")
            )
        if confidence:
            self.finals["confidence"] = stem.with_name(stem.name + "_confidence" + suffix)
        self.tiffs: dict[str, Path] = {k: _step(v) for k, v in self.finals.items()}
        self.writers: dict[str, DatasetWriter] = {}
        src = raster.dataset
        base = {
            "driver": "GTiff",
            "width": src.width,
            "height": src.height,
            "dtype": "uint8",
            "crs": src.crs,
            "transform": src.transform,
            "tiled": True,
            "blockxsize": BLOCK,
            "blockysize": BLOCK,
        }
        if fmt == "tif":
            base.update(compress="zstd", zstd_level=1)
        if not raster.georeferenced:
            base.pop("crs")
            if src.transform.is_identity:  # a plain image; a transform alone is kept
                base.pop("transform")
        for key, path in self.tiffs.items():
            profile = dict(base, count={"classes": 1, "confidence": 1, "color": 4}.get(key, 3))
            if key == "classes":
                profile.update(nodata=nodata, dtype=dtype)
            elif key == "confidence":
                profile["nodata"] = CONFIDENCE_NODATA
            elif key == "color":  # RGBA: where the input has no data, clear, not black
                profile.update(photometric="RGB", alpha="YES")
            with warnings.catch_warnings():  # plain images have no georeference, by design
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self.writers[key] = rasterio.open(path, "w", **profile)
        if dtype == "uint8" or fmt == "tif":  # a PNG palette holds 8-bit indices only
            self.writers["classes"].write_colormap(
                1,
                {
                    int(self.codes[i]): (*map(int, self.lut[i]), 255)
                    for i in range(classes.num_classes)
                },
            )

    def write(self, result: ChunkResult) -> None:
        ids, win = result.ids, result.window
        if self.write_values:
            codes = self.codes[ids].astype(self.writers["classes"].dtypes[0])
            self.writers["classes"].write(codes, 1, window=win)
        else:
            self.writers["classes"].write(ids, 1, window=win)
        self.valid_pixels += int(result.valid.sum())
        self.counts += np.bincount(ids[result.valid].ravel(), minlength=256)[
            : self.classes.num_classes
        ]
        if result.confidence is not None and "confidence" in self.writers:
            self.writers["confidence"].write(result.confidence, 1, window=win)
        if "color" not in self.writers and "overlay" not in self.writers:
            return
        color = self.lut[ids].transpose(2, 0, 1)  # nodata -> black
        if "color" in self.writers:
            alpha = np.where(result.valid, 255, 0).astype(np.uint8)[None]
            self.writers["color"].write(np.concatenate([color, alpha]), window=win)
        if "overlay" in self.writers:
            picture = display_rgb(result.image)
            blend = (1 - OVERLAY_ALPHA) * picture + OVERLAY_ALPHA * color
            blend = np.where(result.valid[None], blend, picture)
            self.writers["overlay"].write(np.clip(blend, 0, 255).astype(np.uint8), window=win)

    def finish(self) -> dict[str, Path]:
        """Close, copy each file to its final format, and move it to its final name."""
        for w in self.writers.values():
            w.close()
        try:
            for key, final in self.finals.items():
                self._convert(self.tiffs[key], final, key)
        except BaseException:
            self.abort()
            raise
        written = dict(self.finals)
        classes = written["classes"]
        written["classes_style"] = write_text(classes.with_suffix(".qml"), raster_qml(self.classes))
        return written

    def _convert(self, tiff: Path, final: Path, key: str) -> None:
        tmp = _tmp(final)
        if final.suffix == ".png":
            options: dict = {"driver": "PNG"}
        else:
            # Colour masks are RGB: a per-band majority would mix colours of no class.
            resampling = {"classes": "MODE", "confidence": "AVERAGE"}.get(key, "NEAREST")
            options = {
                "driver": "COG",
                "compress": "DEFLATE",
                "blocksize": BLOCK,
                "resampling": resampling,
                "num_threads": "ALL_CPUS",
            }
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                rasterio.shutil.copy(tiff, tmp, **options)
            # GDAL puts what the format cannot hold (a PNG's georeference) in a sidecar.
            sidecar = aux_path(tmp).read_text() if aux_path(tmp).exists() else None
            if key == "classes":
                sidecar = class_pam(self.classes, sidecar)
            if sidecar is None:
                aux_path(final).unlink(missing_ok=True)  # an earlier run's, now wrong
            else:
                write_text(aux_path(final), sidecar)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
            aux_path(tmp).unlink(missing_ok=True)
        tiff.unlink()

    def abort(self) -> None:
        for w in self.writers.values():
            if not w.closed:
                w.close()
        for key, path in self.tiffs.items():
            path.unlink(missing_ok=True)
            _tmp(self.finals[key]).unlink(missing_ok=True)
            aux_path(_tmp(self.finals[key])).unlink(missing_ok=True)


def pixel_area_m2(raster: RasterInput) -> float | None:
    """Area of one pixel in m² when the CRS is projected in metres, else None."""
    crs = raster.dataset.crs
    if crs is None or not crs.is_projected:
        return None
    units = (crs.linear_units or "").lower()
    if units not in ("metre", "meter", "m"):
        return None
    t = raster.dataset.transform
    return abs(t.a * t.e - t.b * t.d)


def area_table(outputs: RasterOutputs) -> list[dict]:
    px_area = pixel_area_m2(outputs.raster)
    total = max(outputs.valid_pixels, 1)
    return [
        {
            "class": c.name,
            "pixels": int(n),
            "share": float(n / total),
            "area_m2": float(n * px_area) if px_area is not None else None,
        }
        for c, n in zip(outputs.classes.classes, outputs.counts, strict=True)
    ]


def write_areas(rows: list[dict], stem: Path) -> dict[str, Path]:
    csv_path = stem.with_name(stem.name + "_areas.csv")
    json_path = stem.with_name(stem.name + "_areas.json")
    tmp = _tmp(csv_path)
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["class", "pixels", "share", "area_m2"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, csv_path)
    write_text(json_path, json.dumps(rows, indent=2) + "\n")
    return {"areas_csv": csv_path, "areas_json": json_path}
