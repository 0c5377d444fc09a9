"""Q-tips (thesis §5.2; docs/design.md §2.6): a stick with a coloured marker at each end.

64x64 RGB, background 112, stick 30 (of 255), rotated about the image centre (the rotation's
padding is background); a width×width marker at each end; the class is the unordered pair of
marker colours (15 classes, equal pairs included). Stored clean, as uint8: the Gaussian noise
σ = 0.3 of §5.2 is drawn afresh for every epoch by the trainer (the recipe's ``input_noise``,
:func:`nlseg.data.noise.add_input_noise`), as the thesis authors' code does for the training
and the test images (docs/design.md §6). Deterministic by seed: image i of a split depends only
on (seed, split, i) and the style.

Two styles of stick (docs/design.md §6):

- ``thesis-text`` (§5.2): length U{32..60}, width U{4..8}, angle U{−180..180}° in whole
  degrees, pure marker colours (red (255, 0, 0), …, pink (255, 105, 180)).
- ``authors`` (the published generator, ``qtips_gen.py``): length 32..59 and width 4..5
  (numpy's ``randint`` excludes its upper end), angle uniform in [−180, 180]° (torchvision's
  ``RandomRotation(180)``, nearest neighbour), and markers drawn by setting colour channels to
  255 on the stick value 30: red (255, 30, 30), green (30, 255, 30), blue (30, 30, 255),
  yellow (255, 255, 30), pink (255, 30, 255).

The segmentation variant labels every pixel: background 0, stick and markers 1 + class.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement

import cv2
import numpy as np
import torch

from nlseg.data.split import Split

SIZE = 64
BACKGROUND = 112
STICK = 30
NOISE_SIGMA = 0.3
COLOUR_NAMES: tuple[str, ...] = ("red", "green", "blue", "yellow", "pink")
PAIRS: tuple[tuple[int, int], ...] = tuple(combinations_with_replacement(range(len(COLOUR_NAMES)), 2))
CLASSES: tuple[str, ...] = tuple(f"{COLOUR_NAMES[a]}-{COLOUR_NAMES[b]}" for a, b in PAIRS)
SPLIT_SIZE = 512
SPLIT_STREAM = {"train": 0, "val": 1}


@dataclass(frozen=True)
class QtipsStyle:
    """How sticks are drawn: inclusive ranges of length and width, marker colours (in the order of
    :data:`COLOUR_NAMES`), and whether the angle is a whole degree or any real in [−180, 180]."""

    name: str
    lengths: tuple[int, int]
    widths: tuple[int, int]
    colours: tuple[tuple[int, int, int], ...]
    continuous_angle: bool


THESIS_TEXT = QtipsStyle("thesis-text", (32, 60), (4, 8),
                         ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 105, 180)), False)
AUTHORS = QtipsStyle("authors", (32, 59), (4, 5),
                     ((255, STICK, STICK), (STICK, 255, STICK), (STICK, STICK, 255), (255, 255, STICK),
                      (255, STICK, 255)), True)
STYLES: dict[str, QtipsStyle] = {s.name: s for s in (THESIS_TEXT, AUTHORS)}
COLOURS: dict[str, tuple[int, int, int]] = dict(zip(COLOUR_NAMES, THESIS_TEXT.colours))


def draw_qtip(label: int, length: int, width: int, angle: float, rng: np.random.Generator,
              noise: float = 0.0, style: QtipsStyle = THESIS_TEXT) -> tuple[np.ndarray, np.ndarray]:
    """One image (64, 64, 3) uint8 and its stick mask (64, 64) bool; ``noise`` > 0 adds fixed
    Gaussian noise of that σ to the [0, 1] image (then clipped), drawn from ``rng``."""
    ends = list(PAIRS[label])
    if rng.random() < 0.5:
        ends.reverse()
    canvas = np.full((SIZE, SIZE, 3), BACKGROUND, np.uint8)
    stick = np.zeros((SIZE, SIZE), np.uint8)
    x0, y0 = (SIZE - length) // 2, (SIZE - width) // 2
    canvas[y0:y0 + width, x0:x0 + length] = STICK
    canvas[y0:y0 + width, x0:x0 + width] = style.colours[ends[0]]
    canvas[y0:y0 + width, x0 + length - width:x0 + length] = style.colours[ends[1]]
    stick[y0:y0 + width, x0:x0 + length] = 1
    rotation = cv2.getRotationMatrix2D((SIZE / 2 - 0.5, SIZE / 2 - 0.5), angle, 1.0)
    image = cv2.warpAffine(canvas, rotation, (SIZE, SIZE), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(BACKGROUND,) * 3)
    mask = cv2.warpAffine(stick, rotation, (SIZE, SIZE), flags=cv2.INTER_NEAREST) > 0
    if noise > 0:
        noisy = image / 255.0 + rng.normal(0.0, noise, image.shape)
        image = np.round(np.clip(noisy, 0.0, 1.0) * 255).astype(np.uint8)
    return image, mask


def sample_stick(rng: np.random.Generator, style: QtipsStyle = THESIS_TEXT) -> tuple[int, int, int, float]:
    """(class, length, width, angle) drawn uniformly from the style's ranges."""
    label = int(rng.integers(len(PAIRS)))
    length = int(rng.integers(style.lengths[0], style.lengths[1] + 1))
    width = int(rng.integers(style.widths[0], style.widths[1] + 1))
    angle = float(rng.uniform(-180.0, 180.0)) if style.continuous_angle else float(rng.integers(-180, 181))
    return label, length, width, angle


def qtips(split: str, seed: int = 0, count: int = SPLIT_SIZE, segmentation: bool = False, noise: float = 0.0,
          style: QtipsStyle = THESIS_TEXT) -> Split:
    """``count`` clean Q-tips of ``split`` ('train' or 'val'), labels uniform over the 15 classes.

    ``noise`` > 0 bakes fixed noise of that σ into the stored images (the protocol of nlseg's first
    Q-tips runs, docs/results/qtips-full.md); the thesis's noise is drawn per epoch by the trainer.
    """
    images = np.empty((count, SIZE, SIZE, 3), np.uint8)
    targets = np.empty((count, SIZE, SIZE) if segmentation else (count,), np.uint8 if segmentation else np.int64)
    for i in range(count):
        rng = np.random.default_rng([seed, SPLIT_STREAM[split], i])
        label, length, width, angle = sample_stick(rng, style)
        images[i], mask = draw_qtip(label, length, width, angle, rng, noise, style)
        targets[i] = np.where(mask, 1 + label, 0) if segmentation else label
    return Split(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), torch.from_numpy(targets),
                 1 + len(PAIRS) if segmentation else len(PAIRS))
