"""The CPU implementation of the distance kernels (``impl="cpu"``): inputs, constants, autograd.

Semantics are the reference's (``nlseg.ops.reference``): θ, φ conditioned by
:func:`~nlseg.ops.omega.condition_embeddings` in float32 (float64 for float64 inputs), the
zero rule of :func:`~nlseg.ops.omega.zero_distance_mask`, ω and the sums in that dtype, and
u from :func:`~nlseg.ops.omega.combine`. The kernel's constants come from
:func:`~nlseg.ops.fused.spec.fused_spec`, computed from the kernel table, as the fused GPU
kernel's do. The C++ kernel (``pairwise_cpu.cpp``) returns S_i = Σ_j ω_ij v_j and R_i = Σ_j ω_ij;
its backward recomputes ω tile by tile, so memory is O((N + M)·C) in both directions
(docs/design.md §2.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nlseg.ops.cpu.build import LIBRARY, LoadedKernel
from nlseg.ops.fused.spec import MODE_LOG, FusedSpec, fused_spec
from nlseg.ops.omega import KernelParams, combine, condition_embeddings
from nlseg.ops.reference import compute_dtype, pairwise_reference

# Modes of pairwise_cpu.cpp (enum Mode).
MODE_POWER_QUARTERS, MODE_POWER_REAL, MODE_LOG_KERNEL = 0, 1, 2
RETURN_CODES = {1: "unknown mode", 2: "bad sizes", 3: "out of memory"}


@dataclass(frozen=True)
class KernelArgs:
    """The runtime constants of one call of the C++ kernel (see pairwise_cpu.cpp)."""

    mode: int
    quarters: int  # 2p of the square-root mode: ω' = (1/d'²)^(quarters/4)
    half_p: float
    log_coef: float  # ω = log_coef·log2 d'² + offset_b for log
    zero_rtol: float
    threads: int


def kernel_args(spec: FusedSpec, kernel: LoadedKernel) -> KernelArgs:
    """The C++ kernel's constants from the spec: exponents p that are multiples of ½ (s ∈ {¼, ½, ¾}
    with integer n) take the square-root mode, any other p exp2 and log2."""
    log_coef = spec.coef if spec.mode == MODE_LOG else 0.0
    if spec.mode == MODE_LOG:
        mode, quarters = MODE_LOG_KERNEL, 0
    else:
        quarters = round(4.0 * spec.half_p)
        exact = abs(4.0 * spec.half_p - quarters) < 1e-9 and 1 <= quarters <= kernel.max_quarters
        mode, quarters = (MODE_POWER_QUARTERS, quarters) if exact else (MODE_POWER_REAL, 0)
    return KernelArgs(mode, quarters, spec.half_p, log_coef, spec.zero_rtol, torch.get_num_threads())


def batch_gain_offset(spec: FusedSpec, log2_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(gain_b, offset_b), float64 (B,), with ω = gain_b·ω'(d'²) + offset_b for the scale 2^{l_b}.

    Power kernels: gain = c·λ·2^{−p·l}, offset 0; log: gain 1, offset = 2·coef·l − c·γ (the
    spec's ``log_offset``), since log d² = log d'² + 2 l log 2.
    """
    if spec.mode == MODE_LOG:
        return torch.ones_like(log2_scale), 2.0 * spec.coef * log2_scale + spec.log_offset
    return spec.coef * torch.exp2(-2.0 * spec.half_p * log2_scale), torch.zeros_like(log2_scale)


