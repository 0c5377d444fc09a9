"""Synthetic driving scenes labelled with the 19 BDD100K train ids (demos and CI).

Scene i of a split is ``render_scene([seed, stream, i], size)``: deterministic by seed at any
size. Splits are rendered in memory (in parallel processes) or written to disk in the
generic image-folder + mask-folder layout that :mod:`nlseg.data.segfolder` reads.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from nlseg.data.split import Split
from nlseg.data.synthetic.scene import render_scene
from nlseg.io import write_image

STREAMS = {"train": 0, "val": 1, "clip": 2}
COUNTS = {"train": 2000, "val": 200}


def _render(args: tuple[int, str, int, tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    seed, split, index, size = args
    return render_scene([seed, STREAMS[split], index], size)


def _scenes(split: str, count: int, size: tuple[int, int], seed: int, workers: int):
    jobs = [(seed, split, i, size) for i in range(count)]
    if workers <= 1 or count < 8:
        yield from map(_render, jobs)
        return
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(_render, jobs, chunksize=max(1, count // (8 * workers)))


def synthetic_split(split: str, count: int | None = None, size: tuple[int, int] = (90, 160), seed: int = 0,
                    workers: int = 1, progress: Callable[[int], None] | None = None) -> Split:
    """``count`` scenes of ``split`` ('train' or 'val') rendered at ``size`` = (H, W), in memory."""
    count = COUNTS[split] if count is None else count
    images = torch.empty((count, 3, *size), dtype=torch.uint8)
    masks = torch.empty((count, *size), dtype=torch.uint8)
    for i, (image, labels) in enumerate(_scenes(split, count, size, seed, workers)):
        images[i] = torch.from_numpy(image.transpose(2, 0, 1).copy())
        masks[i] = torch.from_numpy(labels)
        if progress is not None:
            progress(i + 1)
    return Split(images, masks, 19)


def write_scenes(out: str | os.PathLike[str], split: str, count: int, size: tuple[int, int], seed: int = 0,
                 workers: int = 1, progress: Callable[[int], None] | None = None) -> Path:
    """Write scenes as ``out/images/<split>/scene_NNNNNN.png`` + ``out/masks/<split>/scene_NNNNNN.png``."""
    root = Path(out)
    for i, (image, labels) in enumerate(_scenes(split, count, size, seed, workers)):
        name = f"scene_{i:06d}.png"
        write_image(root / "masks" / split / name, labels)
        write_image(root / "images" / split / name, np.ascontiguousarray(image[..., ::-1]))
        if progress is not None:
            progress(i + 1)
    return root
