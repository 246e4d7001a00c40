"""Segmentation models: one factory over a small name -> builder table."""

from aerialseg.models.factory import MODEL_NAMES, ModelName, create_model

__all__ = ["MODEL_NAMES", "ModelName", "create_model"]
