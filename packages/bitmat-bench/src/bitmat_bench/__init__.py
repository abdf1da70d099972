"""bitmat-bench: GPU benchmarks of BitMat kernels, layers and models against cuBLAS and peers."""

from .__about__ import __version__

__all__ = ["__version__"]
