"""The TensorRT backend: an nlseg engine (``.engine`` / ``.plan`` + ``.engine.json``) on a CUDA GPU.

Runs through ``IExecutionContext.execute_async_v3`` on a PyTorch CUDA stream with PyTorch
tensors as the I/O buffers (``set_tensor_address``), times with CUDA events, and can capture
one CUDA graph per input shape (``--cuda-graph``). The engine's plugin kernels are embedded
(ahead-of-time), so nothing is registered before deserializing. Labels come from the graph's
``labels`` output when it has one, else the argmax of ``logits`` on the GPU; :meth:`TensorRTBackend.logits`
copies ``logits`` back as float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlseg.errors import InputError
from nlseg.onnx.metadata import INPUT_NAME
from nlseg.runtime.backend import Backend
from nlseg.tensorrt.compat import import_tensorrt
from nlseg.tensorrt.engine_meta import check_runtime, read_engine_metadata

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                "int8": torch.int8, "uint8": torch.uint8, "int32": torch.int32, "int64": torch.int64,
                "bool": torch.bool}


class _Graph:
    """One captured ``execute_async_v3`` for one input shape, on its static buffers."""

    def __init__(self, run: Any, stream: torch.cuda.Stream) -> None:
        run()  # the first enqueue after a shape change allocates; it must not be captured
        stream.synchronize()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=stream):
            run()

    def replay(self) -> None:
        self.graph.replay()


class TensorRTBackend(Backend):
    """A deserialized engine, one execution context, I/O buffers per input shape."""

    name = "tensorrt"

    def __init__(self, path: Path, device: torch.device, cuda_graph: bool = False) -> None:
        trt = import_tensorrt(str(path))
        meta = read_engine_metadata(path)
        if device.type != "cuda":
            raise InputError(f"{path}: TensorRT engines run on a CUDA device, not {device}")
        index = device.index if device.index is not None else torch.cuda.current_device()
        self._device = torch.device("cuda", index)
        check_runtime(meta, path, trt.__version__, torch.cuda.get_device_capability(index),
                      torch.cuda.get_device_name(index))
        self.meta = meta
        self.weights = path
        self.device = str(self._device)
        self.precision = meta.precision
        self.info = meta.info()
        if self.info.task != "segment":
            raise InputError(f"{path}: the engine holds a {self.info.task} network; segmenting needs a segmenter")
        with torch.cuda.device(self._device):
            from nlseg.tensorrt.build import trt_logger

            self._runtime = trt.Runtime(trt_logger(trt))
            self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if self._engine is None:
                raise InputError(f"{path}: TensorRT could not deserialize the engine (damaged file?)")
            self._context = self._engine.create_execution_context()
            self._stream = torch.cuda.Stream(self._device)
        self._input = next(t for t in meta.inputs if t.name == INPUT_NAME)
        self._output = "labels" if any(t.name == "labels" for t in meta.outputs) else "logits"
        self._use_graph = cuda_graph
        self._buffers: dict[tuple[int, ...], dict[str, torch.Tensor]] = {}
        self._graphs: dict[tuple[int, ...], _Graph] = {}

    @classmethod
    def from_file(cls, path: Path, device: torch.device, cuda_graph: bool = False) -> "TensorRTBackend":
        return cls(path, device, cuda_graph)

    def _check_shape(self, shape: tuple[int, ...], param: str) -> None:
        if not self.meta.profile.accepts(shape):
            raise InputError(f"{self.weights} accepts input shapes {self.meta.profile.describe()}, got "
                             f"{'x'.join(map(str, shape))}; rebuild it with a wider min / max shape", param=param)

    def _bind(self, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """I/O tensors for an input ``shape``, their addresses set in the context."""
        if shape in self._buffers:
            buffers = self._buffers[shape]
        else:
            if not self._context.set_input_shape(INPUT_NAME, shape):
                raise InputError(f"{self.weights}: TensorRT refused the input shape {shape}")
            buffers = {INPUT_NAME: torch.empty(shape, dtype=TORCH_DTYPES[self._input.dtype], device=self._device)}
            for out in self.meta.outputs:
                dims = tuple(self._context.get_tensor_shape(out.name))
                buffers[out.name] = torch.empty(dims, dtype=TORCH_DTYPES[out.dtype], device=self._device)
            self._buffers[shape] = buffers
        self._context.set_input_shape(INPUT_NAME, shape)
        for name, tensor in buffers.items():
            self._context.set_tensor_address(name, tensor.data_ptr())
        return buffers

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(self._stream.cuda_stream):
            raise RuntimeError(f"{self.weights}: TensorRT failed to enqueue the engine")

    def _run(self, shape: tuple[int, ...]) -> None:
        """Execute on the bound buffers of ``shape`` (eagerly, or by replaying its CUDA graph)."""
        if not self._use_graph:
            self._enqueue()
            return
        if shape not in self._graphs:
            self._graphs[shape] = _Graph(self._enqueue, self._stream)
        self._graphs[shape].replay()

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the engine on ``x`` (on the device already); the returned buffers are reused by the next call."""
        shape = tuple(x.shape)
        buffers = self._bind(shape)
        self._stream.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(self._stream):
            buffers[INPUT_NAME].copy_(x)
            self._run(shape)
        torch.cuda.current_stream(self._device).wait_stream(self._stream)
        return buffers

    @torch.inference_mode()
    def outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Every engine output (``logits``, and ``labels`` where exported) for one batch within the profile."""
        self._check_shape(tuple(batch.shape), "shape")
        out = self._forward(torch.from_numpy(batch).to(self._device))
        return {t.name: out[t.name].cpu().numpy() for t in self.meta.outputs}

    @torch.inference_mode()
    def predict(self, batch: np.ndarray) -> np.ndarray:
        max_batch = self.meta.profile.max[0]
        if batch.shape[0] > max_batch:
            return np.concatenate([self.predict(batch[i : i + max_batch]) for i in range(0, batch.shape[0], max_batch)])
        self._check_shape(tuple(batch.shape), "imgsz")
        x = torch.from_numpy(batch).to(self._device, non_blocking=True)
        out = self._forward(x)[self._output]
        labels = out if self._output == "labels" else out.argmax(dim=1)
        return labels.to(torch.uint8).cpu().numpy()

    @torch.inference_mode()
    def logits(self, batch: np.ndarray) -> np.ndarray:
        max_batch = self.meta.profile.max[0]
        if batch.shape[0] > max_batch:
            return np.concatenate([self.logits(batch[i : i + max_batch]) for i in range(0, batch.shape[0], max_batch)])
        self._check_shape(tuple(batch.shape), "imgsz")
        out = self._forward(torch.from_numpy(batch).to(self._device, non_blocking=True))["logits"]
        return out.float().cpu().numpy()

    @torch.inference_mode()
    def time_forward(self, shape: tuple[int, int, int, int], warmup: int, iters: int) -> list[float]:
        """Milliseconds of the engine alone (CUDA events on its stream), the input already on the GPU."""
        self._check_shape(shape, "shape")
        self._forward(torch.randn(shape, device=self._device))
        with torch.cuda.stream(self._stream):
            for _ in range(warmup):
                self._run(shape)
            times = []
            for _ in range(iters):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record(self._stream)
                self._run(shape)
                end.record(self._stream)
                end.synchronize()
                times.append(start.elapsed_time(end))
        return times

    def device_name(self) -> str:
        return f"{torch.cuda.get_device_name(self._device)} via TensorRT {self.meta.tensorrt_version}"

    def close(self) -> None:
        self._graphs.clear()
        self._buffers.clear()
        self._context = self._engine = self._runtime = None
