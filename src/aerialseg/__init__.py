"""aerialseg: semantic segmentation of aerial and satellite imagery.

    import aerialseg
    model = aerialseg.load_model()               # the bundled model
    result = model.predict("scene.tif", confidence=True)

The names below come from ``aerialseg.public`` on first use, so ``import aerialseg`` does
not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Model",
    "Prediction",
    "__version__",
    "evaluate",
    "load_model",
    "predict_files",
    "train",
    "training_config",
]

if TYPE_CHECKING:
    from aerialseg.public import (
        Model,
        Prediction,
        evaluate,
        load_model,
        predict_files,
        train,
        training_config,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        from aerialseg import public

        return getattr(public, name)
    raise AttributeError(f"module 'aerialseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
