"""The fused Triton implementation of the pairwise update (``impl="triton"``, docs/design.md §2.3).

One tiled pass per direction with no N×M buffer: :mod:`.kernels` (the Triton code),
:mod:`.function` (launches, autograd), :mod:`.spec` (constants from the kernel table, tiles),
:mod:`.aot` (PTX for the TensorRT plugin). Triton is imported on the first call, not here:
the kernels are built for the CPU interpreter when TRITON_INTERPRET=1 is set by then.
"""

from __future__ import annotations

import importlib.util

import torch

from nlseg.ops.associative import pairwise_associative
from nlseg.ops.omega import KernelParams

FUSED_KERNELS: tuple[str, ...] = ("dot", "frac", "invfrac", "log")


def triton_available() -> bool:
    """True when the ``triton`` package can be imported (the ``[dev]`` extra)."""
    return importlib.util.find_spec("triton") is not None


def pairwise_fused(theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, x: torch.Tensor,
                   params: KernelParams) -> torch.Tensor:
    """u for ``frac``, ``invfrac``, ``log`` through the fused kernels; ``dot`` through its associative form."""
    if params.kernel == "dot":
        return pairwise_associative(theta, phi, values, x, params)
    from nlseg.ops.fused.function import fused_update  # imports triton: see the module docstring

    return fused_update(theta, phi, values, x, params)
