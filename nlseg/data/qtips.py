"""Q-tips (thesis §5.2; DESIGN §2.6): a stick with a coloured marker at each end.

64x64 RGB, background 112, stick 30 (of 255); length U{32..60}, width U{4..8}, rotation
U{−180..180}° about the image centre (the rotation's padding is background); a width×width
marker at each end; the class is the unordered pair of marker colours (15 classes, equal
pairs included). Pixels are scaled to [0, 1], Gaussian noise σ = 0.3 is added, then clipped.
Stored as uint8. Deterministic by seed: image i of a split depends only on (seed, split, i).

The segmentation variant labels every pixel: background 0, stick and markers 1 + class.
"""

from __future__ import annotations

from itertools import combinations_with_replacement

import cv2
import numpy as np
import torch

from nlseg.data.split import Split

SIZE = 64
BACKGROUND = 112
STICK = 30
NOISE_SIGMA = 0.3
LENGTHS = (32, 60)
WIDTHS = (4, 8)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0), "pink": (255, 105, 180),
}
PAIRS: tuple[tuple[int, int], ...] = tuple(combinations_with_replacement(range(len(COLOURS)), 2))
CLASSES: tuple[str, ...] = tuple(f"{list(COLOURS)[a]}-{list(COLOURS)[b]}" for a, b in PAIRS)
SPLIT_SIZE = 512
SPLIT_STREAM = {"train": 0, "val": 1}


def draw_qtip(label: int, length: int, width: int, angle: float, rng: np.random.Generator,
              noise: float = NOISE_SIGMA) -> tuple[np.ndarray, np.ndarray]:
    """One image (64, 64, 3) uint8 and its stick mask (64, 64) bool, before any noise if ``noise`` = 0."""
    ends = list(PAIRS[label])
    if rng.random() < 0.5:
        ends.reverse()
    canvas = np.full((SIZE, SIZE, 3), BACKGROUND, np.uint8)
    stick = np.zeros((SIZE, SIZE), np.uint8)
    x0, y0 = (SIZE - length) // 2, (SIZE - width) // 2
    canvas[y0:y0 + width, x0:x0 + length] = STICK
    colours = list(COLOURS.values())
    canvas[y0:y0 + width, x0:x0 + width] = colours[ends[0]]
    canvas[y0:y0 + width, x0 + length - width:x0 + length] = colours[ends[1]]
    stick[y0:y0 + width, x0:x0 + length] = 1
    rotation = cv2.getRotationMatrix2D((SIZE / 2 - 0.5, SIZE / 2 - 0.5), angle, 1.0)
    image = cv2.warpAffine(canvas, rotation, (SIZE, SIZE), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(BACKGROUND,) * 3)
    mask = cv2.warpAffine(stick, rotation, (SIZE, SIZE), flags=cv2.INTER_NEAREST) > 0
    if noise > 0:
        noisy = image / 255.0 + rng.normal(0.0, noise, image.shape)
        image = np.round(np.clip(noisy, 0.0, 1.0) * 255).astype(np.uint8)
    return image, mask


def sample_stick(rng: np.random.Generator) -> tuple[int, int, int, float]:
    """(class, length, width, angle) drawn uniformly from the spec's ranges."""
    label = int(rng.integers(len(PAIRS)))
    length = int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
    width = int(rng.integers(WIDTHS[0], WIDTHS[1] + 1))
    return label, length, width, float(rng.integers(-180, 181))


def qtips(split: str, seed: int = 0, count: int = SPLIT_SIZE, segmentation: bool = False,
          noise: float = NOISE_SIGMA) -> Split:
    """``count`` Q-tips of ``split`` ('train' or 'val'), labels uniform over the 15 classes."""
    images = np.empty((count, SIZE, SIZE, 3), np.uint8)
    targets = np.empty((count, SIZE, SIZE) if segmentation else (count,), np.uint8 if segmentation else np.int64)
    for i in range(count):
        rng = np.random.default_rng([seed, SPLIT_STREAM[split], i])
        label, length, width, angle = sample_stick(rng)
        images[i], mask = draw_qtip(label, length, width, angle, rng, noise)
        targets[i] = np.where(mask, 1 + label, 0) if segmentation else label
    return Split(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), torch.from_numpy(targets),
                 1 + len(PAIRS) if segmentation else len(PAIRS))
