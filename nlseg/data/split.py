"""``Split``: one in-memory dataset split as uint8 tensors, the form every loader returns."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from nlseg.errors import InputError


class DataWarning(UserWarning):
    """A recoverable data problem (bad pairs skipped); the CLI prints it as one ``warning:`` line."""


@dataclass
class Split:
    """Images (N, 3, H, W) uint8 and targets: class ids (N,) int64, or masks (N, H, W) uint8 (255 ignored)."""

    images: torch.Tensor
    targets: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.targets.shape[0] != self.images.shape[0]:
            raise ValueError(f"{self.images.shape[0]} images but {self.targets.shape[0]} targets")
        if self.is_segmentation and self.targets.shape[1:] != self.images.shape[2:]:
            raise ValueError(f"masks {tuple(self.targets.shape)} do not match images {tuple(self.images.shape)}")

    @property
    def is_segmentation(self) -> bool:
        return self.targets.dim() == 3

    @property
    def task(self) -> str:
        return "segment" if self.is_segmentation else "classify"

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: torch.Tensor) -> "Split":
        """The samples at ``index`` (e.g. a random training fraction)."""
        return Split(self.images[index], self.targets[index], self.num_classes)

    def to(self, device: torch.device) -> "Split":
        """The same split with its tensors on ``device``."""
        return Split(self.images.to(device), self.targets.to(device), self.num_classes)

    def pixel_mean(self) -> torch.Tensor:
        """Per-pixel mean (3, H, W) of the images scaled to [0, 1] (thesis §4.4, [KSH12])."""
        total = torch.zeros(self.images.shape[1:], dtype=torch.float64)
        for start in range(0, len(self), 1024):
            total += self.images[start:start + 1024].cpu().to(torch.float64).sum(0)
        return (total / (255.0 * max(len(self), 1))).to(torch.float32)


def concat(first: Split, *more: Split) -> Split:
    """One split holding the samples of all ``splits`` (same task, image size and classes)."""
    for other in more:
        if (other.task, other.image_size, other.num_classes) != (first.task, first.image_size, first.num_classes):
            raise ValueError(f"cannot join a {other.num_classes}-class {other.task} split of "
                             f"{other.image_size} to a {first.num_classes}-class {first.task} split of {first.image_size}")
    return Split(torch.cat([first.images, *(o.images for o in more)]),
                 torch.cat([first.targets, *(o.targets for o in more)]), first.num_classes)


def check_class_ids(labels: torch.Tensor, num_classes: int, where: str) -> None:
    """InputError naming ``where`` if a class id is outside 0..num_classes−1."""
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        values = sorted(int(v) for v in labels[bad].unique()[:8])
        raise InputError(f"{where}: labels {values} outside 0..{num_classes - 1}")


def warn(message: str) -> None:
    """Emit a :class:`DataWarning`."""
    warnings.warn(message, DataWarning, stacklevel=3)
