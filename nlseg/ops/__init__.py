"""Pairwise kernels of the Nonlocal Block: one contract, several implementations."""

from nlseg.ops.kernels import DISTANCE_KERNELS, KERNELS, kernel_constant
from nlseg.ops.pairwise import IMPLEMENTATIONS, default_implementation, pairwise_update

__all__ = [
    "DISTANCE_KERNELS",
    "IMPLEMENTATIONS",
    "KERNELS",
    "default_implementation",
    "kernel_constant",
    "pairwise_update",
]
