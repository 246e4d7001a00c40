"""The Python API, what ``import aerialseg`` gives: load a model and predict arrays or files,
train, evaluate. The ``aerialseg`` commands call these same functions, so a notebook and
the command line get the same results.

Heavy libraries (torch, Lightning, rasterio) are imported when a function first runs, so
``import aerialseg`` and ``aerialseg --help`` stay quick.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from aerialseg.errors import AerialsegError, ConfigError, printable
from aerialseg.options import PositiveFloat, check_arguments, speaks_python

if TYPE_CHECKING:
    from aerialseg.data.catalog import LabelSpec
    from aerialseg.data.classes import ClassTable
    from aerialseg.inference.distributed import RaySummary
    from aerialseg.inference.predict import Predictor
    from aerialseg.inference.run import PredictSummary
    from aerialseg.models.spec import ModelSpec
    from aerialseg.training.config import TrainConfig

Device = Literal["auto", "cpu", "cuda"]
# training/config.py's PRESETS (a test keeps the two alike)
PresetName = Literal["default", "seed", "smoke", "finetune"]
Precision = Literal["auto", "fp32", "bf16"]
# Caps every training run at this many optimiser steps: a smoke test of a script or of the
# documentation's examples trains in seconds instead of hours. Announced when it applies.
MAX_STEPS_ENV = "AERIALSEG_MAX_STEPS"
# With --ray, scenes of more megapixels than this are predicted in row blocks by several
# workers
BLOCK_MEGAPIXELS = 64.0


def default_model_path() -> Path:
    """The model file bundled with the package (the Dubai model).

    Raises:
        AerialsegError: this install bundles no model file.
    """
    return model_path(None)


def model_path(model: str | os.PathLike | None) -> Path:
    """Where a model named by a user is: None or ``"default"`` is the bundled model (as
    ``init_from=default`` is), anything else a file."""
    from aerialseg.models.io import model_path as find

    return find(model)


@dataclass
class Prediction:
    """What ``Model.predict`` returns for one image.

    Attributes:
        class_ids: (H, W) uint8 class ids, indices into ``Model.class_names``; 255 where the
            input has no data.
        valid: (H, W) bool, False where the input has no data.
        probabilities: (classes, H, W) float32 class probabilities at the model's confidence
            temperature (NaN where there is no data); only when asked for.
        confidence: (H, W) float32, the probability of each pixel's class in 0..1, as
            ``aerialseg predict --confidence`` writes it in percent (NaN where there is no
            data); only when asked for.
        crs: a georeferenced file's CRS (rasterio's), None for arrays and plain images.
        transform: with ``crs``, the affine transform of the grid ``class_ids`` lie on:
            the file's own, or the resampled one where it was read at a ``pixel_size``.
    """

    class_ids: np.ndarray
    valid: np.ndarray
    probabilities: np.ndarray | None = None
    confidence: np.ndarray | None = None
    crs: Any = None
    transform: Any = None


class Model:
    """A loaded model, ready to predict. Made by ``load_model``.

    Attributes:
        predictor: what predicts (inference/predict.py), shared with ``predict_files``
            and ``evaluate`` when they are given this model.
        spec: what the model needs to predict: architecture, bands, pixel size, windows.
        classes: its class table.
    """

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    @property
    def spec(self) -> ModelSpec:
        return self.predictor.spec

    @property
    def classes(self) -> ClassTable:
        return self.predictor.classes

    @property
    def path(self) -> Path | None:
        return self.predictor.path

    @property
    def device(self) -> str:
        return self.predictor.device

    @property
    def meta(self) -> dict:
        return self.predictor.meta

    @property
    def class_names(self) -> list[str]:
        """Class names in class-id order."""
        return self.classes.names

    def __repr__(self) -> str:
        return f"<aerialseg.Model {self.spec.model} from {self.path}, classes {self.class_names}>"

    def predict(
        self,
        image: str | Path | np.ndarray,
        *,
        probabilities: bool = False,
        confidence: bool = False,
        tta: bool = False,
        bands: Sequence[int] | None = None,
        pixel_size: float | None = None,
        batch_size: int | None = None,
        overlap: float | None = None,
    ) -> Prediction:
        """Segment one image held in memory, as ``aerialseg predict`` segments a file.

        Args:
            image: a file (JPEG, PNG, TIFF, GeoTIFF), read whole as ``aerialseg predict``
                reads it (bands, 16-bit stretch, nodata), or an array, (H, W, bands) as
                ``numpy.asarray(PIL.Image.open(...))`` gives, or (H, W) for a one-band
                model. Arrays are read as files of the same data are: uint8 as it is,
                other integers and floats stretched per band, NaN and infinity as nodata;
                a float array whose values lie in 0..1 (give or take 0.5: resampling
                overshoots) is taken as 8-bit values / 255, and a list of whole numbers in
                0..255 as 8-bit values. A masked array's masked pixels, and a PIL image's
                transparent ones, are nodata. PIL decodes a JPEG a little differently from
                GDAL: pass the path for the classes ``aerialseg predict`` gives. Scenes too
                large for memory go to ``predict_files``.
            probabilities: also return the class probabilities.
            confidence: also return each pixel's confidence.
            tta: average over flips (3x the compute).
            bands: a file's 1-based bands to read (default: the model's, else RGB).
            pixel_size: read a georeferenced file resampled to this pixel size in CRS
                units (default: the model's, if it was trained at one).
            batch_size: windows per forward pass (default: as ``aerialseg predict``).
            overlap: window overlap share (default: the model's), as ``predict --overlap``.

        Returns:
            The class ids, and the probabilities and confidence if asked for.

        Raises:
            InputError: the file or array cannot be predicted as given (one-line reason).
        """
        import torch

        from aerialseg.data.raster import InputError

        check_arguments(Model.predict, locals(), skip=("image",))
        predictor = self.predictor.with_options(tta=tta, overlap=overlap, batch_size=batch_size)
        try:
            return self._predict(predictor, image, bands, pixel_size, probabilities, confidence)
        except (MemoryError, RuntimeError) as err:
            # torch's CPU allocator says so in a plain RuntimeError (a review), CUDA's in
            # torch.OutOfMemoryError, one of them
            cpu = "DefaultCPUAllocator: can't allocate memory" in str(err)
            if not isinstance(err, MemoryError | torch.OutOfMemoryError) and not cpu:
                raise
            shape = getattr(image, "shape", None)
            what = f"an array of shape {shape}" if shape is not None else str(image)
            raise InputError(
                f"{what}: too large to predict in memory; predict_files (aerialseg predict)"
                " reads a scene window by window"
            ) from None

    def _check_fits(self, pixels: int, probabilities: bool) -> None:
        """MemoryError where predicting ``pixels`` in memory needs more than this machine
        has: refused before allocating, where the system would grant it and kill the
        process once it is written. About 4 bytes a pixel for each band's float copy and 4
        for each class's blended score, 4x that with probabilities (their softmax, the
        calibrated copy): 36 and 108 bytes for the bundled model, measured at 35-55 and
        110-130 on 1,500 and 3,000 px arrays (ru_maxrss, 2026-12-06). It counted the float
        copy alone, a tenth of it with probabilities (a review)."""
        from aerialseg.files import physical_memory

        per_class = 4 * (4 if probabilities else 1)
        per_pixel = 4 * self.spec.in_channels + per_class * self.classes.num_classes
        if pixels * per_pixel > physical_memory():
            raise MemoryError

    def _predict(self, predictor, image, bands, pixel_size, probabilities, confidence):
        import torch

        from aerialseg.inference.predict import with_temperature
        from aerialseg.inference.run import check_row_band

        values, valid, place = self._read(image, bands, pixel_size, probabilities or confidence)
        name = os.fspath(image) if isinstance(image, str | os.PathLike) else "the array"
        size = (values.shape[2], values.shape[1])
        check_row_band(name, size, values.shape[0], self.spec, self.classes.num_classes)
        with torch.inference_mode():
            predicted = predictor.predict_image(
                values, valid, probabilities=probabilities or confidence
            )
            result = Prediction(predicted.ids, valid, crs=place[0], transform=place[1])
            if predicted.probs is not None:
                temperature = self.spec.confidence_temperature or 1.0
                scaled = with_temperature(predicted.probs, temperature)
                calibrated = scaled.float().cpu().numpy()
                calibrated[:, ~valid] = np.nan
                if probabilities:
                    result.probabilities = calibrated
                if confidence:
                    result.confidence = np.max(calibrated, axis=0)
        return result

    def _read(
        self,
        image: str | Path | np.ndarray,
        bands: Sequence[int] | None,
        pixel_size: float | None,
        probabilities: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, tuple]:
        """(bands, H, W) float32 values in 0..255, the (H, W) valid mask, and the CRS and
        transform of their grid (None and None but for a georeferenced file). MemoryError,
        before anything is read, where predicting it (``probabilities`` too) would not fit
        in this machine's memory."""
        from aerialseg.data.raster import InputError, band_numbers, check_band_count, is_url

        if isinstance(image, str | os.PathLike):
            from rasterio.windows import Window

            if image == "":  # Path("") is ".", which "is not a file"
                raise InputError("'': an empty path; name an image file")

            from aerialseg.inference.run import PredictOptions, _open

            chosen = band_numbers(bands, "bands=")
            check_band_count(chosen, self.spec.in_channels, "bands=")
            opts = PredictOptions(bands=chosen, pixel_size=pixel_size, band_flag="bands=")
            # a URL as written: Path folds its "//" ("http:/host/...", a missing file)
            with _open(image if is_url(image) else Path(image), opts, self.spec) as raster:
                self._check_fits(raster.height * raster.width, probabilities)
                values, valid = raster.read(Window(0, 0, raster.width, raster.height))
                grid = raster.dataset
                place = (grid.crs, grid.transform) if raster.georeferenced else (None, None)
                return values, valid, place
        import torch

        from aerialseg.data.raster import check_numbers, read_array

        if bands is not None or pixel_size is not None:
            raise InputError(
                "bands= and pixel_size= choose how a file is read; an array is taken as it"
                " is: pass the bands the model takes, at its pixel size"
            )
        if isinstance(image, bytes | bytearray | memoryview) or hasattr(image, "read"):
            raise InputError(
                f"a {type(image).__name__} (a file's contents): pass the file's path, or"
                " numpy.asarray(PIL.Image.open(io.BytesIO(data)))"
            )
        if isinstance(image, torch.Tensor):  # a tensor of a training step or a GPU
            image = image.detach().cpu()
            image = image.float() if image.dtype == torch.bfloat16 else image  # numpy lacks it
        from PIL import Image

        if isinstance(image, Image.Image):
            try:  # decoded here: a truncated JPEG raised PIL's OSError from numpy (a review)
                image.load()
            except (OSError, ValueError) as err:  # ValueError: a closed image
                name = getattr(image, "filename", "") or "the PIL image"
                said = "truncated or damaged" if isinstance(err, OSError) else "unreadable"
                raise InputError(f"{name}: the image is {said} ({err})") from None
            image = _pil_rgb_or_grey(image)  # once, for its mask and its pixels
        masked = _masked_pixels(image)
        array = _as_array(image)
        shape, want = array.shape, self.spec.in_channels  # the caller's, for messages
        check_numbers(array)  # before its shape: a string's shape says nothing
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3 or array.shape[2] != want or 0 in array.shape:
            first = array.ndim == 3 and array.shape[0] == want and array.shape[2] != want
            alpha = array.ndim == 3 and array.shape[2] == want + 1  # RGBA, as PIL gives it
            raise InputError(
                f"an array of shape {shape}: the model takes (height, width, {want})"
                " values: uint8, 16-bit or float (stretched as files are), or float in 0..1"
                + ("; this one has its bands first: transpose it to (1, 2, 0)" if first else "")
                + (
                    f"; if its last band is alpha, pass the PIL image, or the first {want}"
                    " bands as a numpy.ma.masked_array masked where alpha is 0"
                    if alpha
                    else ""
                )
            )
        self._check_fits(array.shape[0] * array.shape[1], probabilities)
        if masked is not None:  # nodata, out of the stretch; as a file reads it, 0 for uint8
            # (its hidden values reached the network and changed valid neighbours: a review)
            array = np.where(masked[:, :, None], 0 if array.dtype == np.uint8 else np.nan, array)
        values, valid = read_array(array.transpose(2, 0, 1))
        return values, valid if masked is None else valid & ~masked, (None, None)


def _masked_pixels(image) -> np.ndarray | None:
    """(H, W) True where a masked array masks a band, or a PIL image is transparent; None
    where nothing is masked. PIL's alpha is nodata as a PNG's alpha is in a file."""
    from PIL import Image

    if isinstance(image, Image.Image) and "A" in image.getbands():
        return np.asarray(image.getchannel("A")) == 0
    if isinstance(image, np.ma.MaskedArray) and np.ma.getmask(image) is not np.ma.nomask:
        mask = np.asarray(np.ma.getmaskarray(image))
        return np.asarray(mask.any(axis=2)) if mask.ndim == 3 else mask
    return None


def _pil_rgb_or_grey(image):
    """A PIL image in a mode whose bands are colours and alpha: a palette as its colours
    (and their transparency as alpha), premultiplied alpha as plain, another colour space
    (YCbCr, HSV, LAB, CMYK, RGBX) as the RGB a viewer shows, bilevel as grey, the rest
    (RGB, RGBA, greys of any depth) as it is."""
    plain = {"P": "RGBA", "PA": "RGBA", "RGBa": "RGBA", "La": "LA", "1": "L"}
    if image.mode in plain:
        return image.convert(plain[image.mode])
    if "transparency" in image.info:  # one colour (or grey) transparent
        return image.convert("RGBA" if image.mode == "RGB" else "LA")
    if len(image.getbands()) > 2 and image.mode not in ("RGB", "RGBA"):
        return image.convert("RGB")  # its bands are no R, G and B (a review: YCbCr was)
    return image


def _as_array(image) -> np.ndarray:
    """An image as a numpy array: a PIL image without its alpha band, a masked array's
    data, and a list of whole numbers in 0..255 as uint8, as a PNG of them reads."""
    from PIL import Image

    from aerialseg.data.raster import InputError

    if isinstance(image, Image.Image) and "A" in image.getbands():
        image = image.convert("RGB" if len(image.getbands()) > 2 else "L")
    if isinstance(image, np.ma.MaskedArray):
        return np.ma.getdata(image)
    try:
        array = np.asarray(image)
    except ValueError as err:  # a ragged list, say
        raise InputError(
            f"a {type(image).__name__} numpy cannot read as an array ({err})"
        ) from None
    listed = isinstance(image, list | tuple) and array.dtype.kind in "iu" and array.size > 0
    if listed and array.min() >= 0 and array.max() <= 255:
        array = array.astype(np.uint8)
    return array


@speaks_python
def load_model(
    path: str | Path | None = None, *, device: Device = "auto", precision: Precision = "auto"
) -> Model:
    """Load a model file for prediction.

    Args:
        path: a ``model.pt`` or ``.ckpt`` written by ``aerialseg train``, or an ``.onnx``
            file from ``aerialseg export`` (run on ONNX Runtime's CPU, in fp32); None or
            ``"default"``: the model bundled with the package (trained on the Dubai dataset).
        device: ``auto`` picks a CUDA GPU where there is one.
        precision: ``auto`` runs bf16 on CPUs that compute it natively, else fp32.

    Returns:
        The model, its batch norms folded into the convolutions (the same predictions).

    Raises:
        ModelFileError: the file is not an aerialseg model.
        ConfigError: a device or precision that is none of those named.
    """
    from aerialseg.inference.load import load_predictor

    check_arguments(load_model, locals())

    return Model(load_predictor(path, device=device, precision=precision))


def _predictor(model: str | os.PathLike | Model | None, engine: str, device: str, precision: str):
    """A loaded Model's predictor (its file again on ONNX Runtime), or load_predictor's."""
    from aerialseg.inference.load import load_predictor

    if isinstance(model, Model):
        if engine != "onnx":
            return _as_loaded(model, device, precision)
        model = model.path
    return load_predictor(model, engine=engine, device=device, precision=precision)


def _as_loaded(model: Model, device: str, precision: str) -> Predictor:
    """A loaded Model's predictor, which runs where and as it was loaded: a device or
    precision asked otherwise is an error, not ignored (a review: device='cuda' ran on
    the CPU without a word)."""
    loaded = {"device": model.device.split(":")[0], "precision": model.predictor.precision}
    for name, asked in (("device", device), ("precision", precision)):
        if asked != "auto" and asked != loaded[name]:
            raise ConfigError(
                f"{name}={asked!r}: the model was loaded for {loaded[name]}; load it with"
                f" load_model(..., {name}={asked!r}), or pass its path"
            )
    return model.predictor


@speaks_python
def predict_files(
    inputs: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    model: str | Path | Model | None = None,
    engine: Literal["torch", "onnx"] = "torch",
    device: Device = "auto",
    format: Literal["auto", "tif", "png"] = "auto",
    color: bool = False,
    overlay: bool = False,
    confidence: bool = False,
    areas: bool = True,
    vector: Literal["geojson", "gpkg"] | None = None,
    simplify: float = 0.0,
    min_area: float | None = None,
    bands: Sequence[int] | None = None,
    pixel_size: PositiveFloat | None = None,
    tta: bool = False,
    overlap: float | None = None,
    batch_size: int | None = None,
    shard: str | None = None,
    ray: str | None = None,
    ray_workers: int | None = None,
    block_megapixels: PositiveFloat = BLOCK_MEGAPIXELS,
    precision: Precision = "auto",
) -> PredictSummary | RaySummary:
    """Segment images of any size (JPEG, PNG, TIFF, GeoTIFF): ``aerialseg predict``.

    Predicts every input at native resolution, window by window with bounded memory. Per
    input NAME (its file name; inputs of one name from different folders get their
    folders in it) it writes OUT/NAME_classes.{tif,png} (class ids, or the class table's
    mask values, with a colour table; GeoTIFF is Cloud Optimized, with overviews, and keeps
    CRS, transform and nodata) and NAME_areas.{csv,json}; optionally a colour mask, an
    overlay PNG, a confidence raster and polygons. 16-bit and float inputs are stretched
    per band from their 2nd to 98th percentile to 0..255.

    Args:
        inputs: files, folders or glob patterns.
        out: the output folder (made if missing).
        model: model.pt (or its run folder), .ckpt or exported .onnx (default: the
            bundled model). In Python: also a loaded ``Model``.
        engine: onnx: ONNX Runtime on the CPU, faster there; a .pt model is exported first.
        device: where the network runs; auto: a CUDA GPU if there is one, else the CPU.
        format: class raster format; auto: GeoTIFF for georeferenced or TIFF input, else
            PNG.
        color: also write a colour mask.
        overlay: also write an overlay PNG.
        confidence: also write NAME_confidence: each pixel's blended probability of its
            class, in percent (0-100; 255: nodata), to find where the model is unsure.
        areas: write the per-class area table.
        vector: also write polygons.
        simplify: smooth away polygon details smaller than this many metres (pixels for a
            plain image): the square root of their area, as shapely's coverage_simplify
            counts it; all polygons are simplified together, so neighbours keep their
            shared edges.
        min_area: with ``vector``, merge regions smaller than this into their largest
            neighbour, in the class raster and the polygons alike, in m² in any CRS (pixels
            for a plain image; default: the area of 4 pixels, which drops specks of 1-3
            pixels; 0 keeps all). GDAL's sieve: a region merges only into a neighbour of
            that size or more, so one among regions all smaller stays. It applies to the
            regions before ``simplify``, whose smoothing may leave a polygon's area (its
            ``area_m2``) a little under it: the polygons still cover every classed pixel.
        bands: 1-based band numbers to read, as many as the model takes, e.g. 4,3,2
            (default: the bands the model was trained on, else 1-3 of an RGB or RGBA
            raster).
        pixel_size: predict georeferenced inputs on pixels of this size in CRS units (e.g.
            0.5 m), resampled, and write the outputs on that grid (default: the model's
            pixel_size, else the data's own).
        tta: average over flips (3x slower).
        overlap: window overlap share (default: the model's).
        batch_size: windows per forward pass (default on a CPU: 2 in bf16, 1 in fp32; 8 on
            a GPU).
        shard: "I/N": predict only inputs I, I+N, ... (0-based), to split a folder across
            processes.
        ray: predict on Ray workers (pip install 'aerialseg[ray]'): "local" for a Ray on
            this machine, or a cluster's address ("auto", "ray://HOST:PORT"); ``out`` must
            be a folder every worker sees. Resumable: a second run skips the scenes already
            done.
        ray_workers: with ``ray``: workers, each loading the model once (default: one per GPU
            of the cluster, else one per as many CPUs as torch uses threads here: each
            worker computes with this process's threads, for the same bytes).
        block_megapixels: with ``ray``: scenes larger than this are split into row blocks
            predicted by several workers; the outputs are the same.
        precision: PyTorch arithmetic; auto: bf16 on a CPU that computes it natively
            (AVX512-BF16 or AMX: faster, same accuracy), else fp32.

    Returns:
        The files written per input (``done``) and the reason per input that failed
        (``failed``); a bad input is skipped, the others are still predicted. With ``ray``,
        a ``RaySummary``, which also counts the pixels, seconds, retries and skipped scenes.
    """
    check_arguments(predict_files, locals())
    from aerialseg.data.raster import band_numbers, check_band_count
    from aerialseg.inference.run import PredictOptions, named_inputs, uncalibrated_note
    from aerialseg.inference.run import predict_files as predict_all
    from aerialseg.inference.run import shard as take_shard

    ray_options = {"--ray-workers": ray_workers is not None}
    ray_options["--block-megapixels"] = block_megapixels != BLOCK_MEGAPIXELS
    for name, given in ray_options.items():
        if ray is None and given:  # not ignored without a word (a review)
            raise AerialsegError(f"{name} shares the work among Ray's workers: give --ray too")
    if ray_workers is not None and ray_workers < 1:  # a review: 0 was taken without --ray
        raise ConfigError(f"--ray-workers {ray_workers}: give 1 or more workers")
    items = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    extra = {"areas": areas, "color": color, "overlay": overlay, "confidence": confidence}
    opts = PredictOptions(
        outputs=frozenset({"classes"} | {kind for kind, on in extra.items() if on}),
        class_format=format,
        vector=vector,
        simplify=simplify,
        min_area=min_area,
        bands=band_numbers(bands),
        pixel_size=pixel_size,
        tta=tta,
        batch_size=batch_size,
        overlap=overlap,
    )
    if ray is not None:
        if shard is not None:
            raise AerialsegError("--ray hands scenes out itself; drop --shard")
        ray_on = (ray, ray_workers, block_megapixels)
        return _predict_on_ray(
            [os.fspath(i) for i in items], out, model, engine, device, precision, opts, ray_on
        )
    every_input, names = named_inputs([os.fspath(item) for item in items], out)
    chosen = take_shard(every_input, shard)
    if not chosen:
        raise AerialsegError("no input images found; give files, folders or glob patterns")
    predictor = _predictor(model, engine, "cpu" if engine == "onnx" else device, precision)
    check_band_count(opts.bands, predictor.spec.in_channels, "--bands")
    _note(uncalibrated_note(str(predictor.path or "the model"), predictor.spec, opts))
    # names over every input, not the shard's: shards writing to one folder never collide
    out = Path(out)
    created = not out.exists()
    summary = predict_all(predictor, chosen, out, opts, names)
    # Every input failed: leave no empty folder behind. Not when sharded: another shard may
    # be about to write into it.
    if created and not summary.done and shard is None and not any(out.iterdir()):
        out.rmdir()
    return summary


def _check_share(value: float | None, name: str) -> None:
    """A share of pixels, from 0 to 1 (None: the default)."""
    if value is not None and not 0 <= value <= 1:
        raise ConfigError(f"{name} {value!r}: give a share from 0 to 1, e.g. 0.05")


def _note(line: str | None) -> None:
    """A warning line on stderr, as the CLI prints its own."""
    if line:
        print(f"aerialseg: {line}", file=sys.stderr)


def _predict_on_ray(items, out, model, engine, device, precision, opts, ray_on) -> RaySummary:
    """predict_files(ray=...): the same outputs, from Ray workers."""
    from aerialseg.data.raster import check_band_count
    from aerialseg.inference.distributed import (
        RaySettings,
        WorkerModel,
        predict_on_ray,
        ray_inputs,
    )
    from aerialseg.inference.load import load_predictor
    from aerialseg.inference.run import uncalibrated_note

    address, workers, block_megapixels = ray_on
    inputs, names = ray_inputs(items, out)
    if not inputs:
        raise AerialsegError("no input images found; give files, folders, glob patterns or URLs")
    path = model_path(model.path if isinstance(model, Model) else model)
    # Loaded here once too, so that a bad model file is one line before Ray starts.
    spec = load_predictor(path, device="cpu", precision="fp32").spec  # .onnx: on ORT
    check_band_count(opts.bands, spec.in_channels, "--bands")
    _note(uncalibrated_note(str(path), spec, opts))
    worker = WorkerModel(str(path.resolve()), engine, device, precision)
    where = RaySettings(
        address=None if address == "local" else address,
        workers=workers,
        block_pixels=block_megapixels * 1e6,
    )
    out = Path(out)
    created = not out.exists()
    summary = predict_on_ray(worker, path, inputs, out, opts, names, where)
    if created and not summary.done and not any(out.iterdir()):
        out.rmdir()
    return summary


@speaks_python
def training_config(
    *,
    preset: PresetName = "default",
    config: str | Path | None = None,
    settings: Mapping[str, Any] | None = None,
    resume: str | Path | None = None,
) -> TrainConfig:
    """The settings a run would train with: the preset, then the YAML ``config``, then
    ``settings`` (e.g. ``{"max_epochs": 5, "crop_size": 384}``), each over the last.

    Args:
        preset: ``default`` (FPN on a pretrained encoder), ``seed`` (the first notebook),
            ``smoke`` (the default for 4 steps, validated on one image: a set-up checked
            end to end in seconds) or ``finetune`` (the bundled model, or ``init_from``'s,
            fine-tuned on a few images of a new region); ``aerialseg train
            --list-settings`` gives each one's settings and why.
        config: a YAML file of settings.
        settings: settings by name; ``aerialseg train --print-config`` lists them all.
        resume: a run folder whose saved settings replace the preset and ``config``.

    Raises:
        ConfigError: an unknown setting or a value of the wrong type.
    """
    from aerialseg.training.config import resolve_config

    if resume is not None:
        saved = Path(resume) / "config.yaml"
        if not saved.is_file():
            raise AerialsegError(f"{resume}: nothing to resume (no config.yaml): not a run folder")
        if preset != "default" or config is not None:  # they were silently ignored
            raise AerialsegError(
                "--resume continues with the run's saved settings; --preset and --config do"
                " not apply: give what should change as key=value"
            )
        preset, config = "default", saved
    return resolve_config(preset, config, settings=settings)


def launch_settings(
    max_time=None, devices=None, num_nodes=None, accelerator=None, resize_masks=False
) -> dict:
    """train's options that are settings too (``max_time=``, ...), those given, as
    settings: for the run, and for ``train --print-config``."""
    from aerialseg.training.config import duration_text

    budget = duration_text(max_time) if max_time is not None else None
    launch = {"max_time": budget, "devices": devices, "num_nodes": num_nodes}
    launch |= {"accelerator": accelerator, "resize_masks": resize_masks or None}
    return {key: value for key, value in launch.items() if value is not None}


def label_spec(
    labels: str | Path | None,
    field: str | None = None,
    crs: str | None = None,
    labelled_area: str | Path | None = None,
) -> LabelSpec | None:
    """The labels over image rasters of a command's arguments (polygons or a class
    raster); None without ``labels``."""
    from aerialseg.data.catalog import LabelSpec

    if labels is None:
        for flag, value in (("--label-field", field), ("--label-crs", crs)):
            if value is not None:
                raise AerialsegError(f"{flag} describes polygon labels: give them with --labels")
        if labelled_area is not None:
            raise AerialsegError(
                "--labelled-area goes with polygon labels: give them with --labels"
            )
        return None
    area = os.fspath(labelled_area) if labelled_area is not None else None
    return LabelSpec(os.fspath(labels), field, crs, area)


def _step_cap(cfg: TrainConfig) -> list:
    """A callback that caps the run at $AERIALSEG_MAX_STEPS steps, if it is set; [] if not.
    The trainer's limit, not the run's settings: a capped run's config.yaml kept the cap,
    and a --resume without the variable stopped there again, unannounced (a review)."""
    import lightning as L

    text = os.environ.get(MAX_STEPS_ENV)
    if not text:
        return []
    try:
        cap = int(text)
    except ValueError:
        raise ConfigError(f"{MAX_STEPS_ENV}={text!r}: give a number of steps") from None
    steps = cap if cfg.max_steps < 0 else min(cfg.max_steps, cap)
    print(f"aerialseg: {MAX_STEPS_ENV}={cap}: training stops after {steps} steps", file=sys.stderr)

    class StepCap(L.Callback):
        def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            trainer.fit_loop.epoch_loop.max_steps = steps

    return [StepCap()]


@speaks_python
def train(
    data: str | Path,
    out: str | Path = "runs/latest",
    *,
    preset: PresetName = "default",
    config: str | Path | None = None,
    settings: Mapping[str, Any] | None = None,
    split: str | Path | None = None,
    classes: str | Path | ClassTable | None = None,
    labels: str | Path | None = None,
    label_field: str | None = None,
    label_crs: str | None = None,
    labelled_area: str | Path | None = None,
    resize_masks: bool = False,
    resume: bool = False,
    resume_from: Literal["last", "best"] | None = None,
    max_time: str | float | timedelta | None = None,
    devices: int | None = None,
    num_nodes: int | None = None,
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] | None = None,
    callbacks: Sequence[Any] = (),
    transforms: Callable | None = None,
    started: float | None = None,
) -> Path:
    """Train a model into a run folder: ``aerialseg train``.

    Settings come from a preset, then ``config``, then ``settings`` (on the command line
    key=value pairs after the options, e.g. max_epochs=5 lr=3e-4 crop_size=384); ``aerialseg
    train --list-settings`` lists them all and --print-config shows the values a run would
    take. ``max_time`` bounds the whole command; the run ends with a summary and the
    commands to run next.

    Args:
        data: the dataset: a folder of images/ and masks/ (flat, or in tile folders such as
            the Dubai set's 'Tile 1/'; also image/+mask/, images/+labels/, img/+gt/), a zip
            of one such as the Dubai set's Kaggle archive.zip, or a manifest (CSV
            'image,label' or YAML) naming the pairs; with ``labels``, image rasters.
        out: the run folder (config, split, checkpoints, logs, model.pt).
        preset: default: FPN on a pretrained encoder, native-resolution crops; seed: the
            original notebook; smoke: the default for 4 steps, validated on one image, to
            check a set-up end to end in seconds; finetune: the bundled model (or
            init_from's) fine-tuned on a few images of a new region, stopped when
            validation on them stops improving ('train --list-settings' gives why).
        config: YAML file of settings (as --print-config writes).
        settings: settings by name over the preset and ``config``, e.g.
            ``{"max_epochs": 5, "bands": [3, 2, 1]}``.
        split: split JSON (a 'test' list, optional 'val' and 'train' lists), e.g. from
            'aerialseg data split'; default: the Dubai benchmark's rule (image_part_002/005/007
            of each tile held out), or every image not held out.
        classes: class table (a JSON/YAML file): each class's name and mask colour or mask
            value; default: the Dubai set's six classes. In Python: also a ``ClassTable``.
        labels: class polygons (GeoPackage, Shapefile, GeoJSON or FlatGeobuf) over image
            rasters: ``data`` then names those (a GeoTIFF or COG, a folder of them, a glob,
            or a URL GDAL reads).
        label_field: the polygons' attribute giving each one's class, matched to the class
            table by class name or mask_value.
        label_crs: the polygons' CRS, e.g. EPSG:32640, for a file that lacks it (a GeoJSON
            without 'crs' is read as WGS84) or says a wrong one: it replaces the file's.
        labelled_area: polygons of where the labels hold (default: every image's extent; needed
            where no class is the background);
            pixels outside are left out, pixels inside that no polygon covers get the
            background class.
        resize_masks: resample masks without a georeference (PNG, JPEG) of another size
            than their image to its size, nearest (default: such a pair is an error; 'data
            inspect' lists them); the setting resize_masks.
        resume: continue the run in ``out`` from its last checkpoint, with its saved
            settings, classes and split (``settings`` still apply over them).
        resume_from: continue the run in ``out`` from this checkpoint (best: e.g. when
            last.ckpt is damaged); implies ``resume``.
        max_time: wall-clock budget of the whole command (loading, training, the last
            validation, calibration): "HH:MM:SS" or seconds; the setting max_time. In
            Python: a ``datetime.timedelta`` too.
        devices: devices (GPUs, or CPU processes) for DDP.
        num_nodes: machines for DDP.
        accelerator: what trains; auto (the default): a GPU if there is one, else the CPU.
        callbacks: Lightning callbacks added to the run's own (checkpoints, early stop,
            EMA, time budget), e.g. a logger of your own or a profiler.
        transforms: a torchvision v2 transform of each training pair
            ``(tv_tensors.Image, tv_tensors.Mask)``, applied after the crop and the
            built-in augmentation: ``image`` is (bands, H, W) uint8, ``mask`` (H, W)
            uint8 class ids with 255 for unlabelled pixels. It returns the pair, at the
            size and of the types it was given (else a ConfigError before training).
        started: ``time.monotonic()`` when the work began, which ``max_time`` counts from
            (None: now).

    Returns:
        The path of the trained model file, ``out/model.pt``.

    Raises:
        DatasetError: the data cannot be read as a dataset (one-line reason).
        ConfigError: an unknown setting or a bad value.
    """
    check_arguments(train, locals(), ("settings", "callbacks", "transforms", "started"))
    from aerialseg.errors import shown
    from aerialseg.training.run import train as run_training

    # what the options' definition cannot check: a list of objects, a function (a review:
    # callbacks=5 and transforms=5 were TypeErrors, the latter mid-run)
    if isinstance(callbacks, str | bytes) or not isinstance(callbacks, Sequence):
        raise ConfigError(f"callbacks={shown(callbacks)}: give a list of Lightning callbacks")
    if transforms is not None and not callable(transforms):
        raise ConfigError(f"transforms={shown(transforms)}: give a function of a sample")
    from lightning.pytorch.callbacks import Callback

    stray = next((c for c in callbacks if not isinstance(c, Callback)), None)
    if stray is not None:  # a review: callbacks=[5] failed in Lightning, after loading
        raise ConfigError(f"callbacks: {shown(stray)} is not a Lightning callback")
    if started is not None and (
        isinstance(started, bool) or not isinstance(started, Real) or not math.isfinite(started)
    ):  # a review: started="now" failed 17 frames deep, after 5 s of training
        raise ConfigError(f"started={shown(started)}: give time.monotonic() when the work began")

    resume = resume or resume_from is not None
    given = launch_settings(max_time, devices, num_nodes, accelerator, resize_masks)
    run_dir = Path(out)
    cfg = training_config(
        preset=preset,
        config=config,
        # what is no mapping, a list of pairs, is refused there (a review: a TypeError here)
        settings=({**settings, **given} if isinstance(settings, Mapping) else settings)
        if settings is not None
        else given,
        resume=run_dir if resume else None,
    )
    if resume and (split is not None or classes is not None):  # they were silently ignored
        raise AerialsegError(
            f"--resume continues with the run's saved split and class table ({run_dir}/"
            "split.json, classes.json); drop --split and --classes"
        )
    table = _class_table(run_dir / "classes.json" if resume else classes)
    capped = _step_cap(cfg)  # before anything is written: a bad value is one line
    return run_training(
        cfg,
        data,
        run_dir,
        split_file=os.fspath(split) if split else None,
        classes=table,
        labels=label_spec(labels, label_field, label_crs, labelled_area),
        resume=resume,
        resume_from=resume_from or "last",
        extra_callbacks=[*capped, *callbacks],
        extra_transform=transforms,
        started=started,
    )


