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

All outputs of one input go into one files.OutputSet: each is written under a temporary
name, and they are renamed into place together, so that a kill while finishing leaves the
old set or the new one (class raster, sidecars, areas and polygons that agree), never a
mix. Functions given no set (``into=None``) make their own and rename at once.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.features import sieve
from rasterio.io import DatasetWriter
from rasterio.windows import Window

from aerialseg.data.classes import ClassTable
from aerialseg.data.raster import RasterInput, display_rgb, no_georeference_warning
from aerialseg.files import OutputSet, temp_path
from aerialseg.inference.areas import AreaMeasure, AreaTotals
from aerialseg.inference.predict import CONFIDENCE_NODATA, NODATA, ChunkResult
from aerialseg.inference.styles import class_pam, raster_qml

OVERLAY_ALPHA = 0.5
BLOCK = 256
# The sieve reads the class raster in bands of this many rows, plus a margin of at least
# SIEVE_MARGIN rows (and at least the sieve's threshold) on either side.
SIEVE_ROWS, SIEVE_MARGIN = 1024, 64
PNG_MAX_SIDE = 1_000_000  # libpng refuses wider or taller images ("Invalid IHDR data")


def _palette(classes: ClassTable) -> np.ndarray:
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: classes.num_classes] = classes.display_palette()
    return lut


def aux_path(path: Path) -> Path:
    """GDAL's sidecar of ``path``: what its format cannot hold (names, georeference)."""
    return path.with_name(path.name + ".aux.xml")


def _set_for(path: Path, into: OutputSet | None) -> OutputSet:
    return into if into is not None else OutputSet(path.parent, path.name)


def write_text(path: Path, text: str, into: OutputSet | None = None) -> Path:
    """Write ``text`` as ``path`` of the set ``into`` (None: under a temporary name,
    renamed at once)."""
    outputs = _set_for(path, into)
    try:
        outputs.temp(path).write_text(text, encoding="utf-8")
    except BaseException:
        outputs.abort()
        raise
    if into is None:
        outputs.commit()
    return path


