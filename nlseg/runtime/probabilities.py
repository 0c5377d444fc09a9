"""Class probabilities from logits: the softmax, resizing to a frame, compact storage types."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PROBABILITY_DTYPES: tuple[str, ...] = ("float16", "uint8", "float32")
UINT8_SCALE = 255  # uint8 probabilities hold round(p * 255)


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    """Softmax over ``axis`` in float32 (the max subtracted first, so large logits do not overflow)."""
    x = logits.astype(np.float32, copy=False)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def probabilities_to_frame(probs: np.ndarray, frame_shape: tuple[int, ...]) -> np.ndarray:
    """(K, h, w) probabilities -> (K, H, W) at the frame's size, bilinear as the models upsample.

    Bilinear weights are non-negative and sum to one, so every pixel's probabilities still sum to one.
    """
    height, width = frame_shape[:2]
    if probs.shape[1:] == (height, width):
        return probs
    resized = F.interpolate(torch.from_numpy(np.ascontiguousarray(probs))[None], size=(height, width),
                            mode="bilinear", align_corners=False)
    return resized[0].numpy()


def store_as(probs: np.ndarray, dtype: str) -> np.ndarray:
    """float32 probabilities as ``dtype``: float16, float32, or uint8 holding round(p · 255)."""
    if dtype == "uint8":
        return np.rint(probs * UINT8_SCALE).astype(np.uint8)
    return probs.astype(np.dtype(dtype), copy=False)