@speaks_python
def evaluate(
    model: str | Path | Model,
    data: str | Path,
    *,
    split: Literal["train", "val", "test", "all"] = "test",
    split_file: str | Path | None = None,
    classes: str | Path | ClassTable | None = None,
    max_unknown: float | None = None,
    resize_masks: bool = False,
    labels: str | Path | None = None,
    label_field: str | None = None,
    label_crs: str | None = None,
    labelled_area: str | Path | None = None,
    out: str | Path | None = None,
    device: Device = "auto",
    batch_size: int | None = None,
    tta: bool = False,
    pixel_size: PositiveFloat | None = None,
    bands: Sequence[int] | None = None,
    precision: Precision = "auto",
) -> dict:
    """Score a model on a split (PROTOCOL.md metrics): ``aerialseg evaluate``.

    Predicts every image of a split at native resolution and writes metrics.json,
    confusion.png and panels.png.

    Args:
        model: model.pt, a .ckpt from a run folder, an .onnx from aerialseg export (scored
            on ONNX Runtime), or 'default' for the bundled model. In Python: also a loaded
            ``Model``.
        data: the dataset, as for ``train``.
        split: which images of the split to score; all: every image of the dataset, no
            split file needed.
        split_file: split JSON (a 'test' list, optional 'val' and 'train' lists), e.g. from
            'aerialseg data split'; a run folder's split.json scores its own; a file of only
            the images scored will do (default: the Dubai benchmark's rule).
        classes: the dataset's class table (a JSON/YAML file) where its masks are not in
            the model's colours or values; its classes are matched to the model's by name,
            and metrics.json says which are scored (default: the model's table). In
            Python: also a ``ClassTable``.
        max_unknown: largest share of a mask in unknown colours before it is an error
            (default: the model's max_unknown, 0.05 unless trained otherwise).
        resize_masks: resample masks without a georeference (PNG, JPEG) of another size
            than their image to its size, nearest (default: such a pair is an error; 'data
            inspect' lists them).
        labels: class polygons over image rasters, as for ``train``; with a block split
            only the split's blocks are scored.
        label_field: the polygons' attribute giving each one's class.
        label_crs: the polygons' CRS, replacing what their file says (or lacks).
        labelled_area: polygons of where the labels hold (default: every image's extent; needed
            where no class is the background).
        out: output folder (default: eval-SPLIT beside the model file, or in the working
            folder for the bundled model).
        device: where the network runs; auto: a CUDA GPU if there is one, else the CPU.
        batch_size: windows per forward pass (default on a CPU: 2 in bf16, 1 in fp32; 8 on
            a GPU).
        tta: score predict --tta's flip average.
        pixel_size: score a georeferenced dataset on pixels of this size in CRS units,
            images and masks resampled (default: the model's pixel_size, else the data's
            own).
        bands: the images' 1-based bands to read, as many as the model takes, e.g. 1,1,1
            for grey images (default: the bands the model was trained on, else RGB).
        precision: PyTorch arithmetic; auto: bf16 on a CPU that computes it natively, else
            fp32.

    Returns:
        The report saved as ``metrics.json``: ``miou6``/``miou5`` (or ``miou``),
        ``pixel_accuracy``, ``mean_dice``, ``per_class``, ``per_image``, ``confidence``, ...
    """
    check_arguments(evaluate, locals())
    _check_share(max_unknown, "max_unknown")
    from aerialseg.data.classes import ClassTable
    from aerialseg.data.raster import band_numbers, check_band_count
    from aerialseg.evaluation.evaluate import evaluate as score
    from aerialseg.models.io import is_onnx_file

    onnx = not isinstance(model, Model) and is_onnx_file(model_path(model))
    if onnx and (precision == "bf16" or device == "cuda"):
        raise AerialsegError("an ONNX model is scored on ONNX Runtime's CPU, in fp32")
    predictor = _predictor(model, "torch", device, precision)
    predictor = predictor.with_options(tta=tta, batch_size=batch_size)
    chosen = band_numbers(bands)
    check_band_count(chosen, predictor.spec.in_channels, "--bands")
    return score(
        predictor,
        data,
        Path(out) if out else evaluation_folder(predictor.path, split),
        split_name=split,
        split_file=os.fspath(split_file) if split_file else None,
        pixel_size=pixel_size,
        labels=label_spec(labels, label_field, label_crs, labelled_area),
        classes=ClassTable.from_file(classes) if isinstance(classes, str | Path) else classes,
        max_unknown=max_unknown,
        resize_masks=resize_masks,
        bands=chosen,
    )


