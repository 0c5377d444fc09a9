"""The ONNX Runtime backend: any execution provider installed, portable or plugin graphs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from nlseg.errors import InputError
from nlseg.onnx.metadata import INPUT_NAME, read_metadata
from nlseg.onnx.ort_op import open_session
from nlseg.runtime.backend import Backend
from nlseg.runtime.device import describe_device
from nlseg.train.metrics import class_labels


def providers_for(device: torch.device) -> list[str]:
    """CUDA (and TensorRT) providers first on a CUDA device when this onnxruntime has them; CPU always."""
    available = ort.get_available_providers()
    wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"] if device.type == "cuda" else []
    return [p for p in wanted if p in available] + ["CPUExecutionProvider"]


class OrtBackend(Backend):
    """An nlseg ONNX export in an ONNX Runtime session; argmax in the graph when it has ``labels``."""

    name = "onnxruntime"

    def __init__(self, path: Path, device: torch.device) -> None:
        metadata = read_metadata(path)
        if metadata.config.task != "segment":
            raise InputError(f"{path}: the model is a {metadata.config.task} network; nlseg infer needs a segmenter")
        self.session = open_session(path, providers_for(device))
        self.providers = self.session.get_providers()
        self.weights = path
        self.device = "cuda" if "CUDAExecutionProvider" in self.providers else "cpu"
        self.precision = "int8" if metadata.quantization is not None else "fp16" if metadata.precision == "float16" else "fp32"
        self._input_dtype = np.float16 if metadata.precision == "float16" else np.float32
        self._output = "labels" if "labels" in metadata.outputs else "logits"
        self.info = metadata.info()
        self._batch_dynamic = "batch" in metadata.dynamic_axes

    @classmethod
    def from_file(cls, path: Path, device: torch.device) -> "OrtBackend":
        return cls(path, device)

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
        if not self.info.dynamic and tuple(shape[2:]) != self.info.input_size:
            raise InputError(f"{self.weights} has a fixed input size "
                             f"{self.info.input_size[0]}x{self.info.input_size[1]}", param="shape")
        x = np.random.default_rng(0).standard_normal(shape).astype(self._input_dtype)
        for _ in range(warmup):
            self._run(x)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            self._run(x)
            times.append((time.perf_counter() - t0) * 1e3)
        return times

    def device_name(self) -> str:
        return f"{describe_device(self.device)} via {self.providers[0]}"
