"""BDD100K / Cityscapes train ids (class names, palette, ignore index; docs/design.md §2.6) and CamVid's 11 classes."""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = 255

BDD100K_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)

# Cityscapes colours, RGB, in train-id order.
BDD100K_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

# CamVid, the 11-class version of the SegNet tutorial (ids 0-10; 11 = void, not evaluated), and
# the one mapping between it and the train ids: each CamVid class with the train ids it covers.
# Every train id is in exactly one row, so a 19-class prediction scores as a CamVid class; the
# first train id of a row is where CamVid's label goes when training in the train-id space.
CAMVID_VOID = 11
CAMVID_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sky", ("sky",)),
    ("building", ("building", "wall")),
    ("pole", ("pole",)),
    ("road", ("road",)),
    ("pavement", ("sidewalk",)),
    ("tree", ("vegetation", "terrain")),
    ("sign/symbol", ("traffic sign", "traffic light")),
    ("fence", ("fence",)),
    ("car", ("car", "truck", "bus", "train")),
    ("pedestrian", ("person",)),
    ("bicyclist", ("rider", "bicycle", "motorcycle")),
)
CAMVID_CLASSES: tuple[str, ...] = tuple(name for name, _ in CAMVID_GROUPS)
# CamVid id -> the train id its pixels train as.
CAMVID_TO_TRAIN_ID: tuple[int, ...] = tuple(BDD100K_CLASSES.index(ids[0]) for _, ids in CAMVID_GROUPS)
# Train id -> the CamVid class it scores as.
TRAIN_ID_TO_CAMVID: tuple[int, ...] = tuple(
    next(c for c, (_, ids) in enumerate(CAMVID_GROUPS) if name in ids) for name in BDD100K_CLASSES
)


@dataclass(frozen=True)
class ClassGroups:
    """A coarser label set to score in: model class ``c`` counts as group ``of_class[c]``, named ``names``."""

    names: tuple[str, ...]
    of_class: tuple[int, ...]


CAMVID_SCORING = ClassGroups(CAMVID_CLASSES, TRAIN_ID_TO_CAMVID)