def evaluation_folder(model_file: Path | None, split: str) -> Path:
    """Where evaluate writes without ``out``: eval-SPLIT beside a model file (a run's
    folder), but in the working folder for the bundled model, which lies in the installed
    package, and for a model held only in memory."""
    from aerialseg.models.io import bundled_model_path  # which may not exist: no error

    if model_file is None or model_file.resolve() == bundled_model_path().resolve():
        return Path(f"eval-{split}")
    return model_file.parent / f"eval-{split}"


@speaks_python
def export(
    model: str | Path | Model | None,
    onnx: str | Path,
    *,
    check_image: str | Path | None = None,
    bands: Sequence[int] | None = None,
) -> float:
    """Export a model to ONNX, checked against PyTorch: ``aerialseg export``.

    Writes an ONNX model with dynamic batch, height and width; the export is run on
    onnxruntime and compared with PyTorch.

    Args:
        model: model.pt (or its run folder) or .ckpt, or 'default' for the bundled model,
            or a model ``load_model`` loaded from one of them (its file is exported).
        onnx: the .onnx file to write (the model's classes, bands and settings in its
            metadata).
        check_image: an image whose first 512 x 512 px check ONNX Runtime against
            PyTorch (default: a built pattern).
        bands: the check image's 1-based bands to read, as many as the model takes,
            e.g. 4,3,2 (default: the bands the model was trained on, else RGB).

    Returns:
        The largest difference of a class probability, ONNX Runtime against PyTorch.

    Raises:
        ModelFileError: the file is not an aerialseg model.
        InputError: the check image cannot be read.
        AerialsegError: ``onnx`` is not a NAME.onnx file path, ``bands`` without
            ``check_image``, or ONNX Runtime's probabilities differ from PyTorch's by
            more than 1e-3 (no file is written).
    """
    check_arguments(export, locals())
    from aerialseg.models.export import export_onnx

    # models are known as ONNX by their suffix: another would not load as one
    if Path(onnx).suffix.lower() != ".onnx" or Path(onnx).is_dir():
        raise AerialsegError(f"--onnx {onnx}: name the file to write NAME.onnx")
    from aerialseg.models.io import load_model as load_file

    if bands is not None and check_image is None:
        raise AerialsegError("--bands: give it with --check-image, whose bands it chooses")
    if isinstance(model, Model):  # a review: refused, where predict_files takes one
        if model.path is None or Path(model.path).suffix.lower() == ".onnx":
            raise AerialsegError(f"{model!r}: export takes a model loaded from a model file")
        model = model.path
    loaded = load_file(model_path(model))  # as saved: batch norms are ONNX Runtime's to fold
    check = None
    if check_image is not None:
        from rasterio.windows import Window

        from aerialseg.data.raster import band_numbers, check_band_count, open_input

        chosen = band_numbers(bands)
        check_band_count(chosen, loaded.spec.in_channels, "--bands")
        with open_input(check_image, chosen or loaded.spec.band_tuple) as raster:
            window = Window(0, 0, min(raster.width, 512), min(raster.height, 512))
            values, _ = raster.read(window)
        check = values.transpose(1, 2, 0).astype("uint8")
    return export_onnx(loaded, Path(onnx), check)


