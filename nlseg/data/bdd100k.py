"""BDD100K semantic segmentation: the 10k layout and the older ``seg/`` layout (docs/design.md §2.6),
and the thesis authors' 20-class form, in which the unlabelled pixels (255) are a trained 20th
class "unknown" (docs/design.md §6).
"""

from __future__ import annotations

from pathlib import Path

from nlseg.data.labels import BDD100K_CLASSES, IGNORE_INDEX
from nlseg.data.segfolder import Layout
from nlseg.data.split import Split
from nlseg.errors import InputError

UNKNOWN_CLASS = len(BDD100K_CLASSES)  # 19: where the authors' code puts the 255 pixels
BDD100K_CLASSES_20: tuple[str, ...] = (*BDD100K_CLASSES, "unknown")

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
    raise InputError(f"{data_dir}: no BDD100K semantic-segmentation data; expected {EXPECTED}", param="data_dir")


def with_unknown_class(split: Split) -> Split:
    """The 20-class form of a 19-class BDD100K split: label 255 becomes class 19, "unknown", which is
    trained and scored like the others (the authors' ``y[y == 255] = 19``)."""
    if split.num_classes != len(BDD100K_CLASSES):
        raise ValueError(f"expected a {len(BDD100K_CLASSES)}-class BDD100K split, got {split.num_classes} classes")
    targets = split.targets.clone()
    targets[targets == IGNORE_INDEX] = UNKNOWN_CLASS
    return Split(split.images, targets, len(BDD100K_CLASSES_20))
