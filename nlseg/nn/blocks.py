"""The normal Blocks: one time step of a stable ODE discretisation each (thesis §2.4.2).

K is a 3x3 convolution (dilated by ``dilation``: the real-time layout's output stride), Kᵀ its
adjoint (the transposed convolution with the same weights and dilation), σ = ReLU after batch
normalisation (its shift plays the bias b of the equations).
Leapfrog and Midpoint are two-step schemes: ``forward(y, y_prev)`` with ``y_prev=None`` for
the first step of a Unit (docs/design.md §2.1 records how we start them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _adjoint(conv: nn.Conv2d, y: torch.Tensor) -> torch.Tensor:
    """Kᵀ y: the transposed convolution with the weights of ``conv``."""
    return F.conv_transpose2d(y, conv.weight, stride=conv.stride, padding=conv.padding, dilation=conv.dilation)


def _conv(channels: int, kernel_size: int, dilation: int) -> nn.Conv2d:
    """K: a same-size convolution without bias (the BN after it plays b)."""
    return nn.Conv2d(channels, channels, kernel_size, padding=dilation * (kernel_size // 2), dilation=dilation, bias=False)


class HamiltonianBlock(nn.Module):
    """Verlet step (2.17) on the channel halves Y, Z of X.

    Y+ = Y + h K1ᵀ σ(BN(K1 Z)),  Z+ = Z − h K2ᵀ σ(BN(K2 Y+)),  output cat(Y+, Z+).
    Algebraically reversible by (2.24): see :meth:`inverse`.
    """

    def __init__(self, channels: int, h: float = 0.06, kernel_size: int = 3, dilation: int = 1) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"HamiltonianBlock needs an even channel count, got {channels}")
        half = channels // 2
        self.h = h
        self.conv1 = _conv(half, kernel_size, dilation)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = _conv(half, kernel_size, dilation)
        self.bn2 = nn.BatchNorm2d(half)

    def _g(self, z: torch.Tensor) -> torch.Tensor:
        """𝒢(Z) = h K1ᵀ σ(BN(K1 Z)) of (2.23)."""
        return self.h * _adjoint(self.conv1, F.relu(self.bn1(self.conv1(z))))

    def _h(self, y: torch.Tensor) -> torch.Tensor:
        """ℋ(Y) = −h K2ᵀ σ(BN(K2 Y)) of (2.23)."""
        return -self.h * _adjoint(self.conv2, F.relu(self.bn2(self.conv2(y))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, z = x.chunk(2, dim=1)
        y = y + self._g(z)
        z = z + self._h(y)
        return torch.cat((y, z), dim=1)

    def inverse(self, out: torch.Tensor) -> torch.Tensor:
        """X from the block output by (2.24): Z = Z+ − ℋ(Y+), Y = Y+ − 𝒢(Z) (eval-mode BN)."""
        y, z = out.chunk(2, dim=1)
        z = z - self._h(y)
        y = y - self._g(z)
        return torch.cat((y, z), dim=1)

    def smoothness_weights(self) -> list[torch.Tensor]:
        """K_{j,1}, K_{j,2} for the weight smoothness decay (4.10)."""
        return [self.conv1.weight, self.conv2.weight]


class TwoStepBlock(nn.Module):
    """A block of a two-step scheme: ``forward(y, y_prev)``, ``y_prev=None`` on the first step."""

    def __init__(self, channels: int, h: float = 0.06, kernel_size: int = 3, dilation: int = 1) -> None:
        super().__init__()
        self.h = h
        self.conv = _conv(channels, kernel_size, dilation)
        self.bn = nn.BatchNorm2d(channels)

    def smoothness_weights(self) -> list[torch.Tensor]:
        """K_j for the weight smoothness decay (4.10)."""
        return [self.conv.weight]


class LeapfrogBlock(TwoStepBlock):
    """Leapfrog step (2.19): Y_{j+1} = 2Y_j − Y_{j−1} − h² Kᵀ σ(BN(K Y_j)), with Y_{−1} = Y_0."""

    def forward(self, y: torch.Tensor, y_prev: torch.Tensor | None = None) -> torch.Tensor:
        y_prev = y if y_prev is None else y_prev
        return 2.0 * y - y_prev - self.h**2 * _adjoint(self.conv, F.relu(self.bn(self.conv(y))))


class MidpointBlock(TwoStepBlock):
    """Midpoint step (2.21): Y_{j+1} = Y_{j−1} + 2h σ(BN((K − Kᵀ) Y_j)); forward Euler first."""

    def forward(self, y: torch.Tensor, y_prev: torch.Tensor | None = None) -> torch.Tensor:
        f = F.relu(self.bn(self.conv(y) - _adjoint(self.conv, y)))
        if y_prev is None:
            return y + self.h * f
        return y_prev + 2.0 * self.h * f


BLOCKS: dict[str, type[nn.Module]] = {
    "hamiltonian": HamiltonianBlock,
    "leapfrog": LeapfrogBlock,
    "midpoint": MidpointBlock,
}