@dataclass
class Suggestions:
    """What ``suggest`` wrote and chose.

    Attributes:
        files: the files written: ``tasks`` (the GeoPackage), ``tasks_style`` (its .qml),
            ``classes`` (the model's class table) and, for georeferenced scenes,
            ``labelled_area``.
        tasks: one dict per task, best first: rank, scene, score and its parts, reason.
        candidates: how many blocks could have been suggested.
        pixel_size: the pixel size georeferenced scenes were read at, the tasks' grid:
            ``pixel_size``, else the model's (None: each scene's own).
    """

    files: dict[str, Path]
    tasks: list[dict]
    candidates: int
    pixel_size: float | None = None


@speaks_python
def suggest(
    scenes: str | Path | Sequence[str | Path],
    out: str | Path = "tasks.gpkg",
    *,
    model: str | Path | Model | None = None,
    count: int = 20,
    block_size: str | int = 256,
    strategy: Literal["mixed", "doubt", "random"] = "mixed",
    min_distance: str | float | None = None,
    labels: str | Path | None = None,
    label_field: str = "class",
    labelled_area: str | Path | None = None,
    label_crs: str | None = None,
    prelabel: bool = False,
    seed: int = 0,
    bands: Sequence[int] | None = None,
    pixel_size: float | None = None,
    batch_size: int | None = None,
    device: Device = "auto",
    precision: Precision = "auto",
) -> Suggestions:
    """Choose the blocks worth labelling next: ``aerialseg suggest``.

    Predicts the scenes, cuts them into blocks, and ranks the blocks no label covers yet
    by the model's doubt (its calibrated confidence), the mix of classes in them and how
    rare those classes are, keeping chosen blocks apart; docs/suggest.md says how.

    Args:
        scenes: image rasters: files, folders or glob patterns (GeoTIFFs, or plain
            images, whose blocks are then image windows in pixel coordinates).
        out: the tasks GeoPackage to write (``.gpkg``); beside it ``NAME.qml``,
            ``NAME_classes.json`` (the model's class table, which the labels are read
            with) and, for georeferenced scenes, ``NAME_labelled_area.gpkg``.
        model: a model file with confidence calibration; default: the bundled model.
        count: how many tasks to suggest.
        block_size: a task's side: pixels (``256``) or metres (``"100m"``, in any
            projected CRS; a geographic one takes pixels).
        strategy: ``mixed`` (doubt, class mix and rarity), ``doubt`` (doubt alone) or
            ``random`` (a seeded draw: the baseline).
        min_distance: the least distance between tasks' centres, as ``block_size``
            (default: two blocks; 0: none).
        labels: polygon labels made already: their polygons are never suggested again.
        label_field: the attribute of ``labels`` naming each polygon's class (checked
            here, its values against the model's classes, as the fine-tune commands that
            ``aerialseg suggest`` prints read them; labels of classes of another table can
            be given as ``labelled_area``, which is read as an area only).
        labelled_area: polygons of the area labelled already: never suggested again.
        label_crs: the CRS of ``labels``, replacing what their file says (or lacks), and
            of ``labelled_area`` where its file lacks one.
        prelabel: also write the model's polygons inside each task (layer 'prelabel'),
            for labellers to correct rather than draw.
        seed: the draw of the ``random`` strategy.
        bands: 1-based bands to read, as many as the model takes (default: the model's).
        pixel_size: predict georeferenced scenes resampled to this pixel size.
        batch_size: windows per forward pass.
        device: ``auto`` picks a CUDA GPU where there is one.
        precision: ``auto`` runs bf16 on CPUs that compute it natively, else fp32.

    Returns:
        The files written and the tasks, best first.

    Raises:
        SuggestError: no model calibration, more tasks than blocks, labels that lie
            outside every scene, ... (one-line reason).
    """
    check_arguments(suggest, locals())
    from aerialseg.data.polygons import parse_crs, read_area
    from aerialseg.data.raster import band_numbers, check_band_count
    from aerialseg.files import finish_sets, sweep
    from aerialseg.inference.doubt import SuggestError
    from aerialseg.inference.load import load_predictor
    from aerialseg.inference.run import PredictOptions, _open, named_inputs
    from aerialseg.inference.suggest import SuggestOptions, check_calibrated, suggest_scenes
    from aerialseg.inference.tasks import check_outputs_apart, write_tasks

    out = Path(out)
    if out.suffix.lower() != ".gpkg" or out.is_dir():
        raise SuggestError(f"{out}: the tasks are a GeoPackage; name the file NAME.gpkg")
    if count < 1:
        raise SuggestError(f"--count {count}: ask for at least one task")
    if seed < 0:  # numpy's generators take none (a review: refused after every prediction)
        raise SuggestError(f"--seed {seed}: give 0 or more")
    items = [scenes] if isinstance(scenes, str | os.PathLike) else list(scenes)
    inputs = named_inputs([os.fspath(item) for item in items])[0]  # URLs kept as they are
    if not inputs:
        raise SuggestError("no scenes found; give image files, folders or glob patterns")
    # the tasks' CRS is the first scene's: the first given, not the first by name (a review:
    # feet2263.tif before utm.tif put Dubai's tasks in New York's State Plane, in feet)
    first = named_inputs([os.fspath(items[0])])[0][:1]
    inputs = [*first, *(path for path in inputs if path not in first)]
    check_outputs_apart(out, [labels, *inputs], labelled_area)
    finish_sets(out.parent)  # what a killed suggest left half renamed, then its temporaries
    sweep(out.parent)
    if isinstance(model, Model):
        predictor = _as_loaded(model, device, precision).with_options(batch_size=batch_size)
    else:
        predictor = load_predictor(model, device=device, precision=precision, batch_size=batch_size)
    # their class names checked here, as the printed split reads them (a review: a label
    # the model's class table lacks failed only there)
    labelled = (
        {
            f"{printable(labels)} (labels)": read_area(
                labels, label_crs, field=label_field, classes=predictor.classes
            )
        }
        if labels is not None
        else {}
    )
    if labelled_area is not None:  # its own CRS stands, as in training
        labelled[f"{printable(labelled_area)} (labelled area)"] = read_area(
            labelled_area, fallback=parse_crs(label_crs) if label_crs else None
        )
    check_calibrated(predictor.spec.confidence_temperature, str(predictor.path))
    chosen = band_numbers(bands)
    check_band_count(chosen, predictor.spec.in_channels, "--bands")
    read = PredictOptions(bands=chosen, pixel_size=pixel_size)
    opts = SuggestOptions(
        count=count,
        block_size=str(block_size),
        strategy=strategy,
        min_distance=None if min_distance is None else str(min_distance),
        prelabel=prelabel,
        seed=seed,
    )
    classes = predictor.classes
    found = suggest_scenes(
        lambda path: _open(path, read, predictor.spec),
        lambda raster: predictor.rows(raster, confidence=True),
        inputs,
        classes,
        opts,
        labelled,
    )
    try:
        files = write_tasks(found, classes, out, list(labelled.values()))
    finally:
        if found.workdir is not None:
            found.workdir.cleanup()
    tasks = [
        {
            "rank": t.rank,
            "scene": found.scenes[t.scene].name,
            "window": [int(v) for v in t.window.flatten()],  # column, row, width, height
            "score": t.score,
            "doubt": t.doubt,
            "impurity": t.impurity,
            "rarity": t.rarity,
            "reason": why,
        }
        for t, why in zip(found.tasks, found.reasons, strict=True)
    ]
    return Suggestions(files, tasks, found.candidates, pixel_size or predictor.spec.pixel_size)


