"""Evaluation: metrics from a confusion matrix, reports and plots."""
