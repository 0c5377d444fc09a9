"""``pairwise_update``: the one contract of the Nonlocal Block's pairwise operator.

Implementations register here with the kernels they support; ``impl=None`` picks the
fastest exact one for the kernel and device: ``dot`` → associative; the distance kernels →
the fused Triton kernel (``triton``) on CUDA tensors when Triton is installed, the C++ kernel
(``cpu``) on CPU tensors, else the reference; float64 keeps the reference (the exact oracle),
and so does code being traced for export (TorchScript, ONNX), which must record torch ops.
``triton`` runs CPU tensors too under Triton's interpreter (TRITON_INTERPRET=1).

Every implementation takes the kernel and its parameters as one checked
:class:`~nlseg.ops.omega.KernelParams`, built once by :func:`pairwise_update` (or held by the
caller, as ``PairwiseOperator`` does, for :func:`pairwise_update_with`). The log kernel's
constant term γ (``log_gamma``, docs/design.md §6) is a runtime value of the reference and the
C++ kernel and a compile-time constant of the fused Triton kernel (one compiled variant per value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from nlseg.ops.associative import pairwise_associative
from nlseg.ops.cpu import LIBRARY as CPU_KERNEL
from nlseg.ops.cpu import pairwise_cpu
from nlseg.ops.fused import FUSED_KERNELS, pairwise_fused, triton_available
from nlseg.ops.omega import DISTANCE_KERNELS, EULER_GAMMA, KERNELS, KernelParams
from nlseg.ops.reference import pairwise_reference

# fn(theta, phi, values, x, params) -> u: the contract every implementation registers with.
PairwiseFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, KernelParams], torch.Tensor]


@dataclass(frozen=True)
class Implementation:
    """A pairwise-update implementation (:data:`PairwiseFn`), the kernels it computes,
    and whether it honours the log kernel's constant term ``params.log_gamma`` (otherwise it
    computes Euler's γ only, and is neither picked nor allowed for another constant)."""

    fn: PairwiseFn
    kernels: tuple[str, ...]
    takes_log_gamma: bool = True


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


def default_implementation(params: KernelParams, device: torch.device, dtype: torch.dtype | None = None) -> str:
    """The implementation ``impl=None`` uses: associative for ``dot``; for the distance kernels
    the fused kernel on CUDA, the C++ kernel on CPU (unless it failed to build, or while tracing),
    and the reference for float64 (the exact oracle), for a log kernel with another constant
    than Euler's γ where the fast one computes Euler's γ only, and for everything else."""
    if params.kernel == "dot":
        return "associative"
    if params.kernel not in DISTANCE_KERNELS or dtype == torch.float64:
        return "reference"
    fast = None
    if device.type == "cuda" and "triton" in IMPLEMENTATIONS:
        fast = "triton"
    elif device.type == "cpu" and not CPU_KERNEL.failed and not tracing():
        fast = "cpu"
    if fast is None or (params.custom_log_gamma and not IMPLEMENTATIONS[fast].takes_log_gamma):
        return "reference"
    return fast


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
    log_gamma: float = EULER_GAMMA,
    impl: str | None = None,
) -> torch.Tensor:
    """The pairwise update u of the Nonlocal Block (docs/design.md §2.3; thesis (4.1), (4.6)–(4.8)).

    Args:
        theta: query embeddings θ(X), (B, N, C').
        phi: key embeddings φ(X), possibly subsampled, (B, M, C').
        values: key values v (the subsampled block input), (B, M, C).
        x: query values x (the block input at full resolution), (B, N, C).
        kernel: ``dot`` | ``gaussian`` | ``frac`` | ``invfrac`` | ``log``.
        s: exponent of the fractional kernels, 0 < s < 1.
        lam: scaling λ of the kernel.
        n: dimension constant of the fractional kernels.
        log_gamma: constant term γ of the log kernel, c(−2λ log‖θ−φ‖ − γ): Euler's γ as (4.8)
            reads, λγ as the thesis authors' code computes (docs/design.md §6).
        impl: ``reference`` | ``associative`` (dot only) | ``triton`` (dot, frac, invfrac, log;
            needs the ``triton`` package) | ``cpu`` (frac, invfrac, log on CPU tensors; the
            reference, after one warning, where no C++ compiler is available) | None for the default.

    Returns:
        u, (B, N, C), in the dtype of ``x``; normalised by M, zero distances contribute 0.
    """
    return pairwise_update_with(theta, phi, values, x, KernelParams(kernel, s, lam, n, log_gamma), impl=impl)


def pairwise_update_with(
    theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, x: torch.Tensor, params: KernelParams, *,
    impl: str | None = None,
) -> torch.Tensor:
    """:func:`pairwise_update` for a kernel and parameters already checked into ``params``."""
    _check_shapes(theta, phi, values, x)
    name = impl or default_implementation(params, theta.device, theta.dtype)
    if name == "triton" and name not in IMPLEMENTATIONS:
        raise ValueError("pairwise implementation 'triton' needs the triton package (pip install 'nlseg[dev]')")
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"unknown pairwise implementation {name!r}; expected one of {', '.join(IMPLEMENTATIONS)}")
    implementation = IMPLEMENTATIONS[name]
    if params.kernel not in implementation.kernels:
        raise ValueError(f"implementation {name!r} does not support kernel {params.kernel!r}")
    if params.custom_log_gamma and not implementation.takes_log_gamma:
        raise ValueError(f"implementation {name!r} computes the log kernel with Euler's γ only, not "
                         f"log_gamma={params.log_gamma}; use impl='reference' (or None)")
    return implementation.fn(theta, phi, values, x, params)
