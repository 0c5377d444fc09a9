"""Input noise drawn afresh for every batch (Q-tips, thesis §5.2; docs/design.md §6)."""

from __future__ import annotations

import torch


def add_input_noise(images: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """[0, 1] float images (uint8 are scaled by 1/255) plus N(0, σ²) noise, clipped to [0, 1].

    The noise is drawn on the CPU from ``generator`` (so a run's noise is a function of its seed and
    epoch, on any device) and moved to the images' device.
    """
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if sigma <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device)
    return (x + sigma * noise).clamp_(0.0, 1.0)
