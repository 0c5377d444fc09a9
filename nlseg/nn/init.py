"""He initialisation [HZR+15] for every network in nlseg (thesis §4.4)."""

from __future__ import annotations

from torch import nn


def he_init(model: nn.Module) -> None:
    """Kaiming-normal (fan-in, ReLU gain) conv and dense weights, zero biases, BN γ = 1, β = 0."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
