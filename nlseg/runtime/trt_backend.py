"""The TensorRT backend: an nlseg engine (``.engine`` / ``.plan`` + ``.engine.json``) on a CUDA GPU.

Runs through ``IExecutionContext.execute_async_v3`` on a PyTorch CUDA stream with PyTorch
tensors as the I/O buffers (``set_tensor_address``), times with CUDA events, and can capture
one CUDA graph per input shape (``--cuda-graph``), each on its own execution context, whose input
shape and tensor addresses are set once, before the capture (a graph replays exactly the enqueue it
captured, so the context it captured must not be rebound to another shape). The engine's plugin kernels are embedded
(ahead-of-time), so nothing is registered before deserializing. Labels come from the graph's
``labels`` output when it has one, else the argmax of ``logits`` on the GPU; :meth:`TensorRTBackend.logits`
copies ``logits`` back as float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlseg.errors import InputError
from nlseg.onnx.metadata import INPUT_NAME
from nlseg.precision import torch_dtype
from nlseg.runtime.backend import Backend
from nlseg.runtime.cuda_graph import CudaGraph
from nlseg.runtime.timing import time_calls
from nlseg.tensorrt.compat import import_tensorrt
from nlseg.tensorrt.engine_meta import check_runtime, read_engine_metadata



@dataclass
class _Bound:
    """An execution context with an input shape set and its I/O tensors' addresses, and with
    ``--cuda-graph`` the graph captured on them."""

    context: Any
    buffers: dict[str, torch.Tensor]
    graph: CudaGraph[None] | None = None


class TensorRTBackend(Backend):
    """A deserialized engine and its I/O buffers per input shape: one execution context for every shape, or
    with ``cuda_graph`` one context and one captured graph per shape."""

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
        self._bound: dict[tuple[int, ...], _Bound] = {}
        self._context_shape: tuple[int, ...] | None = None  # the shape the shared context is bound to

    @classmethod
    def from_file(cls, path: Path, device: torch.device, cuda_graph: bool = False) -> "TensorRTBackend":
        return cls(path, device, cuda_graph)

    def _check_shape(self, shape: tuple[int, ...], param: str) -> None:
        if not self.meta.profile.accepts(shape):
            raise InputError(f"{self.weights} accepts input shapes {self.meta.profile.describe()}, got "
                             f"{'x'.join(map(str, shape))}; rebuild it with a wider min / max shape", param=param)

    def _new_binding(self, context: Any, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """Set ``shape`` on ``context`` and give it new I/O tensors (their addresses set)."""
        if not context.set_input_shape(INPUT_NAME, shape):
            raise InputError(f"{self.weights}: TensorRT refused the input shape {shape}")
        buffers = {INPUT_NAME: torch.empty(shape, dtype=torch_dtype(self._input.dtype), device=self._device)}
        for out in self.meta.outputs:
            dims = tuple(context.get_tensor_shape(out.name))
            buffers[out.name] = torch.empty(dims, dtype=torch_dtype(out.dtype), device=self._device)
        for name, tensor in buffers.items():
            context.set_tensor_address(name, tensor.data_ptr())
        return buffers

    def _bind(self, shape: tuple[int, ...]) -> _Bound:
        """The context and I/O tensors for an input ``shape``.

        Eager: the one shared context, rebound (shape and addresses) only when the shape changes.
        CUDA graphs: a context of its own per shape (the first shape takes the shared one), bound
        once and captured on; it is never rebound.
        """
        bound = self._bound.get(shape)
        if bound is None:
            context = self._context
            if self._use_graph and self._bound:
                with torch.cuda.device(self._device):
                    context = self._engine.create_execution_context()
                if context is None:
                    raise InputError(f"{self.weights}: TensorRT could not create an execution context for "
                                     f"the input shape {shape} (out of GPU memory?)")
            bound = self._bound[shape] = _Bound(context, self._new_binding(context, shape))
            self._context_shape = shape if context is self._context else self._context_shape
        elif not self._use_graph and self._context_shape != shape:
            self._context.set_input_shape(INPUT_NAME, shape)
            for name, tensor in bound.buffers.items():
                self._context.set_tensor_address(name, tensor.data_ptr())
            self._context_shape = shape
        return bound

    def _run(self, bound: _Bound) -> None:
        """Execute ``bound`` on its buffers: enqueue it, or replay its CUDA graph (captured on first use)."""
        if not self._use_graph:
            self._enqueue(bound.context)
            return
        if bound.graph is None:  # the first enqueue after setting a shape allocates: it runs before the capture
            bound.graph = CudaGraph(lambda: self._enqueue(bound.context), self._device, self._stream)
        bound.graph.replay()

    def _enqueue(self, context: Any) -> None:
        if not context.execute_async_v3(self._stream.cuda_stream):
            raise RuntimeError(f"{self.weights}: TensorRT failed to enqueue the engine")

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the engine on ``x`` (on the device already); the returned buffers are reused by the next call."""
        bound = self._bind(tuple(x.shape))
        self._stream.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(self._stream):
            bound.buffers[INPUT_NAME].copy_(x)
            self._run(bound)
        torch.cuda.current_stream(self._device).wait_stream(self._stream)
        return bound.buffers

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
        bound = self._bind(shape)
        with torch.cuda.stream(self._stream):
            return time_calls(lambda: self._run(bound), warmup, iters, self._stream)

    def device_name(self) -> str:
        return f"{torch.cuda.get_device_name(self._device)} via TensorRT {self.meta.tensorrt_version}"

    def close(self) -> None:
        self._bound.clear()
        self._context = self._engine = self._runtime = None
