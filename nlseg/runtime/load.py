"""Open the right backend for a weights file: .pt -> torch, .onnx -> onnxruntime (or openvino), .xml -> openvino,
.engine -> tensorrt."""

from __future__ import annotations

from pathlib import Path

import torch

from nlseg.errors import InputError
from nlseg.runtime.backend import Backend

BACKEND_SUFFIXES = {".pt": "torch", ".pth": "torch", ".onnx": "onnxruntime", ".xml": "openvino", ".engine": "tensorrt",
                    ".plan": "tensorrt"}
BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")
ALSO_READS = {"openvino": ("onnxruntime",)}  # OpenVINO also runs the .onnx exports


def backend_for(weights: Path, backend: str | None) -> str:
    """The backend name: ``backend`` if given (and consistent), else from the file suffix."""
    if backend is not None and backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}", param="backend")
    inferred = BACKEND_SUFFIXES.get(weights.suffix.lower())
    if inferred is None and backend is None:
        raise InputError(f"{weights}: unknown weights type {weights.suffix!r}; expected "
                         f"{', '.join(BACKEND_SUFFIXES)}, or name the backend")
    if backend is not None and inferred is not None and inferred != backend and inferred not in ALSO_READS.get(backend, ()):
        raise InputError(f"{weights} is a {inferred} model ({weights.suffix}), not {backend}", param="backend")
    return backend or inferred  # type: ignore[return-value]


def half_precision(device: torch.device) -> str:
    """What ``--half`` (and the deprecated ``load(half=True)``) selects: fp16 on CUDA, bf16 on the CPU."""
    return "fp16" if device.type == "cuda" else "bf16"


def half_for(weights: Path, backend: str | None, device: torch.device) -> str:
    """The precision ``--half`` selects for ``weights``: :func:`half_precision` for a checkpoint, bf16 on
    OpenVINO; an InputError for ONNX Runtime exports and engines, which run at the precision they were built with."""
    name = backend_for(weights, backend)
    if name == "openvino":
        return "bf16"
    if name != "torch":
        raise InputError(f"--half: {weights} runs at the precision it was built with; --half applies to checkpoints "
                         "and OpenVINO (a float16 ONNX export: nlseg export --half)")
    return half_precision(device)


def open_backend(weights: Path, backend: str | None, device: torch.device, precision: str | None = None,
                 cuda_graph: bool = False) -> Backend:
    """Load ``weights`` into the backend that runs them.

    ``precision`` ('fp32', 'fp16', 'bf16'): what a checkpoint runs at on the torch backend (default
    fp32), and what OpenVINO computes in (fp32, the default, or bf16; an INT8 model runs at int8).
    An ONNX Runtime export or an engine has its precision built in; naming another one is an InputError.
    """
    name = backend_for(weights, backend)
    if not weights.is_file():
        raise InputError(f"{weights}: weights file not found")
    if name == "torch":
        from nlseg.runtime.torch_backend import TorchBackend

        return TorchBackend.from_checkpoint(weights, device, precision or "fp32", cuda_graph)
    if name == "openvino":
        from nlseg.runtime.openvino_backend import OpenVinoBackend

        return OpenVinoBackend.from_file(weights, device, precision)
    opened: Backend
    if name == "onnxruntime":
        from nlseg.runtime.ort_backend import OrtBackend

        opened = OrtBackend.from_file(weights, device)
        remedy = "export the checkpoint again (nlseg export, with --half for fp16)"
    else:
        from nlseg.runtime.trt_backend import TensorRTBackend

        opened = TensorRTBackend.from_file(weights, device, cuda_graph)
        remedy = "build the engine again at the precision you want"
    if precision is not None and precision != opened.precision:
        opened.close()
        raise InputError(f"{weights} runs at the precision it was built with ({opened.precision}), not {precision}; "
                         f"{remedy}", param="precision")
    return opened
