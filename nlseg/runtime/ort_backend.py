"""The ONNX Runtime backend: portable or plugin graphs on the CPU, or on a GPU through the CUDA execution
provider (the TensorRT execution provider only when asked for).

On a GPU, :meth:`OrtBackend.time_forward` times what the torch and TensorRT rows time: device time
between CUDA events on the stream ONNX Runtime computes on (the CUDA provider's
``user_compute_stream``), with input and output bound on the GPU (I/O binding), so no host copy
is timed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from nlseg.errors import InputError
from nlseg.onnx.metadata import INPUT_NAME, read_metadata
from nlseg.onnx.ort_op import open_session
from nlseg.precision import precision_of
from nlseg.runtime.backend import Backend
from nlseg.runtime.device import describe_device
from nlseg.runtime.timing import time_calls
from nlseg.train.metrics import class_labels


def providers_for(device: torch.device, tensorrt: bool = False, stream: int | None = None) -> list[Any]:
    """ONNX Runtime's providers for ``device``, the CPU provider last.

    On a CUDA device: the CUDA provider on that GPU (``device_id``; ``stream``, a CUDA stream
    handle, as its ``user_compute_stream``) when this onnxruntime has it, preceded by the TensorRT
    provider only with ``tensorrt`` (InputError when this onnxruntime lacks it).
    """
    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    index = device.index if device.index is not None else torch.cuda.current_device()
    options: dict[str, Any] = {"device_id": index}
    if stream is not None:
        options["user_compute_stream"] = str(stream)
    chosen: list[Any] = []
    if tensorrt:
        if "TensorrtExecutionProvider" not in available:
            raise InputError(f"this onnxruntime has no TensorRT execution provider (it has {', '.join(available)})",
                             param="tensorrt_provider")
        chosen.append(("TensorrtExecutionProvider", dict(options)))
    if "CUDAExecutionProvider" in available:
        chosen.append(("CUDAExecutionProvider", options))
    return chosen + ["CPUExecutionProvider"]


class OrtBackend(Backend):
    """An nlseg ONNX export in an ONNX Runtime session; argmax in the graph when it has ``labels``."""

    name = "onnxruntime"

    def __init__(self, path: Path, device: torch.device, tensorrt_provider: bool = False) -> None:
        metadata = read_metadata(path)
        if metadata.config.task != "segment":
            raise InputError(f"{path}: the model is a {metadata.config.task} network; nlseg infer needs a segmenter")
        gpu = device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers()
        if gpu and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self._stream = torch.cuda.Stream(device) if gpu else None  # not the default stream: ORT ignores handle 0
        stream = self._stream.cuda_stream if self._stream is not None else None
        self.session = open_session(path, providers_for(device, tensorrt_provider, stream))
        self.providers = self.session.get_providers()
        self.weights = path
        self._gpu = device if "CUDAExecutionProvider" in self.providers else None
        self.device = str(self._gpu) if self._gpu is not None else "cpu"
        self.precision = "int8" if metadata.quantization is not None else precision_of(metadata.precision)
        self._input_dtype = np.float16 if self.precision == "fp16" else np.float32
        self._output = "labels" if "labels" in metadata.outputs else "logits"
        self.info = metadata.info()
        self._batch_dynamic = "batch" in metadata.dynamic_axes

    @classmethod
    def from_file(cls, path: Path, device: torch.device, tensorrt_provider: bool = False) -> "OrtBackend":
        return cls(path, device, tensorrt_provider)

    def _run(self, batch: np.ndarray, output: str | None = None) -> np.ndarray:
        feed = {INPUT_NAME: batch.astype(self._input_dtype, copy=False)}
        return self.session.run([output or self._output], feed)[0]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if not self._batch_dynamic and batch.shape[0] != 1:
            return np.concatenate([self.predict(batch[i : i + 1]) for i in range(batch.shape[0])])
        out = self._run(batch)
        if self._output == "labels":
            return out.astype(np.uint8)
        # torch's max over classes: 2x faster than NumPy's argmax over the strided axis 1 (benchmarks/RESULTS.md)
        return class_labels(torch.from_numpy(out)).to(torch.uint8).numpy()

    def logits(self, batch: np.ndarray) -> np.ndarray:
        if not self._batch_dynamic and batch.shape[0] != 1:
            return np.concatenate([self.logits(batch[i : i + 1]) for i in range(batch.shape[0])])
        return self._run(batch, "logits").astype(np.float32, copy=False)

    def time_forward(self, shape: tuple[int, int, int, int], warmup: int, iters: int) -> list[float]:
        """Milliseconds per run: on the GPU, CUDA events on ONNX Runtime's compute stream with the input and
        output bound on the device (no host copy timed); on the CPU, wall clock of ``session.run``."""
        if not self.info.dynamic and tuple(shape[2:]) != self.info.input_size:
            raise InputError(f"{self.weights} has a fixed input size "
                             f"{self.info.input_size[0]}x{self.info.input_size[1]}", param="shape")
        x = np.random.default_rng(0).standard_normal(shape).astype(self._input_dtype)
        if self._gpu is None:
            return time_calls(lambda: self._run(x), warmup, iters)
        index = self._gpu.index
        on_gpu = torch.from_numpy(x).to(self._gpu)
        binding = self.session.io_binding()
        binding.bind_input(INPUT_NAME, "cuda", index, self._input_dtype, list(shape), on_gpu.data_ptr())
        binding.bind_output(self._output, "cuda", index)
        self._stream.wait_stream(torch.cuda.current_stream(self._gpu))
        with torch.cuda.device(self._gpu):
            return time_calls(lambda: self.session.run_with_iobinding(binding), warmup, iters, self._stream)

    def device_name(self) -> str:
        return f"{describe_device(self.device)} via {self.providers[0]}"
