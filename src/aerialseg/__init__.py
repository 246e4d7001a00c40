"""aerialseg: semantic segmentation of aerial and satellite imagery."""

__version__ = "0.1.0"
