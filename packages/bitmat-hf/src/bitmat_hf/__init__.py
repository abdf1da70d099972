"""HuggingFace transformers integration: 1.58-bit model classes, conversion, save/load, the bitmat CLI."""

from .__about__ import __version__

__all__ = ["__version__"]
