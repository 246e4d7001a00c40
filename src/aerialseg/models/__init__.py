"""Segmentation models: one factory over a small name -> builder table."""

from aerialseg.models.names import MODEL_NAMES, ModelName

__all__ = ["MODEL_NAMES", "ModelName", "create_model"]


def __getattr__(name: str):
    if name == "create_model":  # imports torch: only when asked for
        from aerialseg.models.factory import create_model

        return create_model
    raise AttributeError(f"module 'aerialseg.models' has no attribute {name!r}")
