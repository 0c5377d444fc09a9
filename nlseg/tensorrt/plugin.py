"""``nlseg::PairwiseKernel`` v1 as a TensorRT Python plugin (``tensorrt.plugin``, TensorRT >= 10.9).

Three definitions, registered by :func:`register_plugin`:

- ``@trtp.register``: shape and type inference, :func:`nlseg.tensorrt.rules.infer_output`
  (output = x's shape and type) after checking the attributes;
- ``@trtp.autotune``: the type combinations of :func:`nlseg.tensorrt.rules.io_types` (float32 or
  float16 data, float32 norms and scale), linear layout;
- ``@trtp.aot_impl``: the fused forward kernel compiled ahead of time to PTX by
  :func:`nlseg.ops.fused.aot.compile_pairwise_forward` for the building GPU, with its launch
  (grid (⌈N / rows⌉, B), block, shared memory) and the int32 extra arguments N, M.

There is no ``@trtp.impl``: with only the AOT implementation TensorRT embeds the kernel in the
engine, which then runs without Python (trtexec, Triton Inference Server); the graph's nodes
also carry ``aot=1``. Plugin attributes are not serialized into an AOT engine, so everything
the kernel needs is compiled into it. This module imports ``tensorrt`` and is imported only
when an engine is built.

Functions decorated for ``tensorrt.plugin`` keep plain annotations (no ``from __future__
import annotations``): the framework reads them to tell tensors from attributes.
"""

import ctypes
import functools
import re

import torch

from nlseg.ops.kernels import DISTANCE_KERNELS, check_kernel
from nlseg.tensorrt import rules
from nlseg.tensorrt.compat import import_tensorrt

_registered = False
_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def device_target() -> str:
    """``sm_XY`` of the current CUDA device, the GPU TensorRT builds for."""
    major, minor = torch.cuda.get_device_capability()
    return f"sm_{major}{minor}"


@functools.lru_cache(maxsize=None)
def plugin_kernel(kernel: str, target: str, dtype: str, c_embed: int, c_value: int, s: float, lam: float, n: int):
    """The :class:`~nlseg.ops.fused.aot.AotKernel` of one plugin configuration (compiled once per process).

    RuntimeError if the kernel would need Triton's scratch memory, which TensorRT does not
    provide (it passes null for Triton's trailing scratch pointers).
    """
    from nlseg.ops.fused.aot import compile_pairwise_forward

    compiled = compile_pairwise_forward(kernel, target=target, dtype=_TORCH_DTYPES[dtype], c_embed=c_embed,
                                        c_value=c_value, s=s, lam=lam, n=n)
    if compiled.scratch_bytes:
        raise RuntimeError(f"{rules.PLUGIN_ID}: the {kernel} kernel needs {compiled.scratch_bytes} bytes of Triton "
                           "scratch memory, which an AOT TensorRT plugin cannot provide")
    return compiled


def check_shared_memory(shared_mem: int) -> None:
    """RuntimeError when the current GPU cannot give a block ``shared_mem`` bytes of shared memory."""
    limit = getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "shared_memory_per_block_optin", None)
    if limit is not None and shared_mem > limit:
        raise RuntimeError(f"{rules.PLUGIN_ID}: the kernel needs {shared_mem} bytes of shared memory per block, "
                           f"this GPU allows {limit}")


def ptx_isa(ptx: str) -> tuple[int, int]:
    """The PTX ISA version of ``ptx`` ('.version 8.7' -> (8, 7))."""
    match = re.search(r"^\s*\.version\s+(\d+)\.(\d+)", ptx, re.M)
    if match is None:
        raise ValueError("no .version directive in the PTX")
    return int(match.group(1)), int(match.group(2))


