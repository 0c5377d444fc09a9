"""Frame conversions: any decoded image to BGR uint8, model input batches, overlays."""

from __future__ import annotations

import cv2
import numpy as np

from nlseg.runtime.backend import ModelInfo


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Grayscale, BGRA and 16-bit images -> 3-channel BGR uint8 (what the pipeline works on)."""
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
    """BGR uint8 frames -> (B, 3, H, W) float32: resized to ``size``, RGB in [0, 1], normalised."""
    height, width = size
    std = np.asarray(info.std, np.float32)
    scale = 1.0 / (255.0 * std)  # (x / 255 − mean) / std = x · scale + offset, per RGB channel
    offset = -np.asarray(info.mean, np.float32) / std
    batch = np.empty((len(frames), 3, height, width), np.float32)
    pixel_offset = None
    if info.mean_image is not None:  # per-pixel mean, resized like nlseg.data.transforms.normalize does
        resized_mean = cv2.resize(info.mean_image.transpose(1, 2, 0), (width, height), interpolation=cv2.INTER_LINEAR)
        pixel_offset = (-resized_mean.reshape(height, width, 3) / std).transpose(2, 0, 1).astype(np.float32)
    for i, frame in enumerate(frames):
        shrink = frame.shape[0] > height or frame.shape[1] > width
        resized = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        for c in range(3):  # RGB channel c is BGR plane 2 − c
            np.multiply(resized[:, :, 2 - c], scale[c], out=batch[i, c], casting="unsafe")
            batch[i, c] += offset[c] if pixel_offset is None else pixel_offset[c]
    return batch


def labels_to_frame(labels: np.ndarray, frame_shape: tuple[int, ...]) -> np.ndarray:
    """(h, w) uint8 labels -> the frame's size, nearest neighbour (ids are not interpolated)."""
    height, width = frame_shape[:2]
    if labels.shape == (height, width):
        return labels
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)


def palette_lut(palette: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    """(256, 1, 3) BGR lookup table for cv2.LUT: train id -> colour; unknown ids (e.g. 255) black."""
    lut = np.zeros((256, 1, 3), np.uint8)
    for index, (r, g, b) in enumerate(palette):
        lut[index, 0] = (b, g, r)
    return lut


def overlay(frame: np.ndarray, labels: np.ndarray, lut: np.ndarray, opacity: float) -> np.ndarray:
    """Blend the colour-coded labels over the BGR frame with ``opacity`` in [0, 1]."""
    colours = cv2.LUT(cv2.merge((labels, labels, labels)), lut)
    return cv2.addWeighted(frame, 1.0 - opacity, colours, opacity, 0.0)
