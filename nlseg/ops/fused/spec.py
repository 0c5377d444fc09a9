"""What the fused kernel is told, computed from the one kernel table (``nlseg.ops.omega``).

The Triton code receives every constant of ω as a compile-time scalar taken from
:class:`~nlseg.ops.omega.KernelParams` (its constant, exponent and ``log_gamma``),
:data:`~nlseg.ops.omega.KERNEL_FORMS` and :func:`~nlseg.ops.omega.zero_rtol`, so the
fused kernel and the reference cannot drift apart (docs/design.md §2.3). Importing this module does
not import Triton.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nlseg.ops.omega import DISTANCE_KERNELS, KERNEL_FORMS, KernelParams, zero_rtol

# The forward kernel's runtime arguments, in launch order: input pointers, int32 sizes, output pointer. The
# AOT kernel (aot.py) and the TensorRT plugin's inputs (nlseg/tensorrt/rules.py) both read them from here.
KERNEL_INPUTS: tuple[str, ...] = ("theta", "phi", "theta_sq", "phi_sq", "values", "x", "log2_scale")
KERNEL_EXTRA_ARGS: tuple[str, ...] = ("N", "M")
KERNEL_OUTPUTS: tuple[str, ...] = ("out",)

# How the kernel evaluates ω' from d'² = ‖θ'_i − φ'_j‖² (conditioned embeddings, docs/design.md §3):
MODE_POWER = 0  # ω' = rsqrt(d'²)^p for an integer p (s = 1/2): one rsqrt per pair
MODE_EXP2 = 1  # ω' = exp2(−(p/2)·log2 d'²) for any other s: one log2 and one exp2 per pair
MODE_LOG = 2  # ω = A·log2 d'² + K_b (kernel `log`): one log2 per pair

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class FusedSpec:
    """The compile-time scalars of one distance kernel ω (docs/design.md §2.3, thesis (4.6)–(4.8)).

    On non-zero pairs ω_ij = gain_b·ω'(d'²_ij) + offset_b, where d' is the distance between
    conditioned embeddings and b the batch element (its power-of-two scale 2^{l_b}):
    power kernels: gain_b = coef·2^{−p·l_b}, offset_b = 0; ``log``: ω' = coef·log2 d'²,
    gain_b = 1, offset_b = 2·coef·l_b + log_offset.
    """

    mode: int
    power: int  # p when mode == MODE_POWER, else 0
    half_p: float  # p/2 for the power kernels, else 0
    coef: float  # c·λ (power kernels) or −c·λ·ln 2 (log)
    log_offset: float  # −c·γ (log), else 0
    sign: float  # u = (sign/M)·(S − x R) or (sign/M)·S
    subtract_x: bool
    zero_rtol: float  # d'² <= zero_rtol·(‖θ'‖² + ‖φ'‖²) counts as zero


def fused_spec(params: KernelParams, compute_dtype: torch.dtype) -> FusedSpec:
    """The :class:`FusedSpec` of a distance kernel ``params`` for sums in ``compute_dtype``.

    The log kernel's constant term −c_n·γ takes γ = ``params.log_gamma`` (one compiled
    variant of the Triton kernels per value).
    """
    if params.kernel not in DISTANCE_KERNELS:
        raise ValueError(f"the fused kernel computes {', '.join(DISTANCE_KERNELS)}, not {params.kernel!r}")
    form = KERNEL_FORMS[params.kernel]
    c = params.constant
    common = dict(sign=form.sign, subtract_x=form.subtracts_x, zero_rtol=zero_rtol(compute_dtype))
    if params.kernel == "log":
        return FusedSpec(MODE_LOG, 0, 0.0, -c * params.lam * math.log(2.0), -c * params.log_gamma, **common)
    p = params.exponent
    integer_power = abs(p - round(p)) < 1e-12 and round(p) >= 1
    return FusedSpec(
        MODE_POWER if integer_power else MODE_EXP2,
        round(p) if integer_power else 0,
        p / 2.0,
        c * params.lam,
        0.0,
        **common,
    )


@dataclass(frozen=True)
class Tiles:
    """Tile shape and launch configuration of one kernel: rows × columns of ω per step."""

    block_rows: int
    block_cols: int
    num_warps: int
    num_stages: int


# Forward: query tile × key tile, the first entry of the dtype's ladder whose shared memory fits
# (forward_tiles). 16-bit inputs take the tensor-core path of the flash-attention tutorial (128
# rows, 8 warps: two warpgroups of 64 rows on Hopper) and give up pipeline stages, then key
# columns, as the channels grow. float32's three-pass tf32 dots hold hi and lo parts of every
# operand: 64 key columns, more than FP32_ACCUMULATORS_PER_THREAD values of the output tile per
# thread, or 32-row tiles on 8 warps spill registers (ptxas), so its tiles are at most 64 × 32
# on 8 warps, then 16-row tiles on 4 warps. float64 (PyTorch only) uses fp64 FMAs.
FORWARD_TILES: dict[torch.dtype, tuple[Tiles, ...]] = {
    torch.float16: (Tiles(128, 64, 8, 3), Tiles(128, 64, 8, 2), Tiles(128, 32, 8, 2), Tiles(128, 32, 8, 1),
                    Tiles(64, 32, 4, 1), Tiles(64, 16, 4, 1)),
    torch.float32: (Tiles(64, 32, 8, 2), Tiles(64, 16, 8, 2), Tiles(16, 32, 4, 2), Tiles(16, 16, 4, 2),
                    Tiles(16, 16, 4, 1)),
    torch.float64: (Tiles(32, 32, 4, 1), Tiles(16, 16, 4, 1)),
}
FORWARD_TILES[torch.bfloat16] = FORWARD_TILES[torch.float16]
# TensorRT launches an AOT plugin's kernel with at most 48 KiB of dynamic shared memory per block
# (no opt-in), the amount every CUDA GPU grants; the same tiles run in PyTorch, so the kernel an
# engine runs is the one the GPU check measures. The estimate below is within ~4 KiB of what
# Triton 3.5-3.9 allocate on sm_90 (more than on sm_80) for 2+ stages and above it for 1 stage;
# benchmarks/ptxas_report.py compiles every configuration and reports the real figure.
SHARED_MEMORY_LIMIT = 48 * 1024
SHARED_MEMORY_BUDGET = 44 * 1024
FP32_ACCUMULATORS_PER_THREAD = 16  # rows × C-block / threads, float32 only


def shared_memory_estimate(tiles: Tiles, dtype: torch.dtype, block_e: int, block_v: int) -> int:
    """Bytes of shared memory of the forward kernel: each stage's key and value tiles, the query tile (twice
    for float32: the hi and lo parts of tf32x3), and the value tile of the second dot."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    query_copies = 2 if dtype == torch.float32 else 1
    per_stage = tiles.block_cols * (block_e + block_v)
    return (tiles.num_stages * per_stage + query_copies * tiles.block_rows * block_e
            + tiles.block_cols * block_v) * itemsize


