"""Metrics of classification and segmentation, accumulated over batches (thesis §5.5; docs/design.md §2.5).

One confusion matrix (rows: true class, columns: predicted) gives accuracy / pixel accuracy
(5.1) and the standard IoU per class (5.2), TP / (TP + FP + FN), with pixels labelled 255
ignored; mIoU is the mean over the classes whose IoU is defined (TP + FP + FN > 0).
The thesis's Table 5.8 used a different *soft* IoU: softmax probabilities p against one-hot
labels y over all classes at once, with 255 as an extra class the network never predicts,
(Σ p·y + 1) / (Σ p + Σ y − Σ p·y + 1). ``soft_iou`` sums over the whole split;
``soft_iou_image`` is the authors' averaging (docs/design.md §6): the sums run over one image's
pixels and classes, the batch's images are averaged, and so are the batches, each counting once.

Scored in a coarser label set (:class:`~nlseg.data.labels.ClassGroups`, e.g. CamVid's 11
classes for a 19-class network), a pixel's prediction is the group of its arg-max class, and
the soft IoU uses the summed probabilities of each group.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from nlseg.data.labels import IGNORE_INDEX, ClassGroups


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 (C, C) counts of (true, predicted) pairs; targets equal to 255 are left out."""
    pred, target = pred.reshape(-1), target.reshape(-1).long()
    keep = target != IGNORE_INDEX
    index = target[keep] * num_classes + pred[keep].long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracy(conf: torch.Tensor) -> float:
    """Fraction of samples (pixels) classified correctly: trace / total (5.1)."""
    total = int(conf.sum())
    return float(conf.diag().sum()) / total if total else math.nan


def iou_per_class(conf: torch.Tensor) -> list[float]:
    """TP / (TP + FP + FN) per class (5.2); NaN where the class is neither present nor predicted."""
    tp = conf.diag().double()
    denom = conf.sum(0).double() + conf.sum(1).double() - tp
    return [float(t / d) if d > 0 else math.nan for t, d in zip(tp, denom)]


