"""The CPU implementation of the distance kernels (``impl="cpu"``, docs/design.md §2.3).

A C++ kernel fused per tile (:mod:`.function` prepares the inputs and owns the autograd,
:mod:`.build` compiles ``pairwise_cpu.cpp`` on first use and caches the library). When no
compiler is available the reference runs instead, after one warning.
"""

from __future__ import annotations

from nlseg.ops.cpu.build import LIBRARY, KernelBuildWarning
from nlseg.ops.cpu.function import pairwise_cpu

__all__ = ["LIBRARY", "KernelBuildWarning", "pairwise_cpu"]
