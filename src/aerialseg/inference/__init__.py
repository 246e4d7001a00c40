"""Prediction: sliding windows with blended overlaps, model-aware resizing."""
