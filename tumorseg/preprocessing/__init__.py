"""Preprocessing: crop to nonzero, normalise per modality, resample, write resumably."""
