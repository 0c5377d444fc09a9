"""Ahead-of-time compilation of the fused forward kernel to PTX for the TensorRT plugin.

``tensorrt.plugin``'s ``@trtp.aot_impl`` returns (kernel name, PTX, ``KernelLaunchParams``,
``SymIntExprs``), and TensorRT launches the kernel with the plugin's input pointers, then the
integer extra arguments, then the output pointers. The forward kernel's runtime arguments
are in exactly that order: θ', φ', ‖θ'‖², ‖φ'‖², v, x, log2 scale (inputs), N, M (extra
arguments), u (output); :func:`nlseg.ops.fused.function.prepare_inputs` and
:func:`~nlseg.ops.fused.function.squared_norms` compute the inputs from θ, φ, v, x. Every
float constant of ω, the channel counts and the tiles are compile-time constants, so one
compilation serves one (ω's constants, dtype, C', C); the tiles fit TensorRT's 48 KiB of
dynamic shared memory (:func:`nlseg.ops.fused.spec.forward_tiles`).

Compiling needs no GPU: Triton lowers to PTX (and checks it with its bundled ptxas) for
any target. Triton 3.2.0 gives the kernel exactly its 10 parameters; newer releases (checked:
3.5.0, 3.7.1, 3.9.0) append two pointers, for global and profile scratch memory (``ptx_params``
counts all parameters); this kernel needs neither (``global_scratch_bytes`` and
``profile_scratch_bytes`` are 0), so they may be null.
Section 2 of benchmarks/fused_check.py launches the PTX through the CUDA driver in exactly
this argument order.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

import torch
import triton
from triton.backends.compiler import BaseBackend, GPUTarget

from nlseg.ops.fused.function import (
    DEFAULT_FP32_PRECISION,
    interpreting,
    launch_options,
    precision_plan,
    shape_constexprs,
    spec_constexprs,
)
from nlseg.ops.fused.kernels import pairwise_forward_kernel
from nlseg.ops.fused.spec import (KERNEL_EXTRA_ARGS, KERNEL_INPUTS, KERNEL_OUTPUTS, SUPPORTED_DTYPES, FusedSpec, Tiles,
                                  forward_tiles, fused_spec)
from nlseg.ops.omega import KernelParams
from nlseg.ops.reference import compute_dtype

# Runtime arguments of the forward kernel, in order, and what TensorRT passes for each.
INPUTS, EXTRA_ARGS, OUTPUTS = KERNEL_INPUTS, KERNEL_EXTRA_ARGS, KERNEL_OUTPUTS
_KERNEL_ARGS = ("Q", "K", "Q_SQ", "K_SQ", "V", "X", "LOG2_SCALE", "N", "M", "OUT")
_POINTER_TYPES = {torch.float16: "*fp16", torch.bfloat16: "*bf16", torch.float32: "*fp32", torch.float64: "*fp64"}


@dataclass(frozen=True)
class AotKernel:
    """A compiled forward kernel: what ``tensorrt.plugin.aot_impl`` returns, and how to launch it.

    Launch: block (``threads_per_block``, 1, 1), grid :meth:`grid` = (⌈N / block_rows⌉, B, 1),
    ``shared_mem`` bytes of dynamic shared memory; arguments :data:`INPUTS` (pointers to
    contiguous tensors: θ', φ' (B, N|M, C') and v, x (B, M|N, C) in ``dtype``; ‖θ'‖² (B, N),
    ‖φ'‖² (B, M) and log2 scale (B,) in the compute dtype), then N and M as int32, then the
    output u (B, N, C) in ``dtype``.
    """

    name: str
    ptx: str
    target: str  # "sm_80", "sm_90", ...
    dtype: torch.dtype
    num_warps: int
    threads_per_block: int
    shared_mem: int
    global_scratch_bytes: int
    profile_scratch_bytes: int
    block_rows: int
    ptx_params: int

    @property
    def arguments(self) -> tuple[str, ...]:
        """The runtime arguments in launch order: inputs, extra (int32) arguments, outputs."""
        return INPUTS + EXTRA_ARGS + OUTPUTS

    @property
    def scratch_params(self) -> int:
        """Triton's trailing scratch-pointer parameters after :attr:`arguments` (0 with Triton 3.2.0, else 2)."""
        return self.ptx_params - len(self.arguments)

    def grid(self, batch: int, n_queries: int) -> tuple[int, int, int]:
        """(⌈N / block_rows⌉, B, 1)."""
        return (triton.cdiv(n_queries, self.block_rows), batch, 1)


def gpu_target(target: str) -> GPUTarget:
    """``"sm_80"`` / ``"sm_90"`` (any ``sm_XY``) as Triton's CUDA target."""
    match = re.fullmatch(r"sm_(\d+)a?", target)
    if not match:
        raise ValueError(f"target must look like 'sm_80' or 'sm_90', got {target!r}")
    return GPUTarget("cuda", int(match.group(1)), 32)


def _ast_source(fn, signature: dict[str, str], constexprs: dict[str, object], attrs: dict) -> triton.compiler.ASTSource:
    parameters = inspect.signature(triton.compiler.ASTSource.__init__).parameters
    key = "constexprs" if "constexprs" in parameters else "constants"  # renamed in Triton 3.3
    return triton.compiler.ASTSource(fn=fn, signature=signature, attrs=attrs, **{key: constexprs})


def compile_to_ptx(fn, signature: dict[str, str], constexprs: dict[str, object], tiles: Tiles, target: str):
    """Compile a Triton kernel for ``target`` without a GPU; pointers are assumed 16-byte aligned."""
    if interpreting():
        raise RuntimeError("ahead-of-time compilation needs the compiled kernels: unset TRITON_INTERPRET")
    signature = {**signature, **{name: "constexpr" for name in constexprs}}
    names = list(inspect.signature(fn.fn).parameters)
    pointers = [names.index(name) for name, kind in signature.items() if kind.startswith("*")]
    src = _ast_source(fn, signature, constexprs, _aligned(pointers))
    return triton.compile(src, target=gpu_target(target), options=launch_options(tiles))


def _aligned(indices: list[int]) -> object:
    """Triton's hint that the arguments at ``indices`` are 16-byte aligned (tt.divisibility = 16)."""
    parse = getattr(BaseBackend, "parse_attr", None)
    if parse is not None:  # Triton >= 3.3
        return {(i,): parse("D") for i in indices}
    from triton.backends.compiler import AttrsDescriptor  # Triton 3.2, the release TensorRT 10.9-10.15 pair with

    return AttrsDescriptor.from_hints({i: 16 for i in indices})


def compile_pairwise_forward(
    kernel: str,
    *,
    target: str = "sm_90",
    dtype: torch.dtype = torch.float16,
    c_embed: int = 32,
    c_value: int = 64,
    s: float = 0.5,
    lam: float = 0.1,
    n: int = 2,
    fp32_precision: str = DEFAULT_FP32_PRECISION,
    tiles: Tiles | None = None,
) -> AotKernel:
    """PTX of the fused forward kernel for ``kernel`` (``frac``/``invfrac``/``log``) on ``target``."""
    if dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"the fused kernel computes {', '.join(map(str, SUPPORTED_DTYPES))}, not {dtype}")
    spec = fused_spec(KernelParams(kernel, s, lam, n), compute_dtype(dtype))
    return compile_forward(spec, target=target, dtype=dtype, c_embed=c_embed, c_value=c_value,
                           fp32_precision=fp32_precision, tiles=tiles)


def compile_forward(
    spec: FusedSpec,
    *,
    target: str,
    dtype: torch.dtype,
    c_embed: int,
    c_value: int,
    fp32_precision: str = DEFAULT_FP32_PRECISION,
    tiles: Tiles | None = None,
) -> AotKernel:
    """PTX of the forward kernel for ω's constants ``spec`` (from :func:`~nlseg.ops.fused.spec.fused_spec`)."""
    if dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"the fused kernel computes {', '.join(map(str, SUPPORTED_DTYPES))}, not {dtype}")
    tiles = tiles or forward_tiles(dtype, c_embed, c_value)
    acc = _POINTER_TYPES[compute_dtype(dtype)]
    data = _POINTER_TYPES[dtype]
    signature = dict(zip(_KERNEL_ARGS, (data, data, acc, acc, data, data, acc, "i32", "i32", data)))
    constexprs = dict(
        ROW_SUMS=None,
        **shape_constexprs(c_embed, c_value, tiles),
        **spec_constexprs(spec),
        **precision_plan(dtype, fp32_precision, backward=False, interpret=False).constexprs(),
    )
    compiled = compile_to_ptx(pairwise_forward_kernel, signature, constexprs, tiles, target)
    ptx = compiled.asm["ptx"]
    entry = re.search(rf"\.entry\s+{re.escape(compiled.metadata.name)}\s*\(([^)]*)\)", ptx)
    return AotKernel(
        name=compiled.metadata.name,
        ptx=ptx,
        target=target,
        dtype=dtype,
        num_warps=compiled.metadata.num_warps,
        threads_per_block=32 * compiled.metadata.num_warps,
        shared_mem=compiled.metadata.shared,
        global_scratch_bytes=getattr(compiled.metadata, "global_scratch_size", 0),  # absent in 3.2.0
        profile_scratch_bytes=getattr(compiled.metadata, "profile_scratch_size", 0),
        block_rows=tiles.block_rows,
        ptx_params=entry.group(1).count(".param") if entry else 0,
    )
