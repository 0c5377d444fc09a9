"""CIFAR-10 / CIFAR-100 from the python pickles (docs/design.md §2.6; thesis §4.4)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from nlseg.data.split import Split, check_class_ids
from nlseg.errors import InputError

LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", {"train": [f"data_batch_{i}" for i in range(1, 6)], "val": ["test_batch"]},
                "labels", 10),
    "cifar100": ("cifar-100-python", {"train": ["train"], "val": ["test"]}, "fine_labels", 100),
}


def _expected(name: str) -> str:
    folder, files, _, _ = LAYOUTS[name]
    return f"{folder}/{{{','.join(files['train'] + files['val'])}}}"


def find_root(data_dir: Path, name: str) -> Path:
    """The folder holding the pickles: ``data_dir`` itself or its ``cifar-10-batches-py`` child."""
    folder, files, _, _ = LAYOUTS[name]
    for root in (data_dir / folder, data_dir):
        if (root / files["val"][0]).is_file():
            return root
    raise InputError(f"{data_dir}: no {name} found; expected {data_dir}/{_expected(name)} "
                     "(the python version of the dataset, as extracted from its .tar.gz)", param="data_dir")


def _read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise InputError(f"{path}: missing CIFAR batch file")
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="latin1")
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, EOFError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a CIFAR pickle with 'data' and '{label_key}' ({type(exc).__name__})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise InputError(f"{path}: expected 'data' uint8 N×3072 and N labels, got {data.shape} and {len(labels)}")
    return data, labels


def load_cifar(data_dir: Path, name: str, split: str) -> Split:
    """``split`` 'train' (50,000 images) or 'val' (the 10,000 test images) of ``name``."""
    _, files, label_key, classes = LAYOUTS[name]
    root = find_root(data_dir, name)
    parts = [_read_batch(root / f, label_key) for f in files[split]]
    data = np.concatenate([p[0] for p in parts])
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    check_class_ids(labels, classes, str(root / files[split][0]))
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return Split(images, labels, classes)
