"""aerialseg: semantic segmentation of aerial and satellite imagery.

    import aerialseg
    model = aerialseg.load_model()               # the bundled model
    result = model.predict("scene.tif", confidence=True)

For ML work the pieces a run is made of are here too: ``SegmentationTask`` (the
LightningModule), ``SegmentationDataModule`` and ``build_network``; ``train`` takes
``callbacks=`` and ``transforms=``.

The names below are imported on first use, so ``import aerialseg`` does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it
_LAZY = {
    "Model": "aerialseg.public",
    "Prediction": "aerialseg.public",
    "evaluate": "aerialseg.public",
    "export": "aerialseg.public",
    "inspect_data": "aerialseg.public",
    "load_model": "aerialseg.public",
    "predict_files": "aerialseg.public",
    "suggest": "aerialseg.public",
    "Suggestions": "aerialseg.public",
    "serve": "aerialseg.api.serve",
    "split_data": "aerialseg.public",
    "train": "aerialseg.public",
    "training_config": "aerialseg.public",
    "SegmentationTask": "aerialseg.training.module",
    "SegmentationDataModule": "aerialseg.training.datamodule",
    "build_network": "aerialseg.models.network",
    # what the API raises: every one-line refusal is an AerialsegError (and a ValueError)
    "AerialsegError": "aerialseg.errors",
    "ConfigError": "aerialseg.errors",
    "DatasetError": "aerialseg.errors",
    "InputError": "aerialseg.data.raster",
}
__all__ = [
    "AerialsegError",
    "ConfigError",
    "DatasetError",
    "InputError",
    "Model",
    "Prediction",
    "SegmentationDataModule",
    "SegmentationTask",
    "Suggestions",
    "__version__",
    "build_network",
    "evaluate",
    "export",
    "inspect_data",
    "load_model",
    "predict_files",
    "suggest",
    "serve",
    "split_data",
    "train",
    "training_config",
]

if TYPE_CHECKING:
    from aerialseg.api.serve import serve
    from aerialseg.data.raster import InputError
    from aerialseg.errors import AerialsegError, ConfigError, DatasetError
    from aerialseg.models.network import build_network
    from aerialseg.public import (
        Model,
        Prediction,
        Suggestions,
        evaluate,
        export,
        inspect_data,
        load_model,
        predict_files,
        split_data,
        suggest,
        train,
        training_config,
    )
    from aerialseg.training.datamodule import SegmentationDataModule
    from aerialseg.training.module import SegmentationTask


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aerialseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
