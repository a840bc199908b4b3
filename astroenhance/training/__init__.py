"""Datasets, the training loop and evaluation."""
