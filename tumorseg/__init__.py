"""tumorseg: a self-configuring segmentation toolkit for multi-modal brain tumour MRI."""

__version__ = "0.1.0"
