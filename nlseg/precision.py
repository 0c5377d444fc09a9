"""The one table of nlseg's tensor types and precisions, in every spelling the backends need.

A tensor type is named as NumPy and the model metadata name it (``"float16"``); :data:`DTYPES`
gives its PyTorch dtype, TensorRT ``DataType`` member and Triton Inference Server
``config.pbtxt`` type. A precision (``"fp16"``) is what a backend runs at: :data:`PRECISIONS`
maps it to its floating type. INT8 engines run at precision ``"int8"`` with float32 I/O, so
``int8`` is a precision without a floating type of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DType:
    """One tensor type: its name (NumPy's), PyTorch dtype, TensorRT ``DataType`` member, Triton server type."""

    name: str
    torch: torch.dtype
    tensorrt: str
    triton_server: str


DTYPES: dict[str, DType] = {d.name: d for d in (
    DType("float32", torch.float32, "FLOAT", "TYPE_FP32"),
    DType("float16", torch.float16, "HALF", "TYPE_FP16"),
    DType("bfloat16", torch.bfloat16, "BF16", "TYPE_BF16"),
    DType("int8", torch.int8, "INT8", "TYPE_INT8"),
    DType("uint8", torch.uint8, "UINT8", "TYPE_UINT8"),
    DType("int32", torch.int32, "INT32", "TYPE_INT32"),
    DType("int64", torch.int64, "INT64", "TYPE_INT64"),
    DType("bool", torch.bool, "BOOL", "TYPE_BOOL"),
)}
PRECISIONS: dict[str, str] = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def torch_dtype(name: str) -> torch.dtype:
    """``torch.float16`` for ``"float16"`` (KeyError for a type nlseg does not use)."""
    return DTYPES[name].torch


def from_tensorrt(member: str) -> str:
    """The type name of a TensorRT ``DataType`` member name (``"HALF"`` -> ``"float16"``); unknown ones lower-cased."""
    return next((d.name for d in DTYPES.values() if d.tensorrt == member), member.lower())


def precision_of(dtype: str) -> str:
    """The precision a model whose floating tensors are ``dtype`` runs at (``"float16"`` -> ``"fp16"``; KeyError
    for a type that is no precision)."""
    return {d: p for p, d in PRECISIONS.items()}[dtype]