@speaks_python
def inspect_data(
    data: str | Path,
    *,
    classes: str | Path | ClassTable | None = None,
    bands: Sequence[int] | None = None,
    max_unknown: float = 0.05,
    labels: str | Path | None = None,
    label_field: str | None = None,
    label_crs: str | None = None,
    labelled_area: str | Path | None = None,
) -> dict:
    """Scenes per tile, sizes, class shares, unknown colours: ``aerialseg data inspect``.

    Reads every scene once and summarises the dataset, with every problem found.

    Args:
        data: the dataset, as for ``train``: a folder of images/ and masks/ (flat, or in
            tile folders such as the Dubai set's 'Tile 1/'), a zip of one, or a manifest;
            with ``labels``, image rasters.
        classes: class table (a JSON/YAML file): each class's name and mask colour or mask
            value; default: the Dubai set's six classes. In Python: also a ``ClassTable``.
        bands: TIFF images: 1-based band numbers to read, e.g. 3,2,1 (default: an RGB or
            RGBA image's three).
        max_unknown: largest share of a mask in unknown colours before it is an error.
        labels: class polygons, or a class raster, over image rasters, as for ``train``.
        label_field: the polygons' attribute giving each one's class.
        label_crs: the polygons' CRS, replacing what their file says (or lacks).
        labelled_area: polygons of where the labels hold (default: every image's extent; needed
            where no class is the background).

    Returns:
        The report (``aerialseg data inspect --json`` prints it): scenes, sizes and class
        shares per tile, and ``problems``, each with its ``message``.
    """
    check_arguments(inspect_data, locals())
    _check_share(max_unknown, "max_unknown")
    from aerialseg.data.catalog import open_catalog
    from aerialseg.data.inspect import inspect_dataset
    from aerialseg.data.raster import band_numbers

    table = _class_table(classes)
    spec = label_spec(labels, label_field, label_crs, labelled_area)
    catalog = open_catalog(os.fspath(data), table, spec, strict=False)
    return inspect_dataset(catalog, table, max_unknown, band_numbers(bands))


