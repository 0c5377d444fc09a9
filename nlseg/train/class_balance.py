"""Class weights of the segmentation loss: median-frequency balancing (SegNet) and ENet's weights.

Eigen and Fergus (ICCV 2015), used by SegNet (Badrinarayanan et al., TPAMI 2017) on CamVid:
the weight of class c is median_freq / freq(c), where freq(c) is the number of pixels of c
divided by the number of labelled pixels in the images that contain c, and median_freq is
the median of freq over the classes present. Classes absent from the masks get weight 0
(they are never a target, so their weight is never used).

ENet (Paszke et al., 2016; the CamVid code of ENet, ESPNet, CGNet and their successors):
w_c = 1 / ln(k + p_c) with p_c the share of the labelled training pixels that are class c and
k = 1.10 (the anchors' code; the ENet paper writes 1.02), which bounds every weight by 1 / ln k.
"""

from __future__ import annotations

import torch

from nlseg.data.labels import IGNORE_INDEX


WEIGHTINGS = ("median", "enet")
ENET_K = 1.10


def _pixel_counts(masks: torch.Tensor, num_classes: int, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 (num_classes,) labelled pixels of each class, and labelled pixels of the images holding it."""
    pixels = torch.zeros(num_classes, dtype=torch.float64)
    image_pixels = torch.zeros(num_classes, dtype=torch.float64)
    for start in range(0, len(masks), chunk):
        part = masks[start:start + chunk].reshape(min(chunk, len(masks) - start), -1).long().cpu()
        labelled = part != IGNORE_INDEX
        counts = torch.zeros(len(part), num_classes + 1, dtype=torch.float64)
        counts.scatter_add_(1, torch.where(labelled, part, num_classes), torch.ones_like(part, dtype=torch.float64))
        counts = counts[:, :num_classes]
        pixels += counts.sum(0)
        image_pixels += ((counts > 0) * labelled.sum(1, keepdim=True)).sum(0)
    return pixels, image_pixels


def median_frequency_weights(masks: torch.Tensor, num_classes: int, chunk: int = 64) -> torch.Tensor:
    """float32 (num_classes,) weights from uint8 masks (N, H, W), pixels labelled 255 ignored."""
    pixels, image_pixels = _pixel_counts(masks, num_classes, chunk)
    present = pixels > 0
    if not bool(present.any()):
        raise ValueError("median-frequency weights: the masks label no pixel")
    freq = torch.where(present, pixels / image_pixels.clamp(min=1), torch.zeros_like(pixels))
    weights = torch.where(present, freq[present].median() / freq.clamp(min=1e-30), torch.zeros_like(freq))
    return weights.float()


def enet_weights(masks: torch.Tensor, num_classes: int, k: float = ENET_K, chunk: int = 64) -> torch.Tensor:
    """float32 (num_classes,) ENet weights 1 / ln(k + p_c) from uint8 masks (N, H, W); absent classes 0."""
    pixels, _ = _pixel_counts(masks, num_classes, chunk)
    if not bool((pixels > 0).any()):
        raise ValueError("ENet weights: the masks label no pixel")
    share = pixels / pixels.sum()
    return torch.where(pixels > 0, 1.0 / torch.log(k + share), torch.zeros_like(share)).float()


def logit_shift(weights: torch.Tensor) -> torch.Tensor:
    """log w_c (0 for an absent class, weight 0): added to the logits inside the weighted loss.

    The weighted cross-entropy's minimiser has softmax(z)_c ∝ w_c p(c | x); trained on z = f + log w,
    the network's own logits f are those of p(c | x), the unweighted loss's minimiser, so the weights
    shape the gradients and not the predictions (a logit adjustment; Menon et al., ICLR 2021).
    """
    return torch.where(weights > 0, weights.clamp(min=1e-30).log(), torch.zeros_like(weights))


def class_weights(masks: torch.Tensor, num_classes: int, weighting: str) -> torch.Tensor:
    """The weights of ``weighting`` (one of :data:`WEIGHTINGS`)."""
    return (enet_weights if weighting == "enet" else median_frequency_weights)(masks, num_classes)
