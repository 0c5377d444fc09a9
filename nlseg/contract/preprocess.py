"""The one way images become model input: decoded frames to BGR uint8, resizing, normalisation."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from nlseg.contract.info import ModelInfo


def normalise(pixels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | None = None) -> torch.Tensor:
    """(pixels / 255 − mean) / std for uint8 pixels, or (pixels − mean) / std for [0, 1] floats, (B, 3, H, W).

    ``mean`` is per channel (3, 1, 1) or per pixel (3, h, w) (thesis §4.4); a per-pixel mean of
    another size (a segmenter run at a new resolution) is resized bilinearly. ``std`` is (3, 1, 1).
    """
    x = pixels.float() / 255.0 if pixels.dtype == torch.uint8 else pixels.float()
    mean = mean.to(device=x.device, dtype=x.dtype)
    if mean.shape[-2:] not in (x.shape[-2:], (1, 1)):
        mean = F.interpolate(mean[None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0]
    x = x - mean
    return x if std is None else x / std.to(device=x.device, dtype=x.dtype)


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Grayscale, BGRA and 16-bit images -> 3-channel BGR uint8 (what OpenCV decodes, made uniform)."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def preprocess(frames: list[np.ndarray], size: tuple[int, int], info: ModelInfo) -> np.ndarray:
    """BGR uint8 frames -> (B, 3, H, W) float32 model input: resized to ``size`` (area when shrinking),
    RGB, normalised as ``info`` says."""
    height, width = size
    batch = np.empty((len(frames), height, width, 3), np.uint8)
    for i, frame in enumerate(frames):
        shrink = frame.shape[0] > height or frame.shape[1] > width
        cv2.resize(frame, (width, height), dst=batch[i], interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    rgb = torch.from_numpy(batch).permute(0, 3, 1, 2).flip(1)
    return normalise(rgb, *info.normalization.tensors).numpy()
