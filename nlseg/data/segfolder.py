"""Segmentation sets stored as image files with label-id masks (BDD100K, Cityscapes, folders).

Masks are single-channel PNGs of train ids 0–18, 255 = unknown (not evaluated). An image
pairs with the mask of the same stem, ignoring the suffixes the datasets add
(``_train_id``, ``_gtFine_labelTrainIds``, ``_leftImg8bit``). A few bad pairs (no mask,
unreadable file, a mask of another size, labels outside 0–18 and 255) are listed in a
warning and skipped; if more than half of a split is bad, that is an error.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from nlseg.data.labels import IGNORE_INDEX
from nlseg.data.split import Split, warn
from nlseg.data.transforms import resize_pair
from nlseg.contract.preprocess import read_image
from nlseg.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMAGE_STEM_SUFFIXES = ("_leftImg8bit",)
MASK_STEM_SUFFIXES = ("_gtFine_labelTrainIds", "_labelTrainIds", "_train_id")
SHOWN = 5


@dataclass(frozen=True)
class Layout:
    """Where one split's images and masks are, and how to describe the expected tree in errors."""

    images: Path
    masks: Path
    expected: str


def _key(path: Path, suffixes: tuple[str, ...]) -> str:
    stem = path.stem
    for suffix in suffixes:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file())


def pair_files(layout: Layout, keep: Callable[[Path], bool] | None = None
               ) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(image, mask) pairs in name order, and the names of images without a mask.

    ``keep``: only the images it accepts (CamVid's drive splits).
    """
    for folder in (layout.images, layout.masks):
        if not folder.is_dir():
            raise InputError(f"{folder}: folder not found; expected {layout.expected}")
    images = [p for p in _files(layout.images, IMAGE_SUFFIXES) if keep is None or keep(p)]
    if not images:
        raise InputError(f"{layout.images}: no .jpg/.png images; expected {layout.expected}")
    masks = {_key(p, MASK_STEM_SUFFIXES): p for p in _files(layout.masks, (".png",))}
    pairs, missing = [], []
    for image in images:
        mask = masks.get(_key(image, IMAGE_STEM_SUFFIXES))
        if mask is None:
            missing.append(f"{image.name} (no mask)")
        else:
            pairs.append((image, mask))
    if not pairs:
        raise InputError(f"{layout.masks}: no mask matches any of the {len(images)} images in {layout.images}; "
                         f"expected {layout.expected}")
    return pairs, missing


def _read(pair: tuple[Path, Path], size: tuple[int, int], num_classes: int) -> tuple[np.ndarray, np.ndarray] | str:
    """The resized (image RGB, mask) of one pair, or why the pair is bad."""
    image_path, mask_path = pair
    image = read_image(image_path)  # the same decoding as inference: EXIF orientation applied
    if image is None:
        return f"{image_path.name} (unreadable image)"
    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        return f"{mask_path.name} (unreadable mask)"
    if mask.ndim != 2 or mask.dtype != np.uint8:
        return f"{mask_path.name} (not a single-channel 8-bit label image: {mask.dtype} {mask.shape})"
    if mask.shape != image.shape[:2]:
        return (f"{mask_path.name} (mask {mask.shape[0]}x{mask.shape[1]} but image "
                f"{image.shape[0]}x{image.shape[1]})")
    values = np.unique(mask)
    bad = values[(values >= num_classes) & (values != IGNORE_INDEX)]
    if bad.size:
        return f"{mask_path.name} (labels {bad[:6].tolist()} outside 0..{num_classes - 1} and {IGNORE_INDEX})"
    return resize_pair(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), mask, size)


def load_pairs(layout: Layout, size: tuple[int, int], num_classes: int = 19, workers: int = 4,
               keep: Callable[[Path], bool] | None = None) -> Split:
    """Read, check and resize every pair of ``layout`` (that ``keep`` accepts) into a :class:`Split` at ``size``."""
    pairs, bad = pair_files(layout, keep)
    images = torch.empty((len(pairs), 3, *size), dtype=torch.uint8)
    masks = torch.empty((len(pairs), *size), dtype=torch.uint8)
    kept = 0
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for result in pool.map(lambda p: _read(p, size, num_classes), pairs):
            if isinstance(result, str):
                bad.append(result)
                continue
            images[kept] = torch.from_numpy(np.ascontiguousarray(result[0].transpose(2, 0, 1)))
            masks[kept] = torch.from_numpy(np.ascontiguousarray(result[1]))
            kept += 1
    total = len(pairs) + sum(1 for b in bad if b.endswith("(no mask)"))
    if bad:
        listed = "; ".join(bad[:SHOWN]) + (f"; and {len(bad) - SHOWN} more" if len(bad) > SHOWN else "")
        if 2 * len(bad) > total:
            raise InputError(f"{layout.images}: {len(bad)} of {total} images have no usable mask: {listed}; "
                             f"expected {layout.expected}")
        warn(f"{layout.images}: skipping {len(bad)} of {total} images: {listed}")
    return Split(images[:kept], masks[:kept], num_classes)


def folder_layout(data_dir: Path, split: str) -> Layout:
    """A generic image-folder + mask-folder set, or Cityscapes with ``labelTrainIds`` masks."""
    if (data_dir / "leftImg8bit").is_dir():
        return Layout(data_dir / "leftImg8bit" / split, data_dir / "gtFine" / split,
                      f"{data_dir}/leftImg8bit/{split}/<city>/*_leftImg8bit.png with "
                      f"{data_dir}/gtFine/{split}/<city>/*_gtFine_labelTrainIds.png")
    return Layout(data_dir / "images" / split, data_dir / "masks" / split,
                  f"{data_dir}/images/{split}/<name>.jpg|png with {data_dir}/masks/{split}/<name>.png "
                  "(uint8 train ids 0-18, 255 = ignore)")
