"""Resizing, normalisation and batch augmentation (thesis §4.4; docs/design.md §2.4).

Augmentation runs on whole batches on the training device, driven by an explicit
``torch.Generator``, so a run's data order and augmentation are a function of (seed, epoch).
"""

from __future__ import annotations

import math

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


LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601


def colour_jitter(
    x: torch.Tensor, bright: torch.Tensor, contrast: torch.Tensor, saturation: torch.Tensor,
    cast: torch.Tensor | None = None,
) -> torch.Tensor:
    """[0, 1] RGB images (B, 3, H, W) with brightness, contrast and saturation factors (B, 1, 1, 1), clamped to [0, 1].

    In stages: x ← g⊙x with the per-channel gains ``cast`` (B, 3, 1, 1), if given (a colour cast, as
    of another white balance); x ← b·x; x ← c·(x − L) + L around the frame's mean luma L (BT.601);
    x ← s·(x − G) + G around each pixel's luma G; clamp. Every stage is affine in (x, luma(x)), so
    this computes the same as s·c·b·g⊙x + (1 − s)·c·b·luma(g⊙x) + (1 − c)·L with L = b·mean(luma(g⊙x)):
    two passes over the frame.
    """
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device)[:, None, None]
    gain = torch.ones_like(bright) if cast is None else cast  # (B, 1 or 3, 1, 1)
    luma = (x * (weights * gain)).sum(1, keepdim=True)
    level = bright * luma.mean((2, 3), keepdim=True)
    per_pixel = luma * ((1 - saturation) * contrast * bright) + (1 - contrast) * level
    return (x * (saturation * contrast * bright * gain)).add_(per_pixel).clamp_(0.0, 1.0)


def colour_cast_gains(draws: torch.Tensor, cast: float) -> torch.Tensor:
    """Per-channel gains (B, 3, 1, 1) from uniform ``draws`` (3, B): 1 ± ``cast``, rescaled so that the
    BT.601 luma of a grey pixel is kept (the cast tints; brightness stays the brightness factor's)."""
    gains = 1.0 + cast * (2 * draws.T - 1)
    gains = gains / (gains @ torch.tensor(LUMA_WEIGHTS, dtype=gains.dtype))[:, None]
    return gains[:, :, None, None]


def augment_scenes(
    images: torch.Tensor, target: torch.Tensor, mean: torch.Tensor, crop: tuple[int, int],
    scale: tuple[float, float], flip: bool, jitter: float, generator: torch.Generator, cast: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Street-scene augmentation of a batch: colour jitter, random scale, crop and flip, then the mean.

    ``images`` uint8 (B, 3, H, W), ``target`` masks (B, H, W). Per sample: a colour cast, per-channel
    gains in [1 − ``cast``, 1 + ``cast``] rescaled to keep a grey pixel's luma (:func:`colour_cast_gains`;
    0: none); brightness, contrast and saturation factors in [1 − ``jitter``, 1 + ``jitter``]; a scale
    factor log-uniform in ``scale``; a ``crop`` (H, W) window at a uniform position in the scaled frame
    (where the scaled frame is smaller, it sits at a uniform position inside the window, the rest being
    the mean colour and 255 = ignored); a horizontal flip with probability 1/2 if ``flip``. Images are
    resampled bilinearly, masks by nearest neighbour, both in one batched ``grid_sample``.
    Returns the mean-subtracted crops (B, 3, *crop) and their masks (B, *crop). Random numbers
    come from ``generator`` (CPU) in a fixed order (the cast's last, so runs without one draw as before),
    so a batch is a function of the generator's state.
    """
    b, _, h, w = images.shape
    ch, cw = crop
    draws = torch.rand(6, b, generator=generator, dtype=torch.float64)
    flips = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    gains = colour_cast_gains(torch.rand(3, b, generator=generator, dtype=torch.float64), cast) if cast > 0 else None
    device = images.device
    x = images.float() / 255.0
    if jitter > 0 or gains is not None:
        factors = (1.0 + jitter * (2 * draws[:3] - 1)).float().to(device)[:, :, None, None, None]
        x = colour_jitter(x, *factors, cast=None if gains is None else gains.float().to(device))
    x = normalize(x, mean)
    lo, hi = math.log(scale[0]), math.log(scale[1])
    s = torch.exp(lo + (hi - lo) * draws[3])
    # The crop's top-left corner in scaled-frame pixels: uniform over the valid positions.
    span_y, span_x = h * s - ch, w * s - cw
    top = torch.minimum(span_y, torch.zeros(b, dtype=torch.float64)) + draws[4] * span_y.abs()
    left = torch.minimum(span_x, torch.zeros(b, dtype=torch.float64)) + draws[5] * span_x.abs()
    # Output pixel centre (i + 1/2, j + 1/2) of the crop -> source position ((top + i + 1/2) / s) -> [-1, 1].
    rows = (top[:, None] + torch.arange(ch, dtype=torch.float64) + 0.5) / s[:, None]
    cols = (left[:, None] + torch.arange(cw, dtype=torch.float64) + 0.5) / s[:, None]
    cols = torch.where(flips[:, None], cols.flip(-1), cols)
    gy = (2 * rows / h - 1)[:, :, None].expand(b, ch, cw)
    gx = (2 * cols / w - 1)[:, None, :].expand(b, ch, cw)
    grid = torch.stack([gx, gy], -1).to(device=device, dtype=torch.float32)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Masks: ids + 1 sampled by nearest neighbour, so 0 marks pixels outside the frame.
    shifted = (target.to(torch.int16) + 1).to(torch.float32)[:, None]
    m = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0].to(torch.int16) - 1
    m = torch.where(m < 0, torch.full_like(m, 255), m).to(torch.uint8)
    return x.contiguous(), m
