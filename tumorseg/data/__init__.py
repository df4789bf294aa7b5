"""Datasets: the dataset.json model, image I/O, validation, converters and synthetic data."""
