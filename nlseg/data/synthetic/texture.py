"""Noise textures and colour sampling for the synthetic scenes."""

from __future__ import annotations

import cv2
import numpy as np


def value_noise(rng: np.random.Generator, shape: tuple[int, int], cells: float) -> np.ndarray:
    """Smooth noise in about [−1, 1] with ``cells`` features across the image width (bicubic upsampling)."""
    h, w = shape
    gw = max(2, int(round(cells)))
    gh = max(2, int(round(cells * h / w)))
    grid = rng.uniform(-1.0, 1.0, (gh + 1, gw + 1)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], cells: float, octaves: int = 3) -> np.ndarray:
    """Sum of value noise at ``cells``, 2x, 4x … features, amplitudes halving; about [−1, 1]."""
    total = np.zeros(shape, np.float32)
    amp, norm = 1.0, 0.0
    for k in range(octaves):
        f = cells * 2**k
        if f > shape[1]:
            break
        total += amp * value_noise(rng, shape, f)
        norm += amp
        amp *= 0.5
    return total / max(norm, 1e-6)


def jitter(rng: np.random.Generator, rgb, spread: float) -> np.ndarray:
    """``rgb`` (0–255) scaled to [0, 1] with a random brightness and per-channel spread."""
    base = np.asarray(rgb, np.float32) / 255.0
    gain = rng.uniform(1 - spread, 1 + spread)
    tint = rng.uniform(1 - spread / 3, 1 + spread / 3, 3)
    return np.clip(base * gain * tint, 0.0, 1.0).astype(np.float32)


def pick(rng: np.random.Generator, options: list, weights: list[float] | None = None):
    """One of ``options`` (weighted)."""
    p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
    return options[int(rng.choice(len(options), p=p))]
