"""The PyTorch backend: eager or CUDA-graph inference in fp32, fp16 or bf16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from nlseg.checkpoint import load_model
from nlseg.contract import ModelInfo, info_from_checkpoint
from nlseg.errors import InputError
from nlseg.precision import PRECISIONS as PRECISION_TYPES
from nlseg.precision import torch_dtype
from nlseg.runtime.backend import Backend
from nlseg.runtime.cuda_graph import CudaGraph
from nlseg.runtime.device import describe_device
from nlseg.runtime.timing import time_calls

PRECISIONS = {precision: torch_dtype(dtype) for precision, dtype in PRECISION_TYPES.items()}


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
        self._graphs: dict[tuple[int, ...], tuple[torch.Tensor, CudaGraph[torch.Tensor]]] = {}

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
        if key not in self._graphs:  # one graph per input shape, on a static input of that shape
            static = x.clone()
            self._graphs[key] = static, CudaGraph(lambda: self.model(static), self._torch_device, warmup=3)
        static, graph = self._graphs[key]
        static.copy_(x)
        return graph.replay()

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
        """Milliseconds per forward pass: CUDA events on the device's current stream, wall clock on the CPU."""
        x = torch.randn(shape, device=self._torch_device, dtype=self._dtype).contiguous(memory_format=torch.channels_last)
        if self._torch_device.type != "cuda":
            return time_calls(lambda: self._forward(x), warmup, iters)
        with torch.cuda.device(self._torch_device):
            return time_calls(lambda: self._forward(x), warmup, iters, torch.cuda.current_stream(self._torch_device))

    def device_name(self) -> str:
        return describe_device(self._torch_device)
