"""Launching the fused kernels: precision plan, autograd.Function, and the pairwise entry point.

Semantics are the reference's (``nlseg.ops.reference``): embeddings conditioned by
:func:`~nlseg.ops.omega.condition_embeddings` in float32 (float64 for float64 inputs),
the zero rule of :func:`~nlseg.ops.omega.zero_distance_mask`, ω and the sums in float32.
Memory is O((N + M)·C) in the forward and the backward: ω is recomputed tile by tile.

Precision of the two dots per tile (docs/design.md §2.3):

| inputs   | θ'·φ' (distances)              | ω·v (and the backward's ω-side dots)     |
|----------|--------------------------------|------------------------------------------|
| float16  | fp16 tensor cores, exact products | ω, v as tf32: ω can exceed fp16's 65504 |
| bfloat16 | bf16 tensor cores, exact products | bf16 forward; tf32 in the backward       |
| float32  | ``fp32_precision`` (tf32x3)    | ``fp32_precision``                        |
| float64  | fp64                           | fp64                                      |

Products of 16-bit numbers are exact in the float32 accumulator, so the conditioned 16-bit
embeddings give distances as exact as the reference's. Plain TF32 would round θ', φ' to 11
bits and make d'² of coincident float32 embeddings noise far above the zero threshold
(64 eps·‖·‖²); the 3-pass split ``tf32x3`` errs by an estimated 6 eps·‖·‖² (dropped lo·lo
products and the rounding of the lo parts), inside it, on tensor cores. ``ieee`` (C' + C
FMAs per pair on the CUDA cores) is the fallback; benchmarks/pairwise.py times both.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from nlseg.ops.fused.kernels import (
    pairwise_backward_cols_kernel,
    pairwise_backward_rows_kernel,
    pairwise_forward_kernel,
)
from nlseg.ops.fused.spec import (
    BACKWARD_TILES,
    SUPPORTED_DTYPES,
    FusedSpec,
    Tiles,
    channel_block,
    forward_tiles,
    fused_spec,
)
from nlseg.ops.omega import KernelParams, condition_embeddings
from nlseg.ops.reference import compute_dtype

FP32_PRECISIONS = ("tf32x3", "ieee")
DEFAULT_FP32_PRECISION = "tf32x3"


def interpreting() -> bool:
    """True when the kernels were built for Triton's CPU interpreter (TRITON_INTERPRET=1 at import)."""
    return not isinstance(pairwise_forward_kernel, triton.runtime.JITFunction)


@dataclass(frozen=True)
class Precision:
    """Compile-time dtypes and dot precisions of one launch (see the module's table)."""

    acc: object  # tl.float32 | tl.float64
    qk_precision: str
    w_dtype: object  # dtype ω is cast to for its dot
    wv_precision: str
    interpret: bool  # built for Triton's CPU interpreter: portable ops only

    def constexprs(self) -> dict[str, object]:
        return dict(ACC=self.acc, W_DTYPE=self.w_dtype, QK_PRECISION=self.qk_precision,
                    WV_PRECISION=self.wv_precision, INTERPRET=self.interpret)


def precision_plan(dtype: torch.dtype, fp32_precision: str, *, backward: bool, interpret: bool) -> Precision:
    """The :class:`Precision` of a launch on ``dtype`` inputs."""
    if fp32_precision not in FP32_PRECISIONS:
        raise ValueError(f"fp32_precision must be one of {', '.join(FP32_PRECISIONS)}, got {fp32_precision!r}")
    if dtype == torch.float64:
        return Precision(tl.float64, "ieee", tl.float64, "ieee", interpret)
    if dtype == torch.float32:
        return Precision(tl.float32, fp32_precision, tl.float32, fp32_precision, interpret)
    sixteen_bit_w = tl.bfloat16 if dtype == torch.bfloat16 and not backward else tl.float32
    return Precision(tl.float32, "tf32", sixteen_bit_w, "tf32", interpret)


def spec_constexprs(spec: FusedSpec) -> dict[str, object]:
    """The kernel's ω constants as keyword arguments of the Triton kernels."""
    return dict(MODE=spec.mode, POWER=spec.power, HALF_P=spec.half_p, COEF=spec.coef, LOG_OFFSET=spec.log_offset,
                SIGN=spec.sign, SUBTRACT_X=spec.subtract_x, ZERO_RTOL=spec.zero_rtol)


