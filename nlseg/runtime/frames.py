"""Frame outputs: labels back at the frame's size, palette lookup, overlays."""

from __future__ import annotations

import cv2
import numpy as np


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