def forward_tiles(dtype: torch.dtype, c_embed: int, c_value: int) -> Tiles:
    """The forward tiles for ``dtype`` inputs and channels C', C: the first of ``FORWARD_TILES[dtype]`` within
    :data:`SHARED_MEMORY_BUDGET` (and, for float32, :data:`FP32_ACCUMULATORS_PER_THREAD`); the last one
    where none is (channels beyond 64/128 only)."""
    ladder = FORWARD_TILES[dtype]
    block_e, block_v = channel_block(c_embed), channel_block(c_value)

    def fits(t: Tiles) -> bool:
        registers = dtype != torch.float32 or t.block_rows * block_v <= FP32_ACCUMULATORS_PER_THREAD * 32 * t.num_warps
        return registers and shared_memory_estimate(t, dtype, block_e, block_v) <= SHARED_MEMORY_BUDGET

    return next((t for t in ladder if fits(t)), ladder[-1])


# Backward: the query pass (dθ) and the key pass (dφ, dv) hold two more tiles of the same
# shape (g·v and the weighted gradient) and two or three accumulators, so the tiles are
# smaller: 64 × 64 (no spills on sm_90 for 16-bit inputs); float32's three-pass tf32 dots
# need 32 × 32 to stay (almost) within 255 registers per thread.
BACKWARD_TILES: dict[torch.dtype, Tiles] = {
    torch.float16: Tiles(64, 64, 4, 2),
    torch.bfloat16: Tiles(64, 64, 4, 2),
    torch.float32: Tiles(32, 32, 4, 2),
    torch.float64: Tiles(32, 32, 4, 1),
}


def channel_block(channels: int) -> int:
    """Channels padded to a power of two of at least 16 (tensor-core dots need K, N >= 16)."""
    return max(16, 1 << max(channels - 1, 0).bit_length())