def shape_constexprs(c_embed: int, c_value: int, tiles: Tiles) -> dict[str, int]:
    """Channel counts, their power-of-two blocks, and the tile shape as kernel arguments."""
    return dict(C_E=c_embed, C_V=c_value, BLOCK_N=tiles.block_rows, BLOCK_M=tiles.block_cols,
                BLOCK_E=channel_block(c_embed), BLOCK_V=channel_block(c_value))


def squared_norms(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """‖t_i‖² over the last dim, in ``dtype``, of the values the kernel multiplies."""
    t = t.to(dtype)
    return (t * t).sum(-1).contiguous()


def launch_options(tiles: Tiles) -> dict[str, int | bool]:
    """Warps, pipeline stages, and FMA contraction (d'² = fma(−2, a·b, ‖a‖² + ‖b‖²))."""
    return dict(num_warps=tiles.num_warps, num_stages=tiles.num_stages, enable_fp_fusion=True)


def fused_forward(q: torch.Tensor, k: torch.Tensor, values: torch.Tensor, x: torch.Tensor, log2_scale: torch.Tensor,
                  spec: FusedSpec, *, fp32_precision: str = DEFAULT_FP32_PRECISION, tiles: Tiles | None = None,
                  row_sums: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Launch the forward kernel on conditioned embeddings q (B,N,C'), k (B,M,C') of one dtype.

    Returns u (B, N, C) in that dtype and, if ``row_sums``, R_i = Σ_j ω_ij (B, N) in the
    compute dtype.
    """
    dtype = q.dtype
    acc_dtype = compute_dtype(dtype)
    b, n_q, c_embed = q.shape
    m, c_value = k.shape[1], values.shape[2]
    tiles = tiles or forward_tiles(dtype, c_embed, c_value)
    out = torch.empty(b, n_q, c_value, device=q.device, dtype=dtype)
    sums = torch.empty(b, n_q, device=q.device, dtype=acc_dtype) if row_sums else None
    plan = precision_plan(dtype, fp32_precision, backward=False, interpret=interpreting())
    grid = (triton.cdiv(n_q, tiles.block_rows), b)
    pairwise_forward_kernel[grid](
        q, k, squared_norms(q, acc_dtype), squared_norms(k, acc_dtype), values, x, log2_scale,
        n_q, m, out, sums,
        **shape_constexprs(c_embed, c_value, tiles), **spec_constexprs(spec), **plan.constexprs(),
        **launch_options(tiles),
    )
    return out, sums


def fused_backward(grad: torch.Tensor, q: torch.Tensor, k: torch.Tensor, values: torch.Tensor, x: torch.Tensor,
                   log2_scale: torch.Tensor, row_sums: torch.Tensor, spec: FusedSpec, *,
                   fp32_precision: str = DEFAULT_FP32_PRECISION, tiles: Tiles | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Gradients (dq, dk, dv, dx) in the compute dtype from ∂L/∂u, recomputing ω tile by tile.

    dx is None for the kernels that do not subtract x (u does not depend on x).
    """
    dtype = q.dtype
    acc_dtype = compute_dtype(dtype)
    b, n_q, c_embed = q.shape
    m, c_value = k.shape[1], values.shape[2]
    tiles = tiles or BACKWARD_TILES[dtype]
    grad = grad.to(dtype).contiguous()
    q_sq, k_sq = squared_norms(q, acc_dtype), squared_norms(k, acc_dtype)
    g_dot_x = (grad.to(acc_dtype) * x.to(acc_dtype)).sum(-1).contiguous() if spec.subtract_x else None
    dq = torch.empty(b, n_q, c_embed, device=q.device, dtype=acc_dtype)
    dk = torch.empty(b, m, c_embed, device=q.device, dtype=acc_dtype)
    dv = torch.empty(b, m, c_value, device=q.device, dtype=acc_dtype)
    plan = precision_plan(dtype, fp32_precision, backward=True, interpret=interpreting())
    constexprs = dict(**shape_constexprs(c_embed, c_value, tiles), **spec_constexprs(spec), **plan.constexprs(),
                      **launch_options(tiles))
    pairwise_backward_rows_kernel[(triton.cdiv(n_q, tiles.block_rows), b)](
        q, k, q_sq, k_sq, values, grad, g_dot_x, log2_scale, n_q, m, dq, **constexprs)
    pairwise_backward_cols_kernel[(triton.cdiv(m, tiles.block_cols), b)](
        q, k, q_sq, k_sq, values, grad, g_dot_x, log2_scale, n_q, m, dk, dv, **constexprs)
    dx = (-spec.sign / m) * row_sums.unsqueeze(-1) * grad.to(acc_dtype) if spec.subtract_x else None
    return dq, dk, dv, dx


class FusedPairwise(torch.autograd.Function):
    """u from conditioned embeddings; the backward recomputes ω (O(N·C) memory, no N×M matrix)."""

    @staticmethod
    def forward(ctx, q, k, values, x, log2_scale, spec, fp32_precision):  # noqa: D102
        needs_grad = any(ctx.needs_input_grad[:4])
        out, row_sums = fused_forward(q, k, values, x, log2_scale, spec, fp32_precision=fp32_precision,
                                      row_sums=needs_grad and spec.subtract_x)
        if needs_grad:
            ctx.save_for_backward(q, k, values, x, log2_scale, row_sums)
            ctx.spec, ctx.fp32_precision = spec, fp32_precision
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # noqa: D102
        q, k, values, x, log2_scale, row_sums = ctx.saved_tensors
        dq, dk, dv, dx = fused_backward(grad, q, k, values, x, log2_scale, row_sums, ctx.spec,
                                        fp32_precision=ctx.fp32_precision)
        dx = None if dx is None else dx.to(x.dtype)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(values.dtype), dx, None, None, None


def _check_device(t: torch.Tensor) -> None:
    if t.device.type == "cpu" and not interpreting():
        raise RuntimeError(
            "pairwise_update(impl='triton') got CPU tensors: the fused kernel runs on CUDA tensors, or on CPU "
            "under Triton's interpreter, which needs TRITON_INTERPRET=1 in the environment before the first call"
        )


@dataclass(frozen=True)
class KernelInputs:
    """What the fused kernels (and the TensorRT plugin) take: conditioned embeddings in the input
    dtype, values and x in it too, and the per-batch scale exponent l_b (scale 2^{l_b})."""

    theta: torch.Tensor  # θ' (B, N, C')
    phi: torch.Tensor  # φ' (B, M, C')
    values: torch.Tensor  # v (B, M, C)
    x: torch.Tensor  # x (B, N, C)
    log2_scale: torch.Tensor  # l (B,), compute dtype


def prepare_inputs(theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, x: torch.Tensor) -> KernelInputs:
    """Condition θ, φ as the reference does (:func:`condition_embeddings` in the compute dtype),
    then round θ', φ', v and x to ``theta``'s dtype for the tensor cores; all contiguous."""
    dtype = theta.dtype
    acc_dtype = compute_dtype(dtype)
    theta_c, phi_c, log_scale = condition_embeddings(theta.to(acc_dtype), phi.to(acc_dtype))
    # The scale is 2^l exactly (condition_embeddings); the kernel takes the integer l.
    log2_scale = torch.round(log_scale.detach().reshape(theta.shape[0]) / math.log(2.0)).contiguous()
    return KernelInputs(theta_c.to(dtype).contiguous(), phi_c.to(dtype).contiguous(), values.to(dtype).contiguous(),
                        x.to(dtype).contiguous(), log2_scale)


def fused_update(theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, x: torch.Tensor,
                 params: KernelParams, *, fp32_precision: str = DEFAULT_FP32_PRECISION) -> torch.Tensor:
    """u (B, N, C) for a distance kernel through the fused Triton kernels (docs/design.md §2.3).

    The inputs take ``theta``'s dtype (float16, bfloat16, float32 or float64); u is returned
    in ``x``'s dtype, like the reference. ω's constants, the log kernel's ``params.log_gamma``
    included, are compiled in (:func:`~nlseg.ops.fused.spec.fused_spec`).
    """
    dtype = theta.dtype
    if dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"impl='triton' computes float16, bfloat16, float32 and float64 inputs, not {dtype}")
    _check_device(theta)
    b, n_q, _ = theta.shape
    if b == 0 or n_q == 0 or x.shape[2] == 0:
        return torch.zeros(x.shape, device=x.device, dtype=x.dtype)
    spec = fused_spec(params, compute_dtype(dtype))
    k = prepare_inputs(theta, phi, values, x)
    # Triton launches on the current CUDA device; the autograd engine sets it for the backward.
    with torch.cuda.device(theta.device) if theta.is_cuda else contextlib.nullcontext():
        u = FusedPairwise.apply(k.theta, k.phi, k.values, k.x, k.log2_scale, spec, fp32_precision)
    return u.to(x.dtype)
