"""The thesis authors' soft IoU (per image, mean over the batch, mean over batches) and BDD100K's
20-class form (docs/design.md §6)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nlseg.data.bdd100k import BDD100K_CLASSES_20, UNKNOWN_CLASS, with_unknown_class
from nlseg.data.labels import IGNORE_INDEX
from nlseg.data.split import Split
from nlseg.train.metrics import Scores, soft_iou_per_image


def authors_iou(logits: torch.Tensor, target: torch.Tensor, num_classes: int, smooth: float = 1.0) -> torch.Tensor:
    """Written from the authors' iou_fn: one-hot over ``num_classes``, sums over (H, W, C) per image,
    (I + smooth) / (U + smooth), mean over the batch. float64."""
    y = F.one_hot(target.long(), num_classes).double()  # (B, H, W, C)
    p = F.softmax(logits.double(), dim=1).permute(0, 2, 3, 1)
    p = F.pad(p, (0, num_classes - p.shape[-1]))  # 255 as an extra class the network never predicts
    inter = (y * p).abs().sum((1, 2, 3))
    union = y.sum((1, 2, 3)) + p.sum((1, 2, 3)) - inter
    return ((inter + smooth) / (union + smooth)).mean()


def batch(seed: int, b: int = 3, classes: int = 5, ignore: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, classes, 6, 7, generator=g) * 3
    target = torch.randint(0, classes, (b, 6, 7), generator=g)
    if ignore:
        target[:, :2, :3] = IGNORE_INDEX
    return logits, target


@pytest.mark.parametrize("ignore", [False, True])
def test_per_image_soft_iou_is_the_authors_formula(ignore):
    logits, target = batch(0, ignore=ignore)
    expected = authors_iou(logits, torch.where(target == IGNORE_INDEX, 5, target), 6 if ignore else 5)
    assert soft_iou_per_image(logits, target).mean().item() == pytest.approx(expected.item(), rel=1e-6)


def test_scores_average_batches_each_counting_once():
    """tfa's MeanMetricWrapper over a scalar per batch: a short last batch weighs as much as a full one."""
    parts = [batch(1, b=4), batch(2, b=4), batch(3, b=1)]
    scores = Scores(5, True, torch.device("cpu"))
    for logits, target in parts:
        scores.update(logits, target, torch.zeros(()), 1, soft=True)
    per_batch = [authors_iou(lg, torch.where(t == IGNORE_INDEX, 5, t), 6).item() for lg, t in parts]
    summary = scores.summary()
    assert summary["soft_iou_image"] == pytest.approx(sum(per_batch) / 3, rel=1e-6)
    per_image = torch.cat([soft_iou_per_image(lg, t) for lg, t in parts]).mean().item()
    assert summary["soft_iou_image"] != pytest.approx(per_image, rel=1e-6)  # not the mean over the 9 images
    assert summary["soft_iou"] != pytest.approx(summary["soft_iou_image"], rel=1e-3)  # nor the split sums


def test_twenty_class_bdd100k_trains_the_unknown_pixels():
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    targets = torch.full((2, 4, 4), 3, dtype=torch.uint8)
    targets[0, 0, :] = IGNORE_INDEX
    twenty = with_unknown_class(Split(images, targets, 19))
    assert twenty.num_classes == 20 == len(BDD100K_CLASSES_20) and BDD100K_CLASSES_20[UNKNOWN_CLASS] == "unknown"
    assert (twenty.targets[0, 0] == 19).all() and (twenty.targets != IGNORE_INDEX).all()
    assert (targets[0, 0] == IGNORE_INDEX).all()  # the 19-class split is left alone
    with pytest.raises(ValueError, match="19-class"):
        with_unknown_class(twenty)
