"""Regularisation of thesis §4.3: weight-decay groups and weight smoothness decay (4.10).

Two conventions for the L2 decay constant α (docs/design.md §6): eq. (4.9) reads
R(K) = (α/2)‖K‖², whose gradient αK is what torch's ``weight_decay=α`` adds; the thesis
authors' Keras code uses ``l2(α)``, which adds α‖K‖² to the loss, gradient 2αK, so torch
needs ``weight_decay=2α`` for it. Their dense classifier has no regulariser.
"""

from __future__ import annotations

import torch
from torch import nn

from nlseg.nn.network import Unit
from nlseg.nn.nonlocal_block import NonlocalBlock

NONLOCAL_WEIGHT_DECAY = 2e-4
DECAY_CONVENTIONS: tuple[str, ...] = ("eq4.9", "keras")


def torch_weight_decay(alpha: float, convention: str = "eq4.9") -> float:
    """torch's ``weight_decay`` for the decay constant α: α for eq. (4.9)'s (α/2)‖K‖², 2α for Keras' α‖K‖²."""
    if convention not in DECAY_CONVENTIONS:
        raise ValueError(f"unknown weight-decay convention {convention!r}; expected one of {', '.join(DECAY_CONVENTIONS)}")
    return alpha if convention == "eq4.9" else 2.0 * alpha


def weight_decay_groups(
    model: nn.Module, weight_decay: float, nonlocal_weight_decay: float = NONLOCAL_WEIGHT_DECAY, *,
    convention: str = "eq4.9", decay_classifier: bool = True,
) -> list[dict]:
    """Optimizer parameter groups for the L2 decay (4.9) of docs/design.md §2.4.

    Conv and dense weights of the normal layers get the decay constant ``weight_decay`` (2e-4;
    5e-4 on STL-10), those inside Nonlocal Blocks ``nonlocal_weight_decay`` (2e-4 always),
    biases and BN parameters none; ``decay_classifier=False`` leaves the dense (``nn.Linear``)
    weights undecayed, as the thesis authors' code does. The constants are α of ``convention``
    (:func:`torch_weight_decay`). Groups carry a ``name`` for logging.
    """
    nonlocal_params = {id(p) for m in model.modules() if isinstance(m, NonlocalBlock) for p in m.parameters()}
    normal, in_nonlocal, no_decay = [], [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            decayed_types = (nn.Conv2d, nn.Linear) if decay_classifier else (nn.Conv2d,)
            is_weight = name == "weight" and isinstance(module, decayed_types)
            if not is_weight:
                no_decay.append(p)
            elif id(p) in nonlocal_params:
                in_nonlocal.append(p)
            else:
                normal.append(p)
    groups = [
        {"name": "weights", "params": normal, "weight_decay": torch_weight_decay(weight_decay, convention)},
        {"name": "nonlocal_weights", "params": in_nonlocal,
         "weight_decay": torch_weight_decay(nonlocal_weight_decay, convention)},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def weight_smoothness_decay(model: nn.Module, alpha: float = 1e-8) -> torch.Tensor:
    """α₂ h Σ_j Σ_k ‖(K_{j,k} − K_{j+1,k}) / h‖²_F over adjacent normal Blocks of each Unit (4.10).

    Nonlocal Blocks are skipped (not regularised, §4.3), so the Blocks either side of one
    count as adjacent. Returns a scalar on the model's device; 0 for networks without Units.
    """
    total: torch.Tensor | None = None
    for unit in (m for m in model.modules() if isinstance(m, Unit)):
        blocks = [layer for layer in unit.layers if hasattr(layer, "smoothness_weights")]
        for a, b in zip(blocks[:-1], blocks[1:]):
            h = a.h
            for ka, kb in zip(a.smoothness_weights(), b.smoothness_weights()):
                term = alpha * h * ((ka - kb) / h).pow(2).sum()
                total = term if total is None else total + term
    if total is None:
        p = next(model.parameters(), None)
        return torch.zeros((), device=p.device if p is not None else None)
    return total
