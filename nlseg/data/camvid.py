"""CamVid, the 11-class 480x360 version of the SegNet tutorial, read into the train-id space.

Two folder layouts are read: the SegNet tutorial's own ``CamVid/`` folder (``train/``,
``trainannot/``, ``val/``, ``valannot/``, ``test/``, ``testannot/``) and ``images/{split}`` with
``labels/{split}``. Masks hold CamVid ids 0–10 and 11 = void; void becomes IGNORE_INDEX and
every other id the train id of :data:`~nlseg.data.labels.CAMVID_TO_TRAIN_ID`, so CamVid trains
and scores with the 19-class networks the rest of the toolkit speaks (scores are grouped back
into CamVid's 11 classes by :data:`~nlseg.data.labels.TRAIN_ID_TO_CAMVID`).

CamVid: G. J. Brostow, J. Shotton, J. Fauqueur, R. Cipolla, "Segmentation and Recognition
Using Structure from Motion Point Clouds", ECCV 2008; G. J. Brostow, J. Fauqueur, R. Cipolla,
"Semantic Object Classes in Video: A High-Definition Ground Truth Database", Pattern
Recognition Letters 30(2), 2009. Research data without a stated licence: nothing of it ships.
"""

from __future__ import annotations

from pathlib import Path

import torch

from nlseg.data.labels import CAMVID_TO_TRAIN_ID, CAMVID_VOID, IGNORE_INDEX
from nlseg.data.segfolder import Layout, load_pairs
from nlseg.data.split import Split
from nlseg.errors import InputError

CAMVID_SIZE = (360, 480)
SPLITS = ("train", "val", "test")
EXPECTED = ("either the SegNet tutorial's CamVid/ folder ({split}/*.png with {split}annot/*.png) or "
            "images/{split}/*.jpg|png with labels/{split}/*.png (uint8 ids 0-10, 11 = void)")


def camvid_layout(data_dir: Path, split: str) -> Layout:
    """The image and mask folders of ``split`` in either layout (also under a ``CamVid/`` child)."""
    for root in (data_dir, data_dir / "CamVid"):
        if (root / split).is_dir() and (root / f"{split}annot").is_dir():
            return Layout(root / split, root / f"{split}annot", f"{root}/{split}/*.png with {root}/{split}annot/*.png")
        if (root / "images").is_dir() and (root / "labels").is_dir():
            return Layout(root / "images" / split, root / "labels" / split,
                          f"{root}/images/{split}/*.jpg with {root}/labels/{split}/*.png")
    raise InputError(f"{data_dir}: no CamVid {split} split; expected {EXPECTED.format(split=split)}", param="data_dir")


def train_id_lut() -> torch.Tensor:
    """(256,) uint8: CamVid id -> train id, void and anything else -> IGNORE_INDEX."""
    lut = torch.full((256,), IGNORE_INDEX, dtype=torch.uint8)
    lut[: len(CAMVID_TO_TRAIN_ID)] = torch.tensor(CAMVID_TO_TRAIN_ID, dtype=torch.uint8)
    return lut


def load_camvid(data_dir: Path, split: str, size: tuple[int, int] = CAMVID_SIZE, workers: int = 4) -> Split:
    """``split`` of CamVid at ``size`` (H, W) as a 19-class :class:`Split` of train ids (void ignored)."""
    if split not in SPLITS:
        raise InputError(f"CamVid has {', '.join(SPLITS)}, not {split!r}", param="split")
    raw = load_pairs(camvid_layout(data_dir, split), size, CAMVID_VOID + 1, workers)
    return Split(raw.images, train_id_lut()[raw.targets.long()], 19)
