"""``nlseg::PairwiseKernel`` v1 as a TensorRT Python plugin (``tensorrt.plugin``, TensorRT >= 10.9).

Three definitions, registered by :func:`register_plugin`:

- ``@trtp.register``: output type and shape, :func:`nlseg.tensorrt.rules.infer_output` (output =
  x's shape and type) after checking the attributes. TensorRT calls it twice: for the output
  type with placeholder shapes (only ranks known; ``tensorrt.plugin`` passes fake dimension
  expressions), then for the output shape with the real ones;
- ``@trtp.autotune``: the type combinations of :func:`nlseg.tensorrt.rules.io_types` (float32 or
  float16 data, float32 norms and scale), linear layout;
- ``@trtp.aot_impl``: the fused forward kernel compiled ahead of time to PTX by
  :func:`nlseg.ops.fused.aot.compile_forward` for the building GPU, with its launch (grid
  (⌈N / rows⌉, B), block, at most 48 KiB of dynamic shared memory) and the int32 extra
  arguments N, M. Its parameter list is the one ``tensorrt.plugin`` validates:
  (inputs…, attributes…, outputs, tactic) with the 4-tuple return annotation.

The scalar attributes ``s``, ``lam``, ``n`` are declared as NumPy arrays and read as their one
element (:func:`nlseg.tensorrt.rules.scalar_attribute`): the creators of TensorRT 10.x turn a
``float``/``int`` attribute into a value with ``float(field.data)``, which NumPy 2.4 refuses for
the parser's 1-element arrays, while every release makes arrays the same way.

There is no ``@trtp.impl``: with only the AOT implementation TensorRT embeds the kernel in the
engine, which then runs without Python (trtexec, Triton Inference Server); the graph's nodes
also carry ``aot=1``. Plugin attributes are not serialized into an AOT engine, so everything
the kernel needs is compiled into it. This module imports ``tensorrt`` only inside
:func:`register_plugin`, which runs when an engine is built.

Functions decorated for ``tensorrt.plugin`` keep plain annotations (no ``from __future__
import annotations``): the framework reads them to tell tensors from attributes.
"""

import ctypes
import functools
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, List, Tuple, Union

import numpy as np
import numpy.typing as npt
import torch

from nlseg.ops.omega import KernelParams
from nlseg.precision import torch_dtype
from nlseg.tensorrt import rules
from nlseg.tensorrt.compat import import_tensorrt, triton_pin

# The scalar attributes' annotations: 1-element arrays of the types the ONNX parser delivers (FLOAT as float32,
# INT as int32). A builtin ``float``/``int`` annotation makes TensorRT 10.x's creator call ``float(f.data)`` on that
# array, which NumPy >= 2.4 refuses; arrays are created the same way by every release (``f.data.astype``), as in
# NVIDIA's ONNX plugin sample (``pads: npt.NDArray[np.int32]``).
Float32Attr = npt.NDArray[np.float32]
Int32Attr = npt.NDArray[np.int32]


def device_target() -> str:
    """``sm_XY`` of the current CUDA device, the GPU TensorRT builds for."""
    major, minor = torch.cuda.get_device_capability()
    return f"sm_{major}{minor}"


@functools.lru_cache(maxsize=None)
def _compiled(params: KernelParams, target: str, dtype: str, c_embed: int, c_value: int):
    """The fused forward kernel of one configuration, compiled once per process."""
    from nlseg.ops.fused.aot import compile_forward
    from nlseg.ops.fused.spec import fused_spec
    from nlseg.ops.reference import compute_dtype

    data_type = torch_dtype(dtype)
    spec = fused_spec(params, compute_dtype(data_type))
    return compile_forward(spec, target=target, dtype=data_type, c_embed=c_embed, c_value=c_value)


def plugin_kernel(params: KernelParams, target: str, dtype: str, c_embed: int, c_value: int,
                  scratch_params: int):
    """The :class:`~nlseg.ops.fused.aot.AotKernel` of one plugin configuration (compiled once per process).

    ω's constants are computed once, by :func:`nlseg.ops.fused.spec.fused_spec` from the
    attributes' :class:`~nlseg.ops.omega.KernelParams`, and compiled in as values.
    RuntimeError when the kernel cannot run as TensorRT launches it: Triton scratch memory
    (TensorRT provides none), a parameter list other than the plugin's arguments followed by
    the ``scratch_params`` trailing pointers this TensorRT pairs with, or more than
    :data:`~nlseg.tensorrt.rules.MAX_SHARED_MEMORY`.
    """
    compiled = _compiled(params, target, dtype, c_embed, c_value)
    what = f"{rules.PLUGIN_ID} ({params.kernel}, {dtype}, C'={c_embed}, C={c_value}, {target})"
    scratch = {"global": compiled.global_scratch_bytes, "profile": compiled.profile_scratch_bytes}
    if any(scratch.values()):
        raise RuntimeError(f"{what}: the kernel needs Triton scratch memory ({scratch}), which TensorRT does not "
                           "provide to an AOT plugin")
    if compiled.scratch_params != scratch_params:
        raise RuntimeError(f"{what}: the kernel has {compiled.ptx_params} parameters, TensorRT passes "
                           f"{len(compiled.arguments)} + {scratch_params} (plugin arguments + Triton scratch "
                           "pointers): use the Triton release pinned for this TensorRT (README)")
    if compiled.shared_mem > rules.MAX_SHARED_MEMORY:
        raise RuntimeError(f"{what}: the kernel needs {compiled.shared_mem} bytes of shared memory per block, "
                           f"more than the {rules.MAX_SHARED_MEMORY} a TensorRT AOT plugin launch gets")
    return compiled


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


