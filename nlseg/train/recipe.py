"""The thesis's training recipe per dataset (§4.3, §4.4, §5.2; docs/design.md §2.4) and its schedule."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

THESIS_MILESTONES = (80 / 200, 120 / 200, 160 / 200, 180 / 200)


@dataclass(frozen=True)
class Recipe:
    """SGD with momentum, warm-up epoch, step decay at fractions of the run, decay terms, augmentation.

    ``milestones`` are fractions of ``epochs``: the thesis decays ×0.1 after epochs 80, 120,
    160 and 180 of 200, and a shorter run decays at the same fractions (rounded). Epoch 1
    runs at ``lr × warmup`` (0.01 for lr 0.1) when ``warmup`` is set. ``pixel_mean`` subtracts
    the per-pixel training mean (thesis §4.4); False subtracts its per-channel average, which
    suits a segmenter meant to run at any resolution.

    ``schedule``: ``step`` (the thesis's milestones), ``poly`` (lr × (1 − t)^0.9, t the fraction
    of epochs done) or ``cosine`` (lr × (1 + cos πt) / 2), per epoch. Street scenes
    (:func:`~nlseg.data.transforms.augment_scenes`) are scaled by a random factor in
    ``scale``, cropped to ``crop`` (H, W; None: the input size), flipped, colour-jittered by up to
    ±``jitter`` and tinted by per-channel gains of up to ±``colour_cast``; ``class_weights`` weighs the
    loss by median-frequency balancing.

    ``input_noise``: σ of Gaussian noise added to the [0, 1] training and validation images,
    drawn afresh every epoch from (seed, epoch) and clipped to [0, 1] (Q-tips, §5.2; pad/crop/flip
    augmentation only). ``subtract_mean`` False feeds the [0, 1] images as they are (the authors'
    Q-tips). ``weight_decay`` is α of ``decay_convention`` (``eq4.9``: (α/2)‖K‖², ``keras``:
    α‖K‖²; :func:`~nlseg.nn.regularization.torch_weight_decay`); ``decay_classifier`` False
    leaves the dense classifier undecayed (docs/design.md §6). ``optimizer``: ``sgd`` (with
    ``momentum``) or ``adam`` (the CamVid anchors' Adam, the decay as an L2 term of the gradient);
    ``class_weighting``: ``median`` (median-frequency) or ``enet`` (1 / ln(1.10 + p)) when
    ``class_weights`` is on; ``logit_adjustment`` lowers the classifier bias by log w at the start and
    trains the weighted loss on the logits + log w (:func:`~nlseg.train.class_balance.logit_shift`):
    the run trains as without it, and its network predicts as if unweighted.
    ``loss_stride`` s > 1 (real-time segmenters): the training loss and
    metrics on every s-th pixel of each crop, the logits upsampled to 1/s of the crop instead of
    all of it (validation stays at full resolution). ``ema`` d > 0: validate and save an exponential
    moving average of the weights with decay d per step (:mod:`nlseg.train.ema`); 0: the weights.
    """

    epochs: int = 200
    batch_size: int = 100
    lr: float = 0.1
    warmup: float | None = 0.1
    milestones: tuple[float, ...] = THESIS_MILESTONES
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    smoothness: float = 1e-8
    pad: int = 4
    flip: bool = True
    pixel_mean: bool = True
    schedule: str = "step"
    scale: tuple[float, float] = (1.0, 1.0)
    crop: tuple[int, int] | None = None
    jitter: float = 0.0
    colour_cast: float = 0.0
    class_weights: bool = False
    input_noise: float = 0.0
    subtract_mean: bool = True
    decay_convention: str = "eq4.9"
    decay_classifier: bool = True
    optimizer: str = "sgd"
    class_weighting: str = "median"
    logit_adjustment: bool = False
    loss_stride: int = 1
    ema: float = 0.0

    @property
    def scene_augmentation(self) -> bool:
        """Whether batches go through :func:`~nlseg.data.transforms.augment_scenes` (else pad/crop/flip)."""
        return self.scale != (1.0, 1.0) or self.crop is not None or self.jitter > 0 or self.colour_cast > 0

    def milestone_epochs(self) -> tuple[int, ...]:
        """Epochs after which the rate drops: (80, 120, 160, 180) for 200 epochs, scaled for others."""
        return tuple(int(round(f * self.epochs)) for f in self.milestones)

    def learning_rate(self, epoch: int) -> float:
        """Rate of 1-based ``epoch``: warm-up in epoch 1, then the schedule's."""
        if epoch == 1 and self.warmup is not None:
            return self.lr * self.warmup
        done = (epoch - 1) / self.epochs
        if self.schedule == "poly":
            return self.lr * (1.0 - done) ** 0.9
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * done))
        return self.lr * self.gamma ** sum(epoch > m for m in self.milestone_epochs())

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Recipe":
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})


SCHEDULES = ("step", "poly", "cosine")
OPTIMIZERS = ("sgd", "adam")


_SEGMENT = Recipe(batch_size=8, pad=0)
RECIPES: dict[str, Recipe] = {
    "cifar10": Recipe(),
    "cifar100": Recipe(),
    "stl10": Recipe(batch_size=50, pad=12, weight_decay=5e-4),
    # §5.2: lr 0.01 for 30 epochs, batch 50, noise σ = 0.3 drawn afresh every epoch (as the authors'
    # code does, docs/design.md §6). No crop (it can cut a marker off), flips keep the class.
    "qtips": Recipe(epochs=30, batch_size=50, lr=0.01, warmup=None, milestones=(), pad=0, input_noise=0.3),
    "qtips-seg": Recipe(epochs=30, batch_size=50, lr=0.01, warmup=None, milestones=(), pad=0, input_noise=0.3),
    "bdd100k": _SEGMENT,
    "folder": _SEGMENT,
    # Demo / deployment segmenter: a shorter run, a per-channel mean that fits every resolution.
    "synthetic": replace(_SEGMENT, epochs=30, pixel_mean=False),
    # Small real street data on a CPU (the CamVid section of README's nlseg train): random scale,
    # 224x384 crops of the 360x480 frames, flip and colour jitter, poly decay from 0.05 (no
    # warm-up epoch), per-channel mean; 55 epochs: stage 1 of the default weights (assets/README.md),
    # about an hour on one core of the 2-core development CPU.
    "camvid": replace(_SEGMENT, epochs=55, lr=0.05, warmup=None, schedule="poly", pixel_mean=False,
                      scale=(0.75, 1.5), crop=(224, 384), jitter=0.25),
}
