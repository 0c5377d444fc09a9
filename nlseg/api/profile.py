"""Forward-pass latency of a backend, and the backends ``nlseg profile`` compares for one model."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

from nlseg.contract import info_from_checkpoint
from nlseg.contract.limits import check_size, parse_shape
from nlseg.errors import InputError
from nlseg.onnx import ExportOptions, export_onnx, read_metadata
from nlseg.onnx.source_model import SourceModel, for_check, from_checkpoint
from nlseg.runtime.backend import Backend
from nlseg.runtime.load import BACKENDS, backend_for, half_for, half_precision, open_backend
from nlseg.runtime.ort_backend import OrtBackend
from nlseg.runtime.timing import latency_stats
from nlseg.runtime.torch_backend import TorchBackend


def profile_backend(backend: Backend, shape: tuple[int, ...] | None = None, *, warmup: int = 10,
                    iters: int = 50) -> dict[str, Any]:
    """Time ``iters`` forward passes of ``backend`` on random input of ``shape`` (default 1x3 and the model's
    size) after ``warmup``: CUDA events on a GPU, wall clock on the CPU. Returns the backend, device,
    precision, shape and mean / p50 / p90 / p95 / p99 / min / max ms and throughput (images/s)."""
    if warmup < 0:
        raise InputError(f"need 0 or more, got {warmup}", param="warmup")
    if iters < 1:
        raise InputError(f"need at least 1, got {iters}", param="iters")
    h, w = backend.info.input_size
    batch_shape = (1, 3, h, w) if shape is None else parse_shape(shape, "shape")
    if len(batch_shape) != 4 or batch_shape[1] != 3:
        raise InputError(f"expected Bx3xHxW such as 1x3x{h}x{w}, got {'x'.join(map(str, batch_shape))}", param="shape")
    check_size(batch_shape[2:], backend.info.min_side, "shape")  # type: ignore[arg-type]
    times = backend.time_forward(batch_shape, warmup, iters)  # type: ignore[arg-type]
    return {"backend": backend.name, "device": backend.device, "device_name": backend.device_name(),
            "precision": backend.precision, "shape": list(batch_shape), "weights": str(backend.weights),
            **latency_stats(times, batch_shape[0])}


def backends_to_profile(choice: str | None, weights: Path | None) -> list[str]:
    """The backends ``choice`` names for ``weights``: 'all' is torch, onnxruntime, openvino (when installed) and
    (engines) tensorrt; None is the one the weights file needs (torch for an untrained architecture)."""
    if choice == "all":
        engine = weights is not None and backend_for(weights, None) == "tensorrt"
        openvino = importlib.util.find_spec("openvino") is not None
        return ["torch", "onnxruntime"] + (["openvino"] if openvino else []) + (["tensorrt"] if engine else [])
    if choice is None:
        return ["torch"] if weights is None else [backend_for(weights, None)]
    if choice not in BACKENDS:
        raise InputError(f"unknown backend {choice!r}; expected {', '.join(BACKENDS)} or all", param="backend")
    return [choice]


def source_model(weights: Path) -> SourceModel:
    """The PyTorch model behind ``weights``: a checkpoint, or an export's or engine's recorded origin."""
    if weights.suffix.lower() == ".onnx":
        return for_check(read_metadata(weights), None)
    if backend_for(weights, None) == "tensorrt":
        from nlseg.tensorrt.engine_meta import read_engine_metadata

        return for_check(read_engine_metadata(weights).model, None)
    return from_checkpoint(weights)


def open_for_profile(name: str, weights: Path | None, source: SourceModel | None, device: torch.device, *,
                     half: bool, cuda_graph: bool, workdir: Path) -> Backend:
    """Backend ``name`` for ``weights`` (or the untrained ``source``): the file itself when it is that
    backend's kind, else its PyTorch model, exported to ``workdir`` for onnxruntime and openvino (``half``:
    fp16 on onnxruntime, bf16 on openvino)."""
    if weights is not None and _runs(name, weights):
        precision = half_for(weights, name, device) if half else None
        return open_backend(weights, name, device, precision, cuda_graph=cuda_graph)
    if name == "tensorrt":
        raise InputError("TensorRT runs engines: build one (nlseg export --trt) and profile that file",
                         param="backend")
    model = source if source is not None else source_model(weights)  # type: ignore[arg-type]
    if name == "torch":
        precision = half_precision(device) if half else "fp32"
        info = info_from_checkpoint(model.config, model.meta, model.input_mean)
        return TorchBackend(model.model, info, weights or Path("<random-init>"), device, precision, cuda_graph)
    onnx_path = workdir / "model.onnx"
    if name == "openvino":
        from nlseg.runtime.openvino_backend import OpenVinoBackend

        export_onnx(model, onnx_path)
        return OpenVinoBackend(onnx_path, "bf16" if half else "fp32")
    export_onnx(model, onnx_path, ExportOptions(half=half))
    return OrtBackend(onnx_path, device)


def _runs(name: str, weights: Path) -> bool:
    """Whether backend ``name`` runs the file ``weights`` itself (OpenVINO also runs .onnx exports)."""
    kind = backend_for(weights, None)
    return kind == name or (name == "openvino" and kind == "onnxruntime")
