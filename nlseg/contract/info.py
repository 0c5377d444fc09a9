"""``ModelInfo``: what a model expects (task, classes, palette, input size, normalisation, precision)."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch

from nlseg.data.labels import BDD100K_CLASSES, BDD100K_PALETTE
from nlseg.contract.limits import total_stride
from nlseg.errors import InputError
from nlseg.nn.config import ModelConfig

Palette = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True, eq=False)
class Normalization:
    """input = (pixels / 255 − mean) / std per RGB channel; ``mean_image`` (3, H, W), when set, is a
    per-pixel training mean (thesis §4.4) that replaces ``mean`` and is resized bilinearly to the input."""

    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    mean_image: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_mean(cls, mean: torch.Tensor, per_pixel: bool) -> "Normalization":
        """From a trainer's mean tensor (3, H, W); ``per_pixel`` False keeps only its per-channel average."""
        channel_mean = tuple(float(v) for v in mean.double().mean((1, 2)))
        return cls(channel_mean, (1.0,) * len(channel_mean),
                   mean.float().cpu().numpy() if per_pixel and mean.shape[-2:] != (1, 1) else None)

    @cached_property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) as float32 tensors: mean (3, H, W) or (3, 1, 1), std (3, 1, 1)."""
        mean = (torch.from_numpy(np.asarray(self.mean_image, np.float32)) if self.mean_image is not None
                else torch.tensor(self.mean, dtype=torch.float32).reshape(-1, 1, 1))
        return mean, torch.tensor(self.std, dtype=torch.float32).reshape(-1, 1, 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (``per_pixel`` instead of the whole mean image)."""
        return {"mean": list(self.mean), "std": list(self.std), "per_pixel": self.mean_image is not None}


@dataclass(frozen=True, eq=False)
class ModelInfo:
    """What a runtime needs to know about a model: one contract for every backend."""

    input_size: tuple[int, int]
    class_names: tuple[str, ...] = BDD100K_CLASSES
    palette: Palette = BDD100K_PALETTE
    normalization: Normalization = field(default_factory=Normalization)
    task: str = "segment"
    precision: str = "float32"
    dynamic: bool = True  # height and width may differ from ``input_size``
    min_side: int = 1  # the network's total stride: the smallest height and width it runs at

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: task, input size, classes, palette, normalisation, precision."""
        return {"task": self.task, "input_size": list(self.input_size), "dynamic": self.dynamic,
                "class_names": list(self.class_names), "palette": [list(c) for c in self.palette],
                "normalization": self.normalization.to_dict(), "precision": self.precision}


def class_labels(config: ModelConfig, dataset: str | None, meta: dict[str, Any]) -> tuple[tuple[str, ...], Palette]:
    """Class names and palette: a checkpoint's own, BDD100K's for 19-class segmenters, else generic.

    Generic names are the class indices ("0", "1", …) and colours evenly spaced hues.
    """
    k = config.num_classes
    if "class_names" in meta:
        names = tuple(str(n) for n in meta["class_names"])
    elif config.task == "segment" and k == len(BDD100K_CLASSES) and dataset in (None, "bdd100k"):
        names = BDD100K_CLASSES
    else:
        names = tuple(str(i) for i in range(k))
    if "palette" in meta:
        palette = tuple((int(r), int(g), int(b)) for r, g, b in meta["palette"])
    elif names == BDD100K_CLASSES:
        palette = BDD100K_PALETTE
    else:
        palette = tuple(
            tuple(round(255 * c) for c in colorsys.hsv_to_rgb(i / k, 0.8, 0.9)) for i in range(k)  # type: ignore[misc]
        )
    if len(names) != k or len(palette) != k:
        raise InputError(f"the model's class names / palette ({len(names)} / {len(palette)}) "
                         f"do not match its {k} classes")
    return names, palette  # type: ignore[return-value]


def info_from_checkpoint(config: ModelConfig, meta: dict[str, Any], input_mean: torch.Tensor | None = None) -> ModelInfo:
    """ModelInfo of a checkpoint: its config, ``meta`` and (per-pixel runs) its ``input_mean`` tensor."""
    norm = meta.get("normalization", {})
    names, palette = class_labels(config, meta.get("dataset"), meta)
    per_pixel = bool(norm.get("per_pixel", False)) and input_mean is not None
    normalization = Normalization(
        mean=tuple(float(v) for v in norm.get("mean", (0.0,) * config.in_channels)),
        std=tuple(float(v) for v in norm.get("std", (1.0,) * config.in_channels)),
        mean_image=input_mean.float().cpu().numpy() if per_pixel else None,  # type: ignore[union-attr]
    )
    return ModelInfo(input_size=tuple(config.image_size), class_names=names, palette=palette,  # type: ignore[arg-type]
                     normalization=normalization, task=config.task, dynamic=config.task == "segment",
                     min_side=total_stride(config))
