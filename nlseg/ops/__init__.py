"""Pairwise kernels of the Nonlocal Block: one contract, several implementations."""

from nlseg.ops.omega import DISTANCE_KERNELS, KERNELS, KernelParams, kernel_constant
from nlseg.ops.pairwise import IMPLEMENTATIONS, default_implementation, pairwise_update, pairwise_update_with

__all__ = [
    "DISTANCE_KERNELS",
    "IMPLEMENTATIONS",
    "KERNELS",
    "KernelParams",
    "default_implementation",
    "kernel_constant",
    "pairwise_update",
    "pairwise_update_with",
]
