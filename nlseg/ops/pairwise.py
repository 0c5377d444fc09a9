"""``pairwise_update``: the one contract of the Nonlocal Block's pairwise operator.

Implementations register here with the kernels they support; ``impl=None`` picks the
fastest exact one for the kernel and device: ``dot`` → associative; the distance kernels →
the fused Triton kernel (``triton``) on CUDA tensors when Triton is installed, the C++ kernel
(``cpu``) on CPU tensors, else the reference; float64 keeps the reference (the exact oracle),
and so does code being traced for export (TorchScript, ONNX), which must record torch ops.
``triton`` runs CPU tensors too under Triton's interpreter (TRITON_INTERPRET=1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from nlseg.ops.associative import pairwise_associative
from nlseg.ops.cpu import LIBRARY as CPU_KERNEL
from nlseg.ops.cpu import pairwise_cpu
from nlseg.ops.fused import FUSED_KERNELS, pairwise_fused, triton_available
from nlseg.ops.kernels import DISTANCE_KERNELS, KERNELS, check_kernel
from nlseg.ops.reference import pairwise_reference

PairwiseFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Implementation:
    """A pairwise-update implementation and the kernels it computes."""

    fn: PairwiseFn
    kernels: tuple[str, ...]


IMPLEMENTATIONS: dict[str, Implementation] = {
    "reference": Implementation(pairwise_reference, KERNELS),
    "associative": Implementation(pairwise_associative, ("dot",)),
    "cpu": Implementation(pairwise_cpu, DISTANCE_KERNELS),
}
if triton_available():
    IMPLEMENTATIONS["triton"] = Implementation(pairwise_fused, FUSED_KERNELS)


def tracing() -> bool:
    """True while TorchScript or the ONNX exporter traces: only torch ops end up in the graph."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def default_implementation(kernel: str, device: torch.device, dtype: torch.dtype | None = None) -> str:
    """The implementation ``impl=None`` uses: associative for ``dot``; for the distance kernels
    the fused kernel on CUDA, the C++ kernel on CPU (unless it failed to build, or while tracing),
    and the reference for float64 (the exact oracle) and everything else."""
    if kernel == "dot":
        return "associative"
    if kernel not in DISTANCE_KERNELS or dtype == torch.float64:
        return "reference"
    if device.type == "cuda" and "triton" in IMPLEMENTATIONS:
        return "triton"
    if device.type == "cpu" and not CPU_KERNEL.failed and not tracing():
        return "cpu"
    return "reference"


def _check_shapes(theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, x: torch.Tensor) -> None:
    names = ("theta", "phi", "values", "x")
    tensors = (theta, phi, values, x)
    for name, t in zip(names, tensors):
        if t.dim() != 3:
            raise ValueError(f"pairwise_update: {name} must be 3-D (B, positions, channels), got shape {tuple(t.shape)}")
    b, n_q, c_embed = theta.shape
    _, m, _ = phi.shape
    c = x.shape[2]
    expected = {"phi": (b, m, c_embed), "values": (b, m, c), "x": (b, n_q, c)}
    for name, t in zip(names[1:], tensors[1:]):
        if tuple(t.shape) != expected[name]:
            raise ValueError(
                f"pairwise_update: {name} has shape {tuple(t.shape)}, expected {expected[name]} "
                f"for theta {tuple(theta.shape)}, phi (B, M, C'), values (B, M, C), x (B, N, C)"
            )
    if m == 0:
        raise ValueError("pairwise_update: phi has no key positions (M = 0)")


def pairwise_update(
    theta: torch.Tensor,
    phi: torch.Tensor,
    values: torch.Tensor,
    x: torch.Tensor,
    kernel: str,
    *,
    s: float = 0.5,
    lam: float = 0.1,
    n: int = 2,
    impl: str | None = None,
) -> torch.Tensor:
    """The pairwise update u of the Nonlocal Block (DESIGN §2.3; thesis (4.1), (4.6)–(4.8)).

    Args:
        theta: query embeddings θ(X), (B, N, C').
        phi: key embeddings φ(X), possibly subsampled, (B, M, C').
        values: key values v (the subsampled block input), (B, M, C).
        x: query values x (the block input at full resolution), (B, N, C).
        kernel: ``dot`` | ``gaussian`` | ``frac`` | ``invfrac`` | ``log``.
        s: exponent of the fractional kernels, 0 < s < 1.
        lam: scaling λ of the kernel.
        n: dimension constant of the fractional kernels.
        impl: ``reference`` | ``associative`` (dot only) | ``triton`` (dot, frac, invfrac, log;
            needs the ``triton`` package) | ``cpu`` (frac, invfrac, log on CPU tensors; the
            reference, after one warning, where no C++ compiler is available) | None for the default.

    Returns:
        u, (B, N, C), in the dtype of ``x``; normalised by M, zero distances contribute 0.
    """
    check_kernel(kernel, s, n)
    _check_shapes(theta, phi, values, x)
    name = impl or default_implementation(kernel, theta.device, theta.dtype)
    if name == "triton" and name not in IMPLEMENTATIONS:
        raise ValueError("pairwise implementation 'triton' needs the triton package (pip install 'nlseg[dev]')")
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"unknown pairwise implementation {name!r}; expected one of {', '.join(IMPLEMENTATIONS)}")
    implementation = IMPLEMENTATIONS[name]
    if kernel not in implementation.kernels:
        raise ValueError(f"implementation {name!r} does not support kernel {kernel!r}")
    return implementation.fn(theta, phi, values, x, kernel, s=s, lam=lam, n=n)
