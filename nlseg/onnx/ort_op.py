"""``nlseg::PairwiseKernel`` in ONNX Runtime, and sessions that can run plugin graphs.

The op runs as an onnxruntime-extensions Python operator: ONNX Runtime hands the node's
inputs and attributes to :func:`pairwise_kernel`, which calls :func:`nlseg.ops.pairwise_update`,
the same function the PyTorch model runs, so no formula is written twice. It needs the
``onnxruntime-extensions`` package (an optional dependency): without it, plugin graphs fail
with one clear line and portable graphs run as usual.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch

from nlseg.errors import InputError
from nlseg.onnx.custom_op import DOMAIN, INPUTS, OP_TYPE
from nlseg.onnx.metadata import load_model_proto
from nlseg.ops import pairwise_update

_registered_library: str | None = None


def pairwise_kernel(
    theta: np.ndarray, phi: np.ndarray, values: np.ndarray, x: np.ndarray, *, kernel: str, s: float, lam: float, n: int
) -> np.ndarray:
    """The op's computation on NumPy arrays: ``pairwise_update`` of the node's inputs and attributes."""
    tensors = (torch.from_numpy(np.require(a, np.float32, ("C", "W"))) for a in (theta, phi, values, x))
    with torch.inference_mode():
        u = pairwise_update(*tensors, kernel, s=float(s), lam=float(lam), n=int(n))
    return np.ascontiguousarray(u.numpy())


def uses_custom_op(model: onnx.ModelProto) -> bool:
    """True if the graph holds ``nlseg::PairwiseKernel`` nodes."""
    return any(node.domain == DOMAIN and node.op_type == OP_TYPE for node in model.graph.node)


def custom_op_available() -> bool:
    """True if this installation can run PairwiseKernel nodes (onnxruntime-extensions is importable)."""
    return importlib.util.find_spec("onnxruntime_extensions") is not None


def custom_op_library() -> str:
    """Register the Python implementation (once) and return the onnxruntime-extensions library path.

    Raises ImportError with an explanation when onnxruntime-extensions is not installed.
    """
    global _registered_library
    if _registered_library is None:
        try:
            from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op
        except ImportError as exc:
            raise ImportError(
                "running nlseg::PairwiseKernel nodes in ONNX Runtime needs onnxruntime-extensions "
                "(pip install onnxruntime-extensions); export without --plugin for a graph of standard operators"
            ) from exc
        attrs = {"kernel": PyCustomOpDef.dt_string, "s": PyCustomOpDef.dt_float,
                 "lam": PyCustomOpDef.dt_float, "n": PyCustomOpDef.dt_int64}
        # "domain::op" registers the op in that domain; ONNX Runtime then calls
        # pairwise_kernel(theta, phi, values, x, kernel=..., s=..., lam=..., n=...).
        onnx_op(op_type=f"{DOMAIN}::{OP_TYPE}", inputs=[PyCustomOpDef.dt_float] * len(INPUTS),
                outputs=[PyCustomOpDef.dt_float], attrs=attrs)(pairwise_kernel)
        _registered_library = get_library_path()
    return _registered_library


def open_session(
    path: str | os.PathLike[str], providers: Sequence[str] = ("CPUExecutionProvider",)
) -> ort.InferenceSession:
    """An ONNX Runtime session for an exported model; plugin graphs get the PairwiseKernel op.

    InputError naming the file when it is not an ONNX model, needs onnxruntime-extensions
    that is missing, or ONNX Runtime cannot run it on ``providers``.
    """
    p = Path(path)
    model = load_model_proto(p)
    options = ort.SessionOptions()
    # ONNX Runtime's idle intra-op threads spin by default: in nlseg infer they take the cores the
    # decode, preprocess and encode threads need, and a plugin graph's op runs torch's own pool.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if uses_custom_op(model):
        try:
            options.register_custom_ops_library(custom_op_library())
        except ImportError as exc:
            raise InputError(f"{p}: {exc}") from None
    try:
        return ort.InferenceSession(str(p), options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, NotImplemented, ...)
        first = str(exc).strip().splitlines()[0][:200]
        raise InputError(f"{p}: ONNX Runtime cannot run this model ({first})") from None
