"""STL-10 from the binary files (docs/design.md §2.6; thesis §4.4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nlseg.data.split import Split, check_class_ids
from nlseg.errors import InputError

FOLDER = "stl10_binary"
FILES = {"train": ("train_X.bin", "train_y.bin"), "val": ("test_X.bin", "test_y.bin")}
SIDE = 96


def find_root(data_dir: Path) -> Path:
    """``data_dir`` itself or its ``stl10_binary`` child, whichever holds ``test_X.bin``."""
    for root in (data_dir / FOLDER, data_dir):
        if (root / FILES["val"][0]).is_file():
            return root
    raise InputError(f"{data_dir}: no STL-10 found; expected {data_dir}/{FOLDER}/"
                     "{train,test}_{X,y}.bin (the binary version of the dataset)", param="data_dir")


def load_stl10(data_dir: Path, split: str) -> Split:
    """``split`` 'train' (5,000 images) or 'val' (the 8,000 test images); labels 1–10 become 0–9."""
    root = find_root(data_dir)
    x_path, y_path = (root / f for f in FILES[split])
    for path in (x_path, y_path):
        if not path.is_file():
            raise InputError(f"{path}: missing STL-10 file")
    raw = np.fromfile(x_path, dtype=np.uint8)
    if raw.size % (3 * SIDE * SIDE):
        raise InputError(f"{x_path}: size {raw.size} bytes is not a whole number of 3x96x96 images")
    # Stored column-major: (N, 3, 96, 96) with the last two axes swapped.
    images = torch.from_numpy(raw.reshape(-1, 3, SIDE, SIDE).transpose(0, 1, 3, 2).copy())
    labels = torch.from_numpy(np.fromfile(y_path, dtype=np.uint8).astype(np.int64) - 1)
    if len(labels) != len(images):
        raise InputError(f"{y_path}: {len(labels)} labels for {len(images)} images in {x_path.name}")
    check_class_ids(labels, 10, f"{y_path} (expected 1..10)")
    return Split(images, labels, 10)
