"""Per-dataset architecture presets (thesis §4.4; docs/design.md §2.2, §2.6), as data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetPreset:
    """What the network needs to know about a dataset: task, input, classes and pool sizes."""

    task: str
    num_classes: int
    image_size: tuple[int, int]
    head_pool: int
    nonlocal_pool: int
    in_channels: int = 3


PRESETS: dict[str, DatasetPreset] = {
    "cifar10": DatasetPreset("classify", 10, (32, 32), head_pool=2, nonlocal_pool=2),
    "cifar100": DatasetPreset("classify", 100, (32, 32), head_pool=2, nonlocal_pool=2),
    "stl10": DatasetPreset("classify", 10, (96, 96), head_pool=8, nonlocal_pool=4),
    "qtips": DatasetPreset("classify", 15, (64, 64), head_pool=8, nonlocal_pool=2),
    # Per-pixel Q-tips: background 0, stick pixels 1 + class (nlseg.data.qtips).
    "qtips-seg": DatasetPreset("segment", 16, (64, 64), head_pool=0, nonlocal_pool=2),
    "bdd100k": DatasetPreset("segment", 19, (90, 160), head_pool=0, nonlocal_pool=3),
}

# Architecture layouts: overrides applied on top of a dataset preset (``--layout``).
LAYOUTS: dict[str, dict] = {
    "thesis": {},
    # RealtimeSegmenter: 360x640 input by default, Units at 1/4, 1/8, 1/16, 𝓛 in Units 2 and 3.
    "realtime": {
        "layout": "realtime",
        "image_size": (360, 640),
        "blocks": (1, 1, 2),
        "channels": (16, 32, 64),
        "nonlocal_kernel": "dot",
        "pool": 2,
    },
}