def _round_up(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


@dataclass(frozen=True)
class Operands:
    """What the C++ kernel reads: padded, contiguous, one dtype (see pairwise_cpu.cpp)."""

    q: torch.Tensor  # (B, N, C'p)
    q_sq: torch.Tensor  # (B, N)
    k: torch.Tensor  # (B, Mp, C'p)
    kt: torch.Tensor  # (B, C'p, Mp)
    k_sq: torch.Tensor  # (B, Mp), +inf on padding keys
    v: torch.Tensor  # (B, Mp, Cp)
    vt: torch.Tensor | None  # (B, Cp, Mp), backward only

    def sizes(self) -> tuple[int, int, int, int, int]:
        """(B, N, Mp, C'p, Cp)."""
        b, n, e = self.q.shape
        return b, n, self.k.shape[1], e, self.v.shape[2]


def prepare(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: LoadedKernel, *,
            transposed_values: bool) -> Operands:
    """Pad C', C and M to the kernel's multiples (zeros; padding keys get ‖k‖² = +inf, which the
    zero rule drops) and lay the keys and values out for it. Squared norms as the reference's."""
    m, e, c = k.shape[1], k.shape[2], v.shape[2]
    pad_m = _round_up(m, kernel.key_multiple) - m
    pad_e, pad_c = _round_up(e, kernel.lanes) - e, _round_up(c, kernel.lanes) - c
    q_sq = (q * q).sum(-1).contiguous()
    k_sq = F.pad((k * k).sum(-1), (0, pad_m), value=math.inf).contiguous()
    k_padded = F.pad(k, (0, pad_e, 0, pad_m)).contiguous()
    v_padded = F.pad(v, (0, pad_c, 0, pad_m)).contiguous()
    q_padded = (F.pad(q, (0, pad_e)) if pad_e else q).contiguous()  # no copy of the N×C' queries if C' fits
    return Operands(
        q=q_padded, q_sq=q_sq, k=k_padded, kt=k_padded.transpose(1, 2).contiguous(),
        k_sq=k_sq, v=v_padded, vt=v_padded.transpose(1, 2).contiguous() if transposed_values else None,
    )


def _check(code: int, direction: str) -> None:
    if code != 0:
        raise RuntimeError(f"the CPU pairwise kernel's {direction} pass failed: {RETURN_CODES.get(code, code)}")


def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


def kernel_forward(kernel: LoadedKernel, ops: Operands, gain: torch.Tensor, offset: torch.Tensor, args: KernelArgs
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(S (B, N, Cp), R (B, N)) of the padded operands."""
    b, n, m, e, c = ops.sizes()
    sums = torch.empty(b, n, c, dtype=ops.q.dtype)
    row_sums = torch.empty(b, n, dtype=ops.q.dtype)
    code = kernel.forward[ops.q.dtype](
        _ptr(ops.q), _ptr(ops.q_sq), _ptr(ops.kt), _ptr(ops.k_sq), _ptr(ops.v), b, n, m, e, c,
        args.mode, args.quarters, args.half_p, args.log_coef, args.zero_rtol, _ptr(gain), _ptr(offset), args.threads,
        *(kernel.openmp or (None, None)), _ptr(sums), _ptr(row_sums),
    )
    _check(code, "forward")
    return sums, row_sums


def kernel_backward(kernel: LoadedKernel, ops: Operands, gain: torch.Tensor, offset: torch.Tensor, args: KernelArgs,
                    grad_sums: torch.Tensor, grad_row_sums: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (padded) of q, k, v from ∂L/∂S (B, N, Cp) and ∂L/∂R (B, N), recomputing ω."""
    b, n, m, e, c = ops.sizes()
    grad_q = torch.empty(b, n, e, dtype=ops.q.dtype)
    grad_k = torch.empty(b, m, e, dtype=ops.q.dtype)
    grad_v = torch.empty(b, m, c, dtype=ops.q.dtype)
    code = kernel.backward[ops.q.dtype](
        _ptr(ops.q), _ptr(ops.q_sq), _ptr(ops.k), _ptr(ops.kt), _ptr(ops.k_sq), _ptr(ops.v), _ptr(ops.vt),
        _ptr(grad_sums), _ptr(grad_row_sums), b, n, m, e, c,
        args.mode, args.quarters, args.half_p, args.log_coef, args.zero_rtol, _ptr(gain), _ptr(offset), args.threads,
        *(kernel.openmp or (None, None)), _ptr(grad_q), _ptr(grad_k), _ptr(grad_v),
    )
    _check(code, "backward")
    return grad_q, grad_k, grad_v


class DistanceSums(torch.autograd.Function):
    """(S, R) = (Σ_j ω_ij v_j, Σ_j ω_ij) from conditioned q, k; the backward recomputes ω."""

    @staticmethod
    def forward(ctx, q, k, v, gain, offset, args, kernel):  # noqa: D102
        ops = prepare(q, k, v, kernel, transposed_values=False)
        sums, row_sums = kernel_forward(kernel, ops, gain, offset, args)
        ctx.save_for_backward(q, k, v, gain, offset)
        ctx.args, ctx.kernel = args, kernel
        return sums[..., : v.shape[2]], row_sums

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_sums, grad_row_sums):  # noqa: D102
        q, k, v, gain, offset = ctx.saved_tensors
        ops = prepare(q, k, v, ctx.kernel, transposed_values=True)
        c_padded = ops.v.shape[2]
        pad_c = c_padded - v.shape[2]
        grad_sums = (F.pad(grad_sums.to(q.dtype), (0, pad_c)) if pad_c else grad_sums.to(q.dtype)).contiguous()
        grad_row_sums = grad_row_sums.to(q.dtype).contiguous()
        grad_q, grad_k, grad_v = kernel_backward(ctx.kernel, ops, gain, offset, ctx.args, grad_sums, grad_row_sums)
        m, e, c = k.shape[1], k.shape[2], v.shape[2]
        return grad_q[..., :e], grad_k[:, :m, :e], grad_v[:, :m, :c], None, None, None, None


def pairwise_cpu(theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, x: torch.Tensor,
                 params: KernelParams) -> torch.Tensor:
    """u (B, N, C) for ``frac``, ``invfrac`` or ``log`` through the C++ kernel (docs/design.md §2.3).

    ``params.log_gamma`` is the constant term γ of the log kernel c_n(−2λ log‖θ−φ‖ − γ), a
    runtime value of the kernel. float16 and bfloat16 are computed in float32, float64 in
    float64; u is returned in ``x``'s dtype. Runs the reference (same results, one warning per
    process) when the kernel cannot be built.
    """
    if theta.device.type != "cpu":
        raise ValueError(f"pairwise implementation 'cpu' computes CPU tensors, got {theta.device.type} tensors")
    loaded = LIBRARY.load()
    if loaded is None:
        return pairwise_reference(theta, phi, values, x, params)
    out_dtype = x.dtype
    dtype = compute_dtype(theta.dtype)
    b, n_q, _ = theta.shape
    m = phi.shape[1]
    if b == 0 or n_q == 0 or x.shape[2] == 0:
        return torch.zeros(x.shape, dtype=out_dtype)
    theta, phi, values, x = (t.to(dtype) for t in (theta, phi, values, x))
    q, k, log_scale = condition_embeddings(theta, phi)
    # The scale is 2^l exactly (condition_embeddings); the kernel's constants take the integer l.
    log2_scale = torch.round(log_scale.detach().reshape(b).double() / math.log(2.0))
    spec = fused_spec(params, dtype)
    gain, offset = batch_gain_offset(spec, log2_scale)
    sums, row_sums = DistanceSums.apply(q, k, values.contiguous(), gain.contiguous(), offset.contiguous(),
                                        kernel_args(spec, loaded), loaded)
    return combine(params.kernel, sums, row_sums.unsqueeze(-1), x, m).to(out_dtype)
