"""The TensorRT plugin ``nlseg::PairwiseKernel`` v1: its I/O contract as plain functions.

The plugin runs the fused forward kernel (:func:`nlseg.ops.fused.aot.compile_pairwise_forward`)
on that kernel's own inputs, in the kernel's launch order (:data:`nlseg.ops.fused.spec.KERNEL_INPUTS`, which the
AOT kernel reads too):

| # | input      | shape     | type                      |
|---|------------|-----------|---------------------------|
| 0 | theta      | (B, N, C')| float32 or float16 (T)    |
| 1 | phi        | (B, M, C')| T                         |
| 2 | theta_sq   | (B, N)    | float32                   |
| 3 | phi_sq     | (B, M)    | float32                   |
| 4 | values     | (B, M, C) | T                         |
| 5 | x          | (B, N, C) | T                         |
| 6 | log2_scale | (B,)      | float32                   |

and one output u (B, N, C) of type T. C' and C must be build-time constants (the kernel is
compiled for them); B, N, M may be dynamic. TensorRT first asks for the output type with
placeholder shapes (only ranks known), then for the output shape with real ones:
:func:`infer_output` checks what each call can know. The embeddings arrive conditioned and their
squared norms precomputed: :mod:`nlseg.tensorrt.graph` inserts that preprocessing, traced from
:func:`nlseg.ops.fused.function.prepare_inputs`, in front of every plugin node.

Nothing here imports TensorRT: :mod:`nlseg.tensorrt.plugin` calls these functions with
values read from TensorRT's tensor descriptors, and the tests call them directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

from nlseg.onnx.custom_op import OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION
from nlseg.ops.fused.spec import KERNEL_EXTRA_ARGS, KERNEL_INPUTS, KERNEL_OUTPUTS
from nlseg.ops.omega import DISTANCE_KERNELS, KernelParams

PLUGIN_NAME = OP_TYPE
PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"
# The kernel's own argument lists (int32 extra arguments between the inputs and the output).
PLUGIN_INPUTS, PLUGIN_EXTRA_ARGS, PLUGIN_OUTPUTS = KERNEL_INPUTS, KERNEL_EXTRA_ARGS, KERNEL_OUTPUTS
DATA_INPUTS: tuple[int, ...] = (0, 1, 4, 5)  # in the plugin's data type T
FLOAT32_INPUTS: tuple[int, ...] = (2, 3, 6)  # always float32 (the kernel's compute dtype)
DATA_TYPES: tuple[str, ...] = ("float32", "float16")
# Dynamic shared memory a block gets without cudaFuncAttributeMaxDynamicSharedMemorySize, on every CUDA GPU:
# TensorRT's AOT plugin launch documents no way to request that opt-in, so the kernel must fit in it.
MAX_SHARED_MEMORY = 48 * 1024
__all__ = ["PLUGIN_ID", "PLUGIN_NAME", "PLUGIN_NAMESPACE", "PLUGIN_VERSION", "MAX_SHARED_MEMORY", "TensorSpec",
           "LaunchParams", "scalar_attribute", "plugin_attributes", "infer_output", "channel_counts", "io_types",
           "launch_params"]

Dim = TypeVar("Dim")


@dataclass(frozen=True)
class TensorSpec:
    """A plugin tensor as the rules see it: dims (int when known at build time, else None) and type name."""

    shape: tuple[int | None, ...]
    dtype: str


@dataclass(frozen=True)
class LaunchParams:
    """Grid, block and dynamic shared memory of one kernel launch; dims are ints or TensorRT expressions."""

    grid_x: object
    grid_y: object
    block_x: int
    shared_mem: int


_RANKS = (3, 3, 2, 2, 3, 3, 1)
# (input, axis) pairs that must agree: batch, queries N, keys M, channels C', channels C.
_SAME_SIZE: dict[str, tuple[tuple[int, int], ...]] = {
    "batch B": tuple((i, 0) for i in range(7)),
    "queries N": ((0, 1), (2, 1), (5, 1)),
    "keys M": ((1, 1), (3, 1), (4, 1)),
    "embedding channels C'": ((0, 2), (1, 2)),
    "value channels C": ((4, 2), (5, 2)),
}


def io_types() -> str:
    """The plugin's type combinations in ``tensorrt.plugin.AutoTuneCombination`` syntax (inputs, then output).

    ``FP32|FP16`` positions switch together (all float32 or all float16); ``FP32`` ones are fixed.
    """
    columns = ["FP32" if i in FLOAT32_INPUTS else "FP32|FP16" for i in range(len(PLUGIN_INPUTS))]
    return ", ".join([*columns, "FP32|FP16"])


def scalar_attribute(name: str, value: object) -> float | int:
    """One scalar plugin attribute as ``tensorrt.plugin`` hands it over: the plugin declares ``s``, ``lam``
    and ``n`` as NumPy arrays (``numpy.typing.NDArray``), which every release (10.9 on) creates with
    ``PluginField.data.astype(dtype)``, a 1-element array from the parser; this reads its one element.

    A plain number passes as it is. ValueError when the array does not hold exactly one value.
    """
    if isinstance(value, (int, float)):
        return value
    if getattr(value, "size", None) != 1:
        raise ValueError(f"{PLUGIN_ID}: attribute {name} must be one value, got {value!r}")
    return value.reshape(-1)[0].item()


def plugin_attributes(kernel: str, s: object, lam: object, n: object) -> KernelParams:
    """The attributes as TensorRT's ONNX parser delivers them (the ONNX node's ``kernel``, ``s``,
    ``lam``, ``n``), checked and normalised into the kernel's parameters (log kernel: Euler's γ).

    The parser copies a string attribute with its C terminator (onnx-tensorrt's ``copyField``
    appends ``\\0``) and ``tensorrt.plugin`` decodes all of its bytes, so ``kernel`` arrives as
    ``"frac\\0"``: trailing NULs are dropped. Float attributes arrive rounded to float32
    (``PluginFieldType.FLOAT32``) and are compiled into the kernel as delivered (λ = 0.1 becomes
    0.10000000149, a relative change of 1.5e-8); ``s``, ``lam``, ``n`` are numbers or 1-element
    arrays (:func:`scalar_attribute`). ValueError for a kernel the plugin does not compute or
    parameters outside its domain.
    """
    name = str(kernel).rstrip("\x00")
    if name not in DISTANCE_KERNELS:
        raise ValueError(f"{PLUGIN_ID} computes {', '.join(DISTANCE_KERNELS)}, not {name!r}")
    return KernelParams(name, float(scalar_attribute("s", s)), float(scalar_attribute("lam", lam)),
                        int(scalar_attribute("n", n)))


def infer_output(inputs: Sequence[TensorSpec], *, shapes_known: bool = True) -> TensorSpec:
    """The output's spec (x's shape and type) after checking ranks, types and the sizes that must agree.

    ``shapes_known=False`` is TensorRT's output-type query, made with placeholder shapes: only
    ranks and types are checked there. ValueError names the first input or size that breaks
    the contract.
    """
    if len(inputs) != len(PLUGIN_INPUTS):
        raise ValueError(f"{PLUGIN_ID} takes {len(PLUGIN_INPUTS)} inputs ({', '.join(PLUGIN_INPUTS)}), "
                         f"got {len(inputs)}")
    for name, spec, rank in zip(PLUGIN_INPUTS, inputs, _RANKS):
        if len(spec.shape) != rank:
            raise ValueError(f"{PLUGIN_ID}: input {name} must have rank {rank}, got shape {spec.shape}")
    data_type = inputs[0].dtype
    if data_type not in DATA_TYPES:
        raise ValueError(f"{PLUGIN_ID}: theta must be float32 or float16, got {data_type}")
    for i in DATA_INPUTS:
        if inputs[i].dtype != data_type:
            raise ValueError(f"{PLUGIN_ID}: {PLUGIN_INPUTS[i]} is {inputs[i].dtype} but theta is {data_type}: "
                             f"{', '.join(PLUGIN_INPUTS[j] for j in DATA_INPUTS)} share one type")
    for i in FLOAT32_INPUTS:
        if inputs[i].dtype != "float32":
            raise ValueError(f"{PLUGIN_ID}: {PLUGIN_INPUTS[i]} must be float32, got {inputs[i].dtype}")
    for what, places in _SAME_SIZE.items():
        known = {(PLUGIN_INPUTS[i], inputs[i].shape[axis]) for i, axis in places if inputs[i].shape[axis] is not None}
        if len({size for _, size in known}) > 1:
            listed = ", ".join(f"{name} {size}" for name, size in sorted(known))
            raise ValueError(f"{PLUGIN_ID}: the {what} sizes disagree ({listed})")
    if shapes_known:
        channel_counts(inputs)
    x = inputs[PLUGIN_INPUTS.index("x")]
    return TensorSpec(x.shape, x.dtype)


def channel_counts(inputs: Sequence[TensorSpec]) -> tuple[int, int]:
    """(C', C): the channel counts the kernel is compiled for; ValueError when either is not a build-time constant."""
    c_embed, c_value = inputs[0].shape[2], inputs[5].shape[2]
    if c_embed is None or c_value is None:
        raise ValueError(f"{PLUGIN_ID}: the channel counts C' and C must be known when the engine is built "
                         f"(got theta {inputs[0].shape}, x {inputs[5].shape})")
    if c_embed < 1 or c_value < 1:
        raise ValueError(f"{PLUGIN_ID}: empty channels (C' = {c_embed}, C = {c_value})")
    return c_embed, c_value


def launch_params(block_rows: int, threads_per_block: int, shared_mem: int, batch: Dim, queries: Dim,
                  cdiv: Callable[[Dim, int], Dim]) -> LaunchParams:
    """The kernel's launch: grid (⌈N / block_rows⌉, B, 1), ``threads_per_block`` threads, ``shared_mem`` bytes.

    ``batch`` and ``queries`` are ints or TensorRT shape expressions; ``cdiv`` is the matching
    ceiling division (``tensorrt.plugin.cdiv`` for expressions).
    """
    return LaunchParams(grid_x=cdiv(queries, block_rows), grid_y=batch, block_x=threads_per_block,
                        shared_mem=shared_mem)
