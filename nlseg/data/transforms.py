"""Resizing, normalisation and batch augmentation (thesis §4.4; DESIGN §2.4).

Augmentation runs on whole batches on the training device, driven by an explicit
``torch.Generator``, so a run's data order and augmentation are a function of (seed, epoch).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def resize_pair(image: np.ndarray, mask: np.ndarray | None, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize an HxWx3 image (and its HxW mask) to ``size`` = (H, W).

    An exact integer reduction keeps every k-th row and column of both (the thesis's 160x90
    from 1280x720, §4.4); any other size uses area averaging for the image and nearest
    neighbour for the mask.
    """
    h, w = image.shape[:2]
    th, tw = size
    if (h, w) == (th, tw):
        return image, mask
    if h % th == 0 and w % tw == 0 and h // th == w // tw:
        k = h // th
        return image[::k, ::k], None if mask is None else mask[::k, ::k]
    interp = cv2.INTER_AREA if th <= h and tw <= w else cv2.INTER_LINEAR
    image = cv2.resize(image, (tw, th), interpolation=interp)
    if mask is not None:
        mask = cv2.resize(mask, (tw, th), interpolation=cv2.INTER_NEAREST)
    return image, mask


def normalize(images: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float images (B, 3, H, W) minus the training mean (3, h, w) or (3, 1, 1).

    A per-pixel mean of another size (a segmenter run at a new resolution) is resized bilinearly.
    """
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    mean = mean.to(device=x.device, dtype=x.dtype)
    if mean.shape[-2:] not in (x.shape[-2:], (1, 1)):
        mean = F.interpolate(mean[None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0]
    return x - mean


def augment(
    x: torch.Tensor, target: torch.Tensor | None, pad: int, flip: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Zero-pad by ``pad``, random crop back to size, random horizontal flip (per sample).

    ``x`` is the mean-subtracted batch (B, C, H, W); ``target`` a mask batch (B, H, W) that is
    cropped with zeros → 255 (ignored) and flipped alike, or class ids (left alone). Random
    numbers come from ``generator`` (CPU) in a fixed order.
    """
    b, _, h, w = x.shape
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator) if pad > 0 else None
    flips = torch.rand(b, generator=generator) < 0.5 if flip else None
    seg = target is not None and target.dim() == 3
    if offsets is not None:
        oy, ox = offsets.to(x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]
        batch = torch.arange(b, device=x.device)[:, None, None]
        x = F.pad(x, (pad, pad, pad, pad))[batch, :, rows, cols].permute(0, 3, 1, 2)
        if seg:
            padded = F.pad(target, (pad, pad, pad, pad), value=255)
            target = padded[batch, rows, cols]
    if flips is not None:
        mask = flips.to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
        if seg:
            target = torch.where(mask[:, None, None], target.flip(-1), target)
    return x.contiguous(), target