class RasterOutputs:
    """Class ids (+ colour mask, overlay, confidence, and the image as the model saw it, for
    a viewer) for one input, plus pixel counts per class."""

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
        sieve_pixels: int = 0,
        image: bool = False,
    ):
        """``sieve_pixels``: before finishing, merge regions of fewer pixels into their
        largest neighbour (GDAL's sieve), in the class raster and the colour mask, and
        count the classes again."""
        self.raster, self.classes, self.fmt, self.stem = raster, classes, fmt, stem
        self.sieve_pixels = sieve_pixels
        self.lut = _palette(classes)
        self.codes, nodata, dtype = classes.raster_coding()
        self.nodata = nodata
        self.write_values = classes.by_value  # else ids, which need no lookup
        self.counts = np.zeros(classes.num_classes, dtype=np.int64)
        self.valid_pixels = 0
        src = raster.dataset
        self.measure = AreaMeasure.of(src, str(raster.path))
        # measured once before a pixel is predicted: a georeference off the Earth, or one
        # no equal-area projection holds, is refused here (an area that overflows cannot
        # be: open_dataset refuses coordinates past FARTHEST_COORDINATE)
        self.measure.pixel_area()
        self.area_totals = AreaTotals(classes.num_classes)  # a pixel's area varies by row
        suffix = ".tif" if fmt == "tif" else ".png"
        self.finals: dict[str, Path] = {"classes": stem.with_name(stem.name + "_classes" + suffix)}
        if color:
            self.finals["color"] = stem.with_name(stem.name + "_color" + suffix)
        # pictures: PNG where it can hold them
        picture = ".png" if max(raster.width, raster.height) <= PNG_MAX_SIDE else ".tif"
        if overlay:
            self.finals["overlay"] = stem.with_name(stem.name + "_overlay" + picture)
        if image:  # 8-bit RGB whatever the input's bands and type: what a viewer can show
            self.finals["image"] = stem.with_name(stem.name + "_image" + picture)
        if confidence:
            self.finals["confidence"] = stem.with_name(stem.name + "_confidence" + suffix)
        # the GeoTIFFs that predictions stream into before their final copy
        self.tiffs: dict[str, Path] = {k: temp_path(v, "step.tif") for k, v in self.finals.items()}
        self.writers: dict[str, DatasetWriter] = {}
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
            # Placed by ground control points or RPCs alone (a scanned photo, a level-1
            # product): the outputs carry them, so a GIS places them where the input lies.
            # Its areas and polygons stay in pixels: no grid gives them ground units.
            gcps, gcp_crs = src.gcps
            if gcps and gcp_crs is not None:  # points of no CRS place nothing (GDAL: none)
                base.update(gcps=gcps, crs=gcp_crs)
            if src.rpcs:
                base["rpcs"] = src.rpcs
        for key, path in self.tiffs.items():
            profile = dict(base, count={"classes": 1, "confidence": 1, "color": 4}.get(key, 3))
            if key == "classes":
                profile.update(nodata=nodata, dtype=dtype)
            elif key == "confidence":
                profile["nodata"] = CONFIDENCE_NODATA
            elif key == "color":  # RGBA: where the input has no data, clear, not black
                profile.update(photometric="RGB", alpha="YES")
            with no_georeference_warning():  # plain images have no georeference, by design
                self.writers[key] = rasterio.open(path, "w", **profile)
        if dtype == "uint8" or fmt == "tif":  # a PNG palette holds 8-bit indices only
            self.writers["classes"].write_colormap(
                1,
                {
                    int(self.codes[i]): (*map(int, self.lut[i]), 255)
                    for i in range(classes.num_classes)
                },
            )

    def _count(self, ids: np.ndarray, valid: np.ndarray, row_off: int) -> None:
        """Add the classes of ``ids`` (rows from ``row_off``) where ``valid`` to the counts
        and areas."""
        self.valid_pixels += int(valid.sum())
        height, n = ids.shape[0], self.classes.num_classes
        rows = np.broadcast_to(np.arange(height)[:, None], ids.shape)[valid]
        per_row = np.bincount(rows * 256 + ids[valid], minlength=height * 256)
        per_row = per_row.reshape(height, 256)[:, :n]
        self.counts += per_row.sum(axis=0)
        self.area_totals.add(per_row, self.measure.row_areas(row_off, height))

    @property
    def areas(self) -> np.ndarray:
        """Each class's area, in ``measure.unit``."""
        return self.area_totals.values()

    def write(self, result: ChunkResult) -> None:
        ids, win = result.ids, result.window
        if self.write_values:
            codes = self.codes[ids].astype(self.writers["classes"].dtypes[0])
            self.writers["classes"].write(codes, 1, window=win)
        else:
            self.writers["classes"].write(ids, 1, window=win)
        self._count(ids, result.valid, int(win.row_off))
        if result.confidence is not None and "confidence" in self.writers:
            self.writers["confidence"].write(result.confidence, 1, window=win)
        # a view of the bands, or one band repeated; values past 8 bits (a float scene's)
        # clipped, not wrapped, here and under the overlay alike
        picture = np.clip(display_rgb(result.image), 0, 255)
        if "image" in self.writers:
            self.writers["image"].write(picture.astype(np.uint8), window=win)
        if "color" not in self.writers and "overlay" not in self.writers:
            return
        color = self.lut[ids].transpose(2, 0, 1)  # nodata -> black
        if "color" in self.writers:
            alpha = np.where(result.valid, 255, 0).astype(np.uint8)[None]
            self.writers["color"].write(np.concatenate([color, alpha]), window=win)
        if "overlay" in self.writers:
            blend = (1 - OVERLAY_ALPHA) * picture + OVERLAY_ALPHA * color
            blend = np.where(result.valid[None], blend, picture)
            self.writers["overlay"].write(blend.astype(np.uint8), window=win)  # within 0..255

    def finish(self, into: OutputSet | None = None) -> dict[str, Path]:
        """Close, copy each file to its final format in the set ``into`` (None: renamed
        to its final name at once)."""
        for w in self.writers.values():
            w.close()
        outputs = into if into is not None else OutputSet(self.stem.parent, self.stem.name)
        try:
            if self.sieve_pixels > 1:
                self._sieve()
            for key, final in self.finals.items():
                self._convert(self.tiffs[key], final, key, outputs)
            written = dict(self.finals)
            qml = written["classes"].with_suffix(".qml")
            written["classes_style"] = write_text(qml, raster_qml(self.classes), outputs)
        except BaseException:
            self.abort()
            outputs.abort()
            raise
        if into is None:
            outputs.commit()
        return written

    def _sieve(self) -> None:
        """Sieve the class raster in bands of rows, each read with SIEVE_MARGIN rows more
        on either side (a region under the threshold spans fewer rows than it has pixels),
        so memory stays that of a band; then the colour mask and the counts follow it."""
        n = self.classes.num_classes
        code_to_id = np.full(int(self.codes[:n].max()) + 1, NODATA, dtype=np.uint8)
        code_to_id[self.codes[:n]] = np.arange(n, dtype=np.uint8)
        margin = max(SIEVE_MARGIN, self.sieve_pixels)
        self.counts[:], self.valid_pixels = 0, 0
        self.area_totals = AreaTotals(n)
        with no_georeference_warning():  # plain images have no georeference, by design
            color = rasterio.open(self.tiffs["color"], "r+") if "color" in self.tiffs else None
            dst = rasterio.open(self.tiffs["classes"], "r+")
        with dst:
            height, width = dst.height, dst.width
            for top in range(0, height, SIEVE_ROWS):
                start, stop = max(0, top - margin), min(height, top + SIEVE_ROWS + margin)
                values = dst.read(1, window=Window(0, start, width, stop - start))
                valid = values != self.nodata
                # GDAL takes a threshold under the pixels it is given: one at or over them
                # (a min area of the whole scene or more, which reads it as one band) sieves
                # at the scene's size less one, all that can be asked of it. GDAL merges a
                # region only into one that reaches the threshold, so a map with no such
                # region stays as it is. A 1 px scene has nothing to merge.
                size = min(self.sieve_pixels, values.size - 1)
                sieved = sieve(values, size, mask=valid) if size > 1 else values
                rows = slice(top - start, min(top + SIEVE_ROWS, height) - start)
                band, keep = sieved[rows], valid[rows]
                window = Window(0, top, width, band.shape[0])
                dst.write(band, 1, window=window)
                ids = np.where(keep, code_to_id[np.where(keep, band, 0)], NODATA)
                self._count(ids, keep, top)
                if color is not None:
                    alpha = np.where(keep, 255, 0).astype(np.uint8)[None]
                    rgb = self.lut[ids].transpose(2, 0, 1)
                    color.write(np.concatenate([rgb, alpha]), window=window)
        if color is not None:
            color.close()

    def _convert(self, tiff: Path, final: Path, key: str, outputs: OutputSet) -> None:
        tmp = outputs.temp(final)
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
            with no_georeference_warning():
                rasterio.shutil.copy(tiff, tmp, **options)
            # GDAL puts what the format cannot hold (a PNG's georeference) in a sidecar.
            sidecar = aux_path(tmp).read_text(encoding="utf-8") if aux_path(tmp).exists() else None
            if key == "classes":
                sidecar = class_pam(self.classes, sidecar)
            if sidecar is None:
                outputs.drop(aux_path(final))  # an earlier run's, now wrong
            else:
                write_text(aux_path(final), sidecar, outputs)
        finally:
            aux_path(tmp).unlink(missing_ok=True)
        tiff.unlink()

    def abort(self) -> None:
        for w in self.writers.values():
            if not w.closed:
                w.close()
        for key, path in self.tiffs.items():
            path.unlink(missing_ok=True)
            temp_path(self.finals[key]).unlink(missing_ok=True)
            aux_path(temp_path(self.finals[key])).unlink(missing_ok=True)


