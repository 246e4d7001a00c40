"""Self-describing model files: loading one needs no other file.

A model file is a ``torch.save`` dict with the network weights, the model spec (what
predicting needs: models/spec.py), the class table, the input normalisation, the metrics
it was chosen by, and the whole training config, kept to explain the model but never parsed
to load it: a training setting renamed in a later release breaks no model file. Files
without a spec (written before it existed) and Lightning checkpoints (``best.ckpt``,
``last.ckpt``, which carry the config under ``hyper_parameters``) get theirs from the
config's fields.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from aerialseg.data.classes import ClassTable
from aerialseg.errors import AerialsegError, ModelFileError, library_reason
from aerialseg.files import check_replaceable, missing_folders, remove_empty, temp_prefix
from aerialseg.models.fuse import fold_batchnorms
from aerialseg.models.network import SegmentationNet, build_network
from aerialseg.models.spec import ModelSpec

FORMAT = "aerialseg-model"
FORMAT_VERSION = 1
BUNDLED_MODEL = "default-model.pt"  # in aerialseg/assets


def bundled_model_path() -> Path:
    """Where the bundled default model lies (an install may lack the file)."""
    from importlib.resources import files

    return Path(str(files("aerialseg") / "assets" / BUNDLED_MODEL))


def is_onnx_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an ONNX export (``model.onnx``, ``MODEL.ONNX``)."""
    return Path(path).suffix.lower() == ".onnx"


def model_path(model: str | os.PathLike | None) -> Path:
    """Where a model named by a user is: None or ``"default"`` is the bundled model (as
    ``init_from=default`` is), a run folder its ``model.pt``, anything else a file.

    Raises:
        ModelFileError: ``model`` is neither a path nor None.
        AerialsegError: the bundled model was asked for and this install has none.
    """
    if model is not None and not isinstance(model, str | os.PathLike):
        raise ModelFileError(f"model {model!r}: give the path of a model file, or None")
    if model is not None and os.fspath(model) != "default":
        given = Path(model)
        in_run = given / "model.pt"  # a run folder, as train --out names it (a review)
        return in_run if given.is_dir() and in_run.is_file() else given
    path = bundled_model_path()
    if not path.is_file():
        raise AerialsegError(
            "no --model given and this install bundles no default model; train one with"
            " 'aerialseg train --data DATASET --out runs/a' and pass --model runs/a/model.pt"
        )
    return path


@dataclass
class LoadedModel:
    """A model file's contents: the network, its spec and classes. ``recipe``: the
    training settings as saved (unchecked: an older release's may not load as a config)."""

    net: SegmentationNet
    spec: ModelSpec
    classes: ClassTable
    meta: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(tmp_path)``, then rename onto ``path``: never a half-written final file,
    and after a failure no folder it made for it."""
    path = Path(path)
    check_replaceable(path)
    made = missing_folders(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file private (0600); a finished output gets the usual mode.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        remove_empty(made)
        raise


def save_model(
    path: str | Path,
    net: SegmentationNet,
    spec: ModelSpec,
    classes: ClassTable,
    meta: dict[str, Any] | None = None,
    half: bool = False,
    *,
    recipe: dict[str, Any] | None = None,
) -> None:
    """Write a model file. ``half`` stores floating weights as fp16 (half the size);
    ``recipe``: the training config's settings, saved to explain the model."""
    state = {
        k: (v.half() if half and v.is_floating_point() else v).cpu()
        for k, v in net.state_dict().items()
    }
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "spec": spec.to_dict(),
        "config": recipe if recipe is not None else spec.to_dict(),
        "classes": classes.to_dict(),
        "normalization": {"mean": net.mean.flatten().tolist(), "std": net.std.flatten().tolist()},
        "meta": meta or {},
        "state_dict": state,
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def check_model_file(path: Path) -> None:
    """ModelFileError where ``path`` is no file: a folder (a run's, say) named as such."""
    if path.is_dir():  # a review: it was "no such model file" (a run's is its model.pt)
        raise ModelFileError(f"{path}: a folder without a model.pt, not a model file")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")