def mean_iou(conf: torch.Tensor) -> float:
    """Mean of the defined per-class IoUs."""
    values = [v for v in iou_per_class(conf) if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def class_labels(logits: torch.Tensor) -> torch.Tensor:
    """The arg-max over dim 1 (the first maximum on ties), by ``max``: 3x faster than ``argmax(1)`` on the CPU."""
    return logits.max(1).indices


def soft_iou_terms(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(Σ p·y, Σ p, Σ y) of one batch for :func:`soft_iou`; 255 is an extra, never-predicted class.

    y is one-hot, so Σ p·y is the probability of each labelled pixel's class and Σ y the pixel count.
    """
    probs = F.softmax(logits.float(), dim=1)
    t = target.long()
    labelled = t != IGNORE_INDEX
    inter = probs.gather(1, torch.where(labelled, t, 0).unsqueeze(1)).squeeze(1).double().mul(labelled).sum()
    count = torch.tensor(float(t.numel()), dtype=torch.float64, device=logits.device)
    return torch.stack([inter, probs.sum().double(), count])


def soft_iou_per_image(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """The soft IoU of each image of a batch (B,), float64; 255 is an extra, never-predicted class."""
    probs = F.softmax(logits.float(), dim=1)
    c = probs.shape[1]
    t = target.long().clone()
    t[t == IGNORE_INDEX] = c
    labelled = (t < c).flatten(1)
    inter = probs.gather(1, t.clamp(max=c - 1).unsqueeze(1)).flatten(1).double().mul(labelled).sum(1)
    pixels = float(t[0].numel())
    union = pixels + pixels - inter  # Σp = Σy = pixels: softmax rows and one-hot rows sum to 1
    return (inter + smooth) / (union + smooth)


def soft_iou(terms: torch.Tensor, smooth: float = 1.0) -> float:
    """The thesis's soft IoU from accumulated (Σ p·y, Σ p, Σ y)."""
    inter, p, y = (float(v) for v in terms)
    return (inter + smooth) / (p + y - inter + smooth)


def grouped_labels(labels: torch.Tensor, groups: ClassGroups) -> torch.Tensor:
    """The groups of class ids (predictions or targets); 255 stays 255."""
    lut = torch.full((256,), IGNORE_INDEX, dtype=torch.long, device=labels.device)
    lut[: len(groups.of_class)] = torch.tensor(groups.of_class, device=labels.device)
    return lut[labels.long()]


def fold_confusion(conf: torch.Tensor, groups: ClassGroups) -> torch.Tensor:
    """The groups' confusion matrix from the classes' one: entry (g, h) sums the classes of group g
    (true) against those of group h (predicted); the same as counting the grouped labels."""
    index = torch.tensor(groups.of_class, device=conf.device)
    rows = conf.new_zeros(len(groups.names), conf.shape[1]).index_add_(0, index, conf)
    return conf.new_zeros(len(groups.names), len(groups.names)).index_add_(1, index, rows)


def grouped_log_probs(logits: torch.Tensor, groups: ClassGroups) -> torch.Tensor:
    """(B, G, H, W) log of each group's summed softmax probability: logits of the grouped classes."""
    of_class = torch.tensor(groups.of_class, device=logits.device)
    probs = F.softmax(logits.float(), dim=1)
    summed = probs.new_zeros(probs.shape[0], len(groups.names), *probs.shape[2:]).index_add_(1, of_class, probs)
    return summed.clamp_min(1e-30).log()


class Scores:
    """Running loss, confusion matrix and (segmentation) soft-IoU sums over batches.

    With ``groups`` the confusion matrix and soft IoU are those of the groups.
    """

    def __init__(self, num_classes: int, segmentation: bool, device: torch.device,
                 groups: ClassGroups | None = None) -> None:
        self.groups = groups
        self.num_classes = num_classes if groups is None else len(groups.names)
        self.segmentation = segmentation
        self.loss = torch.zeros(2, dtype=torch.float64, device=device)  # (sum, count)
        self.conf = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64, device=device)
        self.soft = torch.zeros(3, dtype=torch.float64, device=device)
        self.soft_image = torch.zeros(2, dtype=torch.float64, device=device)  # (Σ batch means, batches)

    def update(self, logits: torch.Tensor | None, target: torch.Tensor, loss_sum: torch.Tensor,
               count: int | torch.Tensor, soft: bool = False, labels: torch.Tensor | None = None) -> None:
        """Add a batch: ``loss_sum`` over its ``count`` samples (pixels). ``labels``: the arg-max of the
        logits where the caller has it (``logits`` may then be None, unless ``soft``)."""
        self.loss += torch.stack([loss_sum.detach().double(), torch.as_tensor(count, dtype=torch.float64,
                                                                               device=self.loss.device)])
        if logits is None and (labels is None or soft):
            raise ValueError("Scores.update needs the logits for the soft IoU or without labels")
        logits = None if logits is None else logits.detach()
        pred = class_labels(logits) if labels is None else labels
        if self.groups is None:
            self.conf += confusion_matrix(pred, target, self.num_classes)
        else:  # the classes' confusion matrix folded into the groups: no per-pixel relabelling
            self.conf += fold_confusion(confusion_matrix(pred, target, len(self.groups.of_class)), self.groups)
            if soft:
                target, logits = grouped_labels(target, self.groups), grouped_log_probs(logits, self.groups)
        if soft:
            self.soft += soft_iou_terms(logits, target)
            if len(target):
                self.soft_image += torch.stack([soft_iou_per_image(logits, target).mean(),
                                                torch.ones((), dtype=torch.float64, device=logits.device)])

    def tensors(self) -> list[torch.Tensor]:
        """The accumulators, for an all-reduce across processes."""
        return [self.loss, self.conf, self.soft, self.soft_image]

    def summary(self, per_class: bool = False, confusion: bool = False) -> dict[str, Any]:
        """{loss, accuracy} or {loss, pixel_accuracy, miou, soft_iou[, per_class_iou]}; NaN becomes None.

        ``confusion`` adds ``confusion``: the confusion matrix's counts (rows: the label, columns: the prediction).
        """
        out: dict = {"loss": float(self.loss[0] / self.loss[1]) if self.loss[1] > 0 else math.nan}
        counts = {"confusion": self.conf.tolist()} if confusion else {}
        if not self.segmentation:
            return {**out, "accuracy": accuracy(self.conf), **counts}
        out["pixel_accuracy"] = accuracy(self.conf)
        out["miou"] = mean_iou(self.conf)
        if self.soft[2] > 0:
            out["soft_iou"] = soft_iou(self.soft)
        if self.soft_image[1] > 0:
            out["soft_iou_image"] = float(self.soft_image[0] / self.soft_image[1])
        if per_class:
            out["per_class_iou"] = [None if math.isnan(v) else v for v in iou_per_class(self.conf)]
        out.update(counts)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}