def area_table(outputs: RasterOutputs) -> list[dict]:
    """Each class's pixels, share and ground area (m² in any CRS; None for a plain image,
    whose only measure is its pixels)."""
    total = max(outputs.valid_pixels, 1)
    metric = outputs.measure.unit == "m2"
    return [
        {
            "class": c.name,
            "pixels": int(n),
            "share": float(n / total),
            "area_m2": float(area) if metric else None,
        }
        for c, n, area in zip(outputs.classes.classes, outputs.counts, outputs.areas, strict=True)
    ]


def spreadsheet_text(text: str) -> str:
    """Text for a CSV cell that a spreadsheet shows as text: a class name starting with =,
    +, -, @ or a tab is run as a formula by Excel and LibreOffice (a class table travels
    with a model file to every user), so it gets a ' before it, as OWASP advises. The JSON
    keeps the name as it is."""
    return f"'{text}" if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


def write_areas(rows: list[dict], stem: Path, into: OutputSet | None = None) -> dict[str, Path]:
    """The area table as CSV and JSON, in the set ``into`` (None: renamed at once)."""
    csv_path = stem.with_name(stem.name + "_areas.csv")
    json_path = stem.with_name(stem.name + "_areas.json")
    outputs = _set_for(stem, into)
    try:
        with outputs.temp(csv_path).open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["class", "pixels", "share", "area_m2"])
            writer.writeheader()
            writer.writerows({**row, "class": spreadsheet_text(row["class"])} for row in rows)
        # allow_nan=False: a non-finite area fails here rather than write invalid JSON
        write_text(json_path, json.dumps(rows, indent=2, allow_nan=False) + "\n", outputs)
    except BaseException:
        outputs.abort()
        raise
    if into is None:
        outputs.commit()
    return {"areas_csv": csv_path, "areas_json": json_path}
