"""One captured CUDA graph of a forward call, for the torch and TensorRT backends (``--cuda-graph``)."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

import torch

T = TypeVar("T")


class CudaGraph(Generic[T]):
    """``run`` captured once on ``device``: called ``warmup`` times on the capture stream first (lazy
    initialisation, allocations and autotuning must not be captured), then captured; :meth:`replay`
    reruns it on the same buffers, :attr:`output` is what the captured call returned.

    ``stream``: the stream ``run`` enqueues on and the graph is captured on (default: a new side
    stream of ``device``). Everything runs under ``torch.cuda.device(device)``, so a model on
    ``cuda:1`` is captured on ``cuda:1`` whatever the current device is.
    """

    def __init__(self, run: Callable[[], T], device: torch.device, stream: torch.cuda.Stream | None = None,
                 warmup: int = 1) -> None:
        self.device = device
        with torch.cuda.device(device):
            self.stream = stream if stream is not None else torch.cuda.Stream(device)
            self.stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(self.stream):
                for _ in range(warmup):
                    run()
            self.stream.synchronize()
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, stream=self.stream):
                self.output: T = run()

    def replay(self) -> T:
        """Rerun the captured work on the current stream of its device; returns :attr:`output`."""
        with torch.cuda.device(self.device):
            self.graph.replay()
        return self.output