@dataclass(frozen=True)
class PluginDefinitions:
    """The three functions :func:`register_plugin` hands to ``tensorrt.plugin``."""

    describe: Callable
    formats: Callable
    aot_kernel: Callable


@functools.lru_cache(maxsize=None)
def plugin_definitions(trt: ModuleType, trtp: ModuleType) -> PluginDefinitions:
    """The plugin's definitions, annotated with ``trtp``'s types (made once per framework, so a retry reuses them)."""
    type_names = {trt.float32: "float32", trt.float16: "float16"}
    scratch_params = triton_pin(trt.__version__).scratch_params

    def spec(desc: trtp.TensorDesc) -> rules.TensorSpec:
        dims = tuple(None if e.is_fake or not e.is_constant else e.constant_value() for e in desc.shape_expr)
        return rules.TensorSpec(dims, type_names.get(desc.dtype, str(desc.dtype)))

    def describe(theta: trtp.TensorDesc, phi: trtp.TensorDesc, theta_sq: trtp.TensorDesc, phi_sq: trtp.TensorDesc,
                 values: trtp.TensorDesc, x: trtp.TensorDesc, log2_scale: trtp.TensorDesc,
                 kernel: str, s: Float32Attr, lam: Float32Attr, n: Int32Attr) -> trtp.TensorDesc:
        rules.plugin_attributes(kernel, s, lam, n)
        inputs = (theta, phi, theta_sq, phi_sq, values, x, log2_scale)
        placeholder = any(e.is_fake for d in inputs for e in d.shape_expr)
        rules.infer_output([spec(d) for d in inputs], shapes_known=not placeholder)
        return x.like()

    def formats(theta: trtp.TensorDesc, phi: trtp.TensorDesc, theta_sq: trtp.TensorDesc, phi_sq: trtp.TensorDesc,
                values: trtp.TensorDesc, x: trtp.TensorDesc, log2_scale: trtp.TensorDesc,
                outputs: Tuple[trtp.TensorDesc]) -> List[trtp.AutoTuneCombination]:
        return [trtp.AutoTuneCombination(rules.io_types(), "LINEAR")]

    def aot_kernel(theta: trtp.TensorDesc, phi: trtp.TensorDesc, theta_sq: trtp.TensorDesc, phi_sq: trtp.TensorDesc,
                   values: trtp.TensorDesc, x: trtp.TensorDesc, log2_scale: trtp.TensorDesc,
                   kernel: str, s: Float32Attr, lam: Float32Attr, n: Int32Attr, outputs: Tuple[trtp.TensorDesc],
                   tactic: int,
                   ) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymIntExprs]:
        kernel_params = rules.plugin_attributes(kernel, s, lam, n)
        specs = [spec(d) for d in (theta, phi, theta_sq, phi_sq, values, x, log2_scale)]
        out = rules.infer_output(specs)
        c_embed, c_value = rules.channel_counts(specs)
        compiled = plugin_kernel(kernel_params, device_target(), out.dtype, c_embed, c_value, scratch_params)
        check_ptx_loadable(compiled.ptx)
        launch = rules.launch_params(compiled.block_rows, compiled.threads_per_block, compiled.shared_mem,
                                     theta.shape_expr[0], theta.shape_expr[1], trtp.cdiv)
        params = trtp.KernelLaunchParams()
        params.grid_x = launch.grid_x
        params.grid_y = launch.grid_y
        params.block_x = launch.block_x
        params.shared_mem = launch.shared_mem
        # The kernel's int32 arguments after the 7 input pointers and before the output: N, M.
        extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(theta.shape_expr[1]), trtp.SymInt32(phi.shape_expr[1])])
        return compiled.name, compiled.ptx, params, extra

    return PluginDefinitions(describe, formats, aot_kernel)


def register_plugin() -> None:
    """Register ``nlseg::PairwiseKernel`` v1 with ``tensorrt.plugin`` and TensorRT's plugin registry.

    Safe to call again, also after a failed call: ``trtp.register`` accepts one definition
    per plugin id and process, so an existing definition made here is kept and the autotune
    and AOT functions are (re)attached to it. RuntimeError if other code defined the id.
    """
    trt = import_tensorrt("--trt")
    import tensorrt.plugin as trtp

    definitions = plugin_definitions(trt, trtp)
    existing = getattr(getattr(trtp.op, rules.PLUGIN_NAMESPACE, None), rules.PLUGIN_NAME, None)
    if existing is None:
        trtp.register(rules.PLUGIN_ID)(definitions.describe)
    elif existing.register_func is not definitions.describe:
        raise RuntimeError(f"{rules.PLUGIN_ID} is already defined in tensorrt.plugin by other code")
    trtp.autotune(rules.PLUGIN_ID)(definitions.formats)
    trtp.aot_impl(rules.PLUGIN_ID)(definitions.aot_kernel)