def _class_table(classes: str | Path | ClassTable | None) -> ClassTable:
    from aerialseg.data.classes import DUBAI_CLASSES, ClassTable

    if isinstance(classes, ClassTable):
        return classes
    return ClassTable.from_file(classes) if classes else DUBAI_CLASSES


@speaks_python
def split_data(
    data: str | Path,
    out: str | Path,
    *,
    classes: str | Path | ClassTable | None = None,
    val: float = 0.1,
    test: float = 0.2,
    seed: int = 0,
    block_size: str | int | None = None,
    buffer: int | None = None,
    keep: str | Path | None = None,
    pixel_size: PositiveFloat | None = None,
    labels: str | Path | None = None,
    label_field: str | None = None,
    label_crs: str | None = None,
    labelled_area: str | Path | None = None,
) -> dict[str, Any]:
    """Write a reproducible random split file: ``aerialseg data split``.

    Holds out shares of the images for validation and test, drawn at random from every
    tile folder alike, and writes them as a split file to train with. The same
    seed gives the same split on any machine. (The Dubai dataset needs none: its default
    split is the protocol's.)

    Args:
        data: the dataset, as for ``train``.
        out: the split file to write (JSON).
        classes: the class table the dataset needs (checked here).
        val: validation share (of the pixels, with ``block_size``).
        test: test share (of the pixels, with ``block_size``).
        seed: which draw.
        block_size: split large scenes spatially: square blocks of SIZE pixels (512) or
            metres (200m; a scene in a geographic CRS takes pixels), dealt to train, val
            and test; also writes the blocks as a GeoPackage beside ``out``.
        buffer: with ``block_size``: pixels a block gives up along a block of another split,
            used by none (default: the default crop size, 256).
        keep: with ``block_size``: an earlier block split of these scenes, of the same
            block size, whose blocks stay in their split; only blocks new to this one are
            dealt (a labelling round's: what the last round trained on never validates or
            tests the next).
        pixel_size: with ``block_size``: cut the blocks on georeferenced scenes resampled to
            pixels of this size in CRS units (e.g. 0.5), the grid ``suggest --pixel-size``
            reads; pixel block sizes and buffers count those pixels (default: each scene's
            own). A run at any pixel size reads the blocks' ground on its own grid.
        labels: class polygons over image rasters, as for ``train``.
        label_field: the polygons' attribute giving each one's class.
        label_crs: the polygons' CRS, replacing what their file says (or lacks).
        labelled_area: polygons of where the labels hold (default: every image's extent; needed
            where no class is the background).

    Returns:
        How many images (blocks, with ``block_size``) each part has, by ``train``, ``val``
        and ``test``; with ``block_size`` also ``blocks``: the GeoPackage of the blocks
        (None for images without a georeference), and ``on_shared_grids``: how many scenes
        lie on another's grid (one CRS and pixel, origins whole pixels apart: one ground at
        two dates, or tiles side by side), whose blocks of ground are dealt once for all of
        them, buffers running across their edges, and ``crop_size``: the training crops
        that fit the largest training block where the default crops would not (else
        None); ``bands``: the bands ``train`` must be
        told to read as red, green and blue (``bands=``) where the images are not 3-band,
        as far as the first one's file says (else its first three), or None.
    """
    check_arguments(split_data, locals())
    block_size = None if block_size is None else str(block_size)  # 256 as suggest takes it
    from aerialseg.data.catalog import open_catalog
    from aerialseg.data.splits import random_split
    from aerialseg.files import check_apart
    from aerialseg.models.io import atomic_write

    out = Path(out)
    if out.is_dir() or out.suffix.lower() == ".gpkg":
        raise AerialsegError(
            f"--out {out}: name the split file to write, e.g. split.json (a block split's"
            " GeoPackage is written beside it)"
        )
    for name, given in (("--buffer", buffer), ("--keep", keep), ("--pixel-size", pixel_size)):
        if given is not None and not block_size:
            raise AerialsegError(f"{name} applies to block splits: give --block-size too")
    outputs = [out, out.with_suffix(".gpkg")] if block_size else [out]
    check_apart(out, outputs, [data, classes, labels, labelled_area, keep])
    table = _class_table(classes)  # a bad table fails here, not in the train run
    spec = label_spec(labels, label_field, label_crs, labelled_area)
    catalog = open_catalog(os.fspath(data), table, spec, pixel_size)
    found: dict[str, Any] = {}
    if block_size:
        shares = (val, test, seed)
        split, found["blocks"] = _block_split(catalog, out, block_size, buffer, shares, keep)
        found["on_shared_grids"] = _on_shared_grids(catalog.grids())
        found["crop_size"] = _crop_fitting(catalog, split)
    else:
        split = random_split(catalog.entries, val, test, seed)
    try:
        atomic_write(out, lambda tmp: split.save(Path(tmp)))
    except BaseException:
        if found.get("blocks"):  # no GeoPackage of a split that was not written
            found["blocks"].unlink(missing_ok=True)
        raise
    found["bands"] = catalog.entries[0].bands_needed()  # a split reads no pixel value
    return {name: len(split.parts(name)) for name in ("train", "val", "test")} | found


