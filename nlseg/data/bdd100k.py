"""BDD100K semantic segmentation: the 10k layout and the older ``seg/`` layout (DESIGN §2.6)."""

from __future__ import annotations

from pathlib import Path

from nlseg.data.segfolder import Layout
from nlseg.errors import InputError

EXPECTED = (
    "either images/10k/{train,val}/*.jpg with labels/sem_seg/masks/{train,val}/*.png, "
    "or seg/images/{train,val}/*.jpg with seg/labels/{train,val}/*_train_id.png"
)


def bdd100k_layout(data_dir: Path, split: str) -> Layout:
    """The folders of ``split`` under ``data_dir`` (or its ``bdd100k/`` child); InputError if none."""
    for root in (data_dir, data_dir / "bdd100k"):
        if (root / "images" / "10k").is_dir():
            return Layout(root / "images" / "10k" / split, root / "labels" / "sem_seg" / "masks" / split,
                          f"{root}/images/10k/{split}/*.jpg with {root}/labels/sem_seg/masks/{split}/*.png")
        for seg in (root / "seg", root):
            if (seg / "images").is_dir() and (seg / "labels").is_dir():
                return Layout(seg / "images" / split, seg / "labels" / split,
                              f"{seg}/images/{split}/*.jpg with {seg}/labels/{split}/<name>_train_id.png")
    raise InputError(f"--data-dir {data_dir}: no BDD100K semantic-segmentation data; expected {EXPECTED}")
