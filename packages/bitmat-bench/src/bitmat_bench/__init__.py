"""bitmat-bench: GPU benchmarks of BitMat kernels, layers and models against cuBLAS and peers.

The timing harness is importable on its own: `from bitmat_bench.timing import time_graph, Timing`.
Importing this package does no GPU work.
"""

from .__about__ import __version__
from .timing import Timing, rotation_copies, time_graph

__all__ = ["Timing", "__version__", "rotation_copies", "time_graph"]