def _crop_fitting(catalog, split) -> int | None:
    """The crop size that fits the largest training block of ``split``, where the default
    crops are larger (a review: data split printed a train of 256 px crops for suggest's
    64 px tasks, each crop mostly padding, which train then noted); else None."""
    from aerialseg.models.names import SIZE_MULTIPLE
    from aerialseg.training.config import TrainConfig

    regions = catalog.regions(split, "train") or split.parts("train")
    side = max(min(int(window.width), int(window.height)) for _, window in regions)
    # crops are a multiple of SIZE_MULTIPLE px, that at least: blocks under it are padded
    crop = max(SIZE_MULTIPLE, side // SIZE_MULTIPLE * SIZE_MULTIPLE)
    return crop if crop < TrainConfig().crop_size else None


def _on_shared_grids(grids) -> int:
    """How many scenes lie on another's grid, whose blocks of ground they share."""
    from aerialseg.data.blocks import places

    return sum(grid != sid for sid, (grid, _, _) in places(grids).items())


def _block_split(catalog, out: Path, size: str, buffer, shares: tuple, keep):
    """A block split and the GeoPackage of its blocks (None without a georeference);
    ``shares``: val, test and seed; ``keep``: an earlier block split file."""
    from aerialseg.data.blocks import block_split, kept_blocks, size_text, write_blocks
    from aerialseg.data.splits import blocks_split
    from aerialseg.models.io import atomic_write
    from aerialseg.training.config import TrainConfig

    val, test, seed = shares
    buffer = TrainConfig().crop_size if buffer is None else buffer
    kept = None
    if keep is not None:
        earlier = catalog.split(keep, for_training=False, needed=(), convert=False)
        if earlier.blocks is None:
            raise AerialsegError(f"--keep {keep}: a split of whole images; keep a block split")
        kept = kept_blocks({k: list(v) for k, v in earlier.blocks.items()}, catalog.grids(), size)
    labelled = catalog.labelled_block()
    blocks = block_split(catalog.grids(), size, buffer, val, test, seed, labelled, kept)
    rule = (
        f"blocks of {size_text(size)}, buffer {buffer} px: test {test:g} and"
        f" val {val:g} of the pixels, seed {seed} (aerialseg data split)"
    )
    grids = catalog.georeferences()
    split = blocks_split(blocks, rule, {sid: transform for sid, (_, transform) in grids.items()})
    if not grids:
        return split, None
    gpkg = out.with_suffix(".gpkg")
    atomic_write(gpkg, lambda tmp: write_blocks(tmp, blocks, grids))
    return split, gpkg
