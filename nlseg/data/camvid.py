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
Recognition Letters 30(2), 2009. The SegNet tutorial's copy is released under CC BY-NC 4.0
(personal and research use only): nothing of it ships.

A frame's file-name prefix is its drive (``0001TP_006690.png`` → ``0001TP``). Train holds 0001TP,
0006R0 and 0016E5; val holds more of 0016E5; CamVid's test split adds Seq05VD. Val therefore shares a
drive with train: a number on a drive the model never saw comes from a *drive split*
(:class:`CamVidSplit`, e.g. ``train+val:0006R0`` to score, ``train+val:-0006R0`` to train).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from nlseg.data.labels import CAMVID_TO_TRAIN_ID, CAMVID_VOID, IGNORE_INDEX
from nlseg.data.segfolder import IMAGE_SUFFIXES, Layout, load_pairs
from nlseg.data.split import Split, concat
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


SPLIT_SYNTAX = ("PART[+PART][:DRIVE,...] or PART[+PART]:-DRIVE,... with PART one of train, val, test, "
                "e.g. train+val:0006R0 (only drive 0006R0) or train+val:-0006R0 (every drive but 0006R0)")


def drive_of(path: Path) -> str:
    """The drive a CamVid frame comes from: its file-name prefix (``0016E5_08085.png`` → ``0016E5``)."""
    return path.stem.split("_", 1)[0]


@dataclass(frozen=True)
class CamVidSplit:
    """Frames of one or more CamVid splits, optionally only some drives (``exclude``: all but them).

    Written ``train+val:0001TP,0016E5`` (those two drives of train and val), ``train+val:-0006R0``
    (every drive but 0006R0) or a plain split name.
    """

    parts: tuple[str, ...]
    drives: tuple[str, ...] = ()
    exclude: bool = False

    @classmethod
    def parse(cls, text: str, param: str = "split") -> "CamVidSplit":
        """The split ``text`` names; InputError naming ``param`` if it is not of :data:`SPLIT_SYNTAX`."""
        head, sep, tail = text.partition(":")
        parts = tuple(head.split("+"))
        exclude = tail.startswith("-")
        drives = tuple(d for d in tail[1 if exclude else 0:].split(",") if d) if tail else ()
        bad_part = next((p for p in parts if p not in SPLITS), None)
        if bad_part is not None or len(set(parts)) != len(parts) or (sep and not drives) or len(set(drives)) != len(drives):
            problem = f"unknown split {bad_part!r}" if bad_part is not None else "malformed"
            raise InputError(f"{problem} in CamVid split {text!r}; expected {SPLIT_SYNTAX}", param=param)
        return cls(parts, drives, exclude)

    def __str__(self) -> str:
        drives = (":" + ("-" if self.exclude else "") + ",".join(self.drives)) if self.drives else ""
        return "+".join(self.parts) + drives

    def keeps(self, drive: str) -> bool:
        """Whether frames of ``drive`` belong to this split."""
        return not self.drives or ((drive in self.drives) != self.exclude)


def holdout_splits(drives: tuple[str, ...]) -> tuple[str, str]:
    """(training split, validation split) that hold ``drives`` out of train+val and score on them."""
    named = ",".join(drives)
    return f"train+val:-{named}", f"train+val:{named}"


def split_drives(data_dir: Path, split: str) -> dict[str, int]:
    """Frames per drive in the images of ``split`` (a :class:`CamVidSplit` text), in drive order."""
    spec = CamVidSplit.parse(split)
    counts: dict[str, int] = {}
    for part in spec.parts:
        for path in camvid_layout(data_dir, part).images.rglob("*"):
            if path.suffix.lower() in IMAGE_SUFFIXES and spec.keeps(drive_of(path)):
                counts[drive_of(path)] = counts.get(drive_of(path), 0) + 1
    return dict(sorted(counts.items()))


def train_id_lut() -> torch.Tensor:
    """(256,) uint8: CamVid id -> train id, void and anything else -> IGNORE_INDEX."""
    lut = torch.full((256,), IGNORE_INDEX, dtype=torch.uint8)
    lut[: len(CAMVID_TO_TRAIN_ID)] = torch.tensor(CAMVID_TO_TRAIN_ID, dtype=torch.uint8)
    return lut


def load_camvid(data_dir: Path, split: str, size: tuple[int, int] = CAMVID_SIZE, workers: int = 4,
                param: str = "split") -> Split:
    """``split`` (a :class:`CamVidSplit` text) of CamVid at ``size`` (H, W) as a 19-class :class:`Split`
    of train ids (void ignored); InputError naming ``param`` if it names a drive with no frames."""
    spec = CamVidSplit.parse(split, param)
    per_part = {part: split_drives(data_dir, part) for part in spec.parts}
    present: dict[str, int] = {}
    for counts in per_part.values():
        for drive, n in counts.items():
            present[drive] = present.get(drive, 0) + n
    missing = [d for d in spec.drives if d not in present]
    if missing or not any(spec.keeps(d) for d in present):
        listed = ", ".join(f"{d} ({n})" for d, n in sorted(present.items())) or "none"
        raise InputError(f"{data_dir}: CamVid {'+'.join(spec.parts)} has no frames of drive "
                         f"{', '.join(missing) or 'left by ' + str(spec)}; its drives (frames): {listed}", param=param)
    lut = train_id_lut()
    splits = []
    for part, counts in per_part.items():
        if any(spec.keeps(d) for d in counts):
            raw = load_pairs(camvid_layout(data_dir, part), size, CAMVID_VOID + 1, workers,
                             keep=lambda path: spec.keeps(drive_of(path)))
            splits.append(Split(raw.images, lut[raw.targets.long()], 19))
    return concat(*splits)
