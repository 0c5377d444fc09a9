"""An exponential moving average of a network's weights (``--ema``), the model that is validated and saved.

After every optimiser step each floating-point entry of the state dict (parameters and the
BatchNorm statistics) moves towards the trained network's: ``a ← d·a + (1 − d)·w``, with the
decay warming up as ``d = min(decay, (1 + t) / (10 + t))`` after ``t`` steps, so the first
steps are not dominated by the initial weights (TensorFlow's ``ExponentialMovingAverage`` with
``num_updates``). Integer entries (BatchNorm's batch count) are copied. Averaging over the last
few epochs smooths the epoch-to-epoch swings of a held-out drive's score.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay(decay: float, updates: int) -> float:
    """The decay of update number ``updates + 1``: ``min(decay, (1 + t) / (10 + t))``."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class WeightAverage:
    """A copy of ``module`` (in eval mode) whose state is the moving average of ``module``'s."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay {decay}: expected 0 < decay < 1")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """One step of the average towards ``module``'s current state."""
        d = ema_decay(self.decay, self.updates)
        mine, theirs = self.module.state_dict(), module.state_dict()
        floats = [k for k, v in mine.items() if v.dtype.is_floating_point]
        torch._foreach_lerp_([mine[k] for k in floats], [theirs[k].detach() for k in floats], 1.0 - d)
        for k, v in mine.items():
            if not v.dtype.is_floating_point:
                v.copy_(theirs[k])
        self.updates += 1

    def state(self) -> dict:
        """What a checkpoint keeps to resume the average: its step count (the weights are ``state_dict``)."""
        return {"decay": self.decay, "updates": self.updates}

    def load(self, state_dict: dict[str, torch.Tensor], state: dict) -> None:
        """Restore the average from a checkpoint's ``state_dict`` and :meth:`state`."""
        self.module.load_state_dict(state_dict)
        self.updates = int(state["updates"])