def _read(path: Path) -> dict:
    check_model_file(path)
    reason = None
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        reason = "not a PyTorch file"
    else:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # torch's page on weights_only would follow
            reason = "a PyTorch file of more than weights; aerialseg runs no code from files"
        except Exception as err:  # noqa: BLE001 - any parse failure of a user's file means 'not a model'
            reason = library_reason(err)
    if reason is not None:
        raise ModelFileError(
            f"{path}: not an aerialseg model file ({reason}); pass a model.pt or a .ckpt"
            " written by 'aerialseg train'"
        )
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: not an aerialseg model file")
    return data


def _check_weights(path: Path, model: str, expected: dict, state: dict) -> None:
    """One line where the file's weights are not those of the network its config names
    (torch's own message lists every tensor: 189 lines for another architecture)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [
        k
        for k in expected
        if k in state
        and (not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape)
    ]
    if missing or unexpected or reshaped:
        counts = f"{len(missing)} missing, {len(unexpected)} unexpected"
        counts += f" and {len(reshaped)} of another shape of {len(expected)}"
        first = (missing or unexpected or reshaped)[0]
        raise ModelFileError(
            f"{path}: its weights are not those of the {model} network its config names"
            f" ({counts}, e.g. {first}); the file was changed or written by another program"
        )
    # a review: NaN weights loaded and predicted class 0 everywhere with NaN confidence;
    # training stops at a non-finite loss, so no run writes them
    broken = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if broken:
        raise ModelFileError(
            f"{path}: {len(broken)} of its weight tensors hold NaN or infinity (e.g."
            f" {broken[0]}); the file is damaged"
        )


def load_model(
    path: str | Path, device: str | torch.device = "cpu", *, for_inference: bool = False
) -> LoadedModel:
    """Load a model file or a Lightning checkpoint of aerialseg, in eval mode.

    ``for_inference`` folds the batch norms into the convolutions (models/fuse.py): the
    same predictions, faster, but a network whose weights no longer fit a model file.
    """
    path = Path(path)
    data = _read(path)
    state = data.get("state_dict")
    lightning = data.get("hyper_parameters")  # a .ckpt's
    if data.get("format") == FORMAT:
        version = data.get("version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:  # a review: it loaded
            raise ModelFileError(
                f"{path}: a model file of format version {version!r}, newer than this"
                f" aerialseg reads ({FORMAT_VERSION}): upgrade aerialseg"
            )
        hparams, meta = data, data.get("meta", {})
    elif isinstance(lightning, dict) and "config" in lightning and isinstance(state, dict):
        hparams = lightning
        state = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
        meta = {"epoch": data.get("epoch"), "global_step": data.get("global_step")}
    else:
        raise ModelFileError(f"{path}: not an aerialseg model file (no aerialseg metadata inside)")
    if not isinstance(state, dict):
        raise ModelFileError(f"{path}: model file is damaged (no weights inside)")
    recipe = hparams.get("config")
    try:
        spec = ModelSpec.from_dict(hparams.get("spec") or recipe or {})
        classes = ClassTable.from_dict(hparams["classes"])
    except (AerialsegError, KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: model metadata is damaged ({err})") from None
    net = build_network(
        spec.model,
        classes.num_classes,
        pretrained=False,
        base_width=spec.base_width,
        dropout=spec.dropout,
        decoder_channels=list(spec.decoder_channels) if spec.decoder_channels else None,
        downsample=spec.downsample,
        in_channels=spec.in_channels,
    )
    _check_weights(path, spec.model, net.state_dict(), state)
    try:
        net.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        )
    except RuntimeError as err:
        raise ModelFileError(
            f"{path}: weights do not fit a {spec.model} network ({library_reason(err)})"
        ) from None
    net = net.to(device).eval()
    if for_inference:
        side = 2 * net.stride
        sample = torch.rand(1, net.in_channels, side, side, device=device) * 255
        folded, _ = fold_batchnorms(net, sample)
        # Nothing trains a network loaded for prediction: no caller can build a graph on it.
        net = cast(SegmentationNet, folded).requires_grad_(False)
    if torch.device(device).type == "cpu":
        # oneDNN's convolutions run channels-last natively; in NCHW every layer converts
        # (bench/inference_speed.py times both layouts).
        net = net.to(memory_format=torch.channels_last)
    return LoadedModel(net, spec, classes, meta, recipe if isinstance(recipe, dict) else {})
