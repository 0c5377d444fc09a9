"""Class weights of the segmentation loss: median-frequency balancing (SegNet, ENet on CamVid).

Eigen and Fergus (ICCV 2015), used by SegNet (Badrinarayanan et al., TPAMI 2017) on CamVid:
the weight of class c is median_freq / freq(c), where freq(c) is the number of pixels of c
divided by the number of labelled pixels in the images that contain c, and median_freq is
the median of freq over the classes present. Classes absent from the masks get weight 0
(they are never a target, so their weight is never used).
"""

from __future__ import annotations

import torch

from nlseg.data.labels import IGNORE_INDEX


def median_frequency_weights(masks: torch.Tensor, num_classes: int, chunk: int = 64) -> torch.Tensor:
    """float32 (num_classes,) weights from uint8 masks (N, H, W), pixels labelled 255 ignored."""
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
    present = pixels > 0
    if not bool(present.any()):
        raise ValueError("median-frequency weights: the masks label no pixel")
    freq = torch.where(present, pixels / image_pixels.clamp(min=1), torch.zeros_like(pixels))
    weights = torch.where(present, freq[present].median() / freq.clamp(min=1e-30), torch.zeros_like(freq))
    return weights.float()
