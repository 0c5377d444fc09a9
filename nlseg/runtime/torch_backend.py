"""The PyTorch backend: eager or CUDA-graph inference in fp32, fp16 or bf16."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nlseg.checkpoint import load_model
from nlseg.contract import ModelInfo, info_from_checkpoint
from nlseg.errors import InputError
from nlseg.runtime.backend import Backend
from nlseg.runtime.device import describe_device

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class _CudaGraph:
    """A captured forward pass for one input shape (static input and output buffers)."""

    def __init__(self, model: nn.Module, example: torch.Tensor) -> None:
        self.input = example.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                model(self.input)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = model(self.input)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.input.copy_(x)
        self.graph.replay()
        return self.output


class TorchBackend(Backend):
    """A segmenter in PyTorch on CPU or CUDA; optional CUDA-graph capture per input shape."""

    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        info: ModelInfo,
        weights: Path,
        device: torch.device,
        precision: str = "fp32",
        cuda_graph: bool = False,
    ) -> None:
        if precision not in PRECISIONS:
            raise InputError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
        if info.task != "segment":
            raise InputError(f"{weights}: the model is a {info.task} network; segmenting needs a segmenter")
        if cuda_graph and device.type != "cuda":
            raise InputError("needs a CUDA device", param="cuda_graph")
        self.device = str(device)
        self.precision = precision
        self.info = info
        self.weights = weights
        self._dtype = PRECISIONS[precision]
        self._torch_device = device
        # channels-last: faster convolutions (oneDNN, tensor cores) and a contiguous argmax over classes
        self.model = model.eval().to(device=device, dtype=self._dtype, memory_format=torch.channels_last)
        self._use_graph = cuda_graph
        self._graphs: dict[tuple[int, ...], _CudaGraph] = {}

    @classmethod
    def from_checkpoint(cls, path: Path, device: torch.device, precision: str = "fp32", cuda_graph: bool = False) -> "TorchBackend":
        model, config, payload = load_model(path)
        if config.task != "segment":
            dataset = payload.get("meta", {}).get("dataset") or config.arch
            raise InputError(f"{path}: a {dataset} classifier checkpoint ({config.task} network), not a segmenter; "
                             "infer and predict need a segmentation checkpoint")
        info = info_from_checkpoint(config, payload.get("meta", {}), payload.get("input_mean"))
        return cls(model, info, Path(path), device, precision, cuda_graph)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._use_graph:
            return self.model(x)
        key = tuple(x.shape)
        if key not in self._graphs:
            self._graphs[key] = _CudaGraph(self.model, x)
        return self._graphs[key](x)

    @torch.inference_mode()
    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self._torch_device, non_blocking=True)
        x = x.to(self._dtype).contiguous(memory_format=torch.channels_last)
        labels = self._forward(x).argmax(dim=1).to(torch.uint8)
        return labels.cpu().numpy()

    @torch.inference_mode()
    def logits(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self._torch_device, non_blocking=True)
        x = x.to(self._dtype).contiguous(memory_format=torch.channels_last)
        return self._forward(x).float().contiguous().cpu().numpy()

    @torch.inference_mode()
    def time_forward(self, shape: tuple[int, int, int, int], warmup: int, iters: int) -> list[float]:
        x = torch.randn(shape, device=self._torch_device, dtype=self._dtype).contiguous(memory_format=torch.channels_last)
        for _ in range(warmup):
            self._forward(x)
        times = []
        cuda = self._torch_device.type == "cuda"
        for _ in range(iters):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                self._forward(x)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                self._forward(x)
                times.append((time.perf_counter() - t0) * 1e3)
        return times

    def device_name(self) -> str:
        return describe_device(self._torch_device)