def driver_cuda_version() -> tuple[int, int] | None:
    """(major, minor) CUDA version of the installed driver, None where libcuda cannot be asked."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
        version = ctypes.c_int()
        if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return None
    except OSError:
        return None
    return version.value // 1000, (version.value % 1000) // 10


def check_ptx_loadable(ptx: str) -> None:
    """RuntimeError when the driver is too old to JIT-compile the PTX Triton produced.

    TensorRT loads an AOT plugin's PTX through the driver when the engine runs; a PTX ISA newer
    than the driver's CUDA version would only fail then. Skipped where the versions are unknown.
    """
    cuda = driver_cuda_version()
    if cuda is None:
        return
    try:
        from triton.backends.nvidia.compiler import ptx_get_version
    except ImportError:
        return
    supported = ptx_get_version(f"{cuda[0]}.{cuda[1]}")
    isa = ptx_isa(ptx)
    if isa[0] * 10 + isa[1] > supported:
        raise RuntimeError(f"{rules.PLUGIN_ID}: Triton emitted PTX ISA {isa[0]}.{isa[1]} but the driver (CUDA "
                           f"{cuda[0]}.{cuda[1]}) loads at most {supported // 10}.{supported % 10}: update the "
                           "NVIDIA driver or use a Triton release that matches it")


def register_plugin() -> None:
    """Register ``nlseg::PairwiseKernel`` v1 with TensorRT's plugin registry (once per process)."""
    global _registered
    if _registered:
        return
    trt = import_tensorrt("--trt")
    import tensorrt.plugin as trtp

    type_names = {trt.float32: "float32", trt.float16: "float16"}

    def spec(desc: "trtp.TensorDesc") -> rules.TensorSpec:
        dims = tuple(e.constant_value() if not e.is_fake and e.is_constant else None for e in desc.shape_expr)
        return rules.TensorSpec(dims, type_names.get(desc.dtype, str(desc.dtype)))

    @trtp.register(rules.PLUGIN_ID)
    def describe(theta: trtp.TensorDesc, phi: trtp.TensorDesc, theta_sq: trtp.TensorDesc, phi_sq: trtp.TensorDesc,
                 values: trtp.TensorDesc, x: trtp.TensorDesc, log2_scale: trtp.TensorDesc,
                 kernel: str, s: float, lam: float, n: int) -> trtp.TensorDesc:
        if kernel not in DISTANCE_KERNELS:
            raise ValueError(f"{rules.PLUGIN_ID} computes {', '.join(DISTANCE_KERNELS)}, not {kernel!r}")
        check_kernel(kernel, s, n)
        rules.infer_output([spec(d) for d in (theta, phi, theta_sq, phi_sq, values, x, log2_scale)])
        return x.like()

    @trtp.autotune(rules.PLUGIN_ID)
    def formats(theta, phi, theta_sq, phi_sq, values, x, log2_scale, outputs):
        return [trtp.AutoTuneCombination(rules.io_types(), "LINEAR")]

    @trtp.aot_impl(rules.PLUGIN_ID)
    def aot_kernel(theta, phi, theta_sq, phi_sq, values, x, log2_scale, kernel, s, lam, n, outputs):
        specs = [spec(d) for d in (theta, phi, theta_sq, phi_sq, values, x, log2_scale)]
        out = rules.infer_output(specs)
        c_embed, c_value = rules.channel_counts(specs)
        compiled = plugin_kernel(str(kernel), device_target(), out.dtype, c_embed, c_value, float(s), float(lam),
                                 int(n))
        check_ptx_loadable(compiled.ptx)
        check_shared_memory(compiled.shared_mem)
        launch = rules.launch_params(compiled.block_rows, compiled.threads_per_block, compiled.shared_mem,
                                     theta.shape_expr[0], theta.shape_expr[1], trtp.cdiv)
        params = trtp.KernelLaunchParams()
        params.grid_x = launch.grid_x
        params.grid_y = launch.grid_y
        params.block_x = launch.block_x
        params.shared_mem = launch.shared_mem
        # The kernel's int32 arguments after the 7 input pointers and before the output: N, M.
        extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(theta.shape_expr[1]), trtp.SymInt32(phi.shape_expr[1])])
        return compiled.name.encode(), compiled.ptx.encode(), params, extra

    _registered = True
