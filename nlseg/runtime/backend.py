"""One interface for every inference backend (torch, onnxruntime, tensorrt).

A backend takes a normalised float32 batch (B, 3, H, W) and returns per-pixel labels
(B, H, W) uint8 (:meth:`Backend.predict`) or the class logits (B, K, H, W) float32
(:meth:`Backend.logits`, for probabilities); it also times its own forward pass for ``nlseg profile``. What the model
expects (input size, normalisation, classes, palette) travels in :class:`nlseg.contract.ModelInfo`,
read from the checkpoint or the exported model's metadata.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nlseg.contract import ModelInfo, preprocess


class BackendLost(RuntimeError):
    """The backend can no longer run (a remote server went away); what was segmented before is kept."""


class Backend(ABC):
    """A loaded model on a device, ready to segment batches."""

    name: str
    device: str
    precision: str
    info: ModelInfo
    weights: Path

    def prepare(self, frames: Sequence[np.ndarray], size: tuple[int, int]) -> Any:
        """BGR uint8 frames -> what :meth:`predict` takes: here the normalised (B, 3, H, W) batch at ``size``.

        A remote backend (:class:`nlseg.serve.client.RemoteBackend`) encodes the frames for its server instead.
        """
        return preprocess(list(frames), size, self.info)

    @abstractmethod
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32, normalised -> (B, H, W) uint8 train ids."""

    @abstractmethod
    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32, normalised -> (B, K, H, W) float32 class logits at the batch's H, W.

        The model's output before the softmax, computed at the backend's precision and returned as
        float32 on the host; its argmax over K is what :meth:`predict` returns.
        """

    @abstractmethod
    def time_forward(self, shape: tuple[int, int, int, int], warmup: int, iters: int) -> list[float]:
        """Milliseconds of ``iters`` forward passes on random input of ``shape`` after ``warmup``."""

    def device_name(self) -> str:
        """Human-readable name of the device the backend runs on."""
        return self.device

    def close(self) -> None:
        """Release device resources."""
