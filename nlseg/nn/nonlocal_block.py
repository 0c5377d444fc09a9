"""The PIDE-based Nonlocal Block (thesis §4.2; docs/design.md §2.3).

θ, φ: 1x1 embeddings C → C'; φ(X) and the values are max-pooled with pool p (p = 0: none).
ω is computed from the block input once; each stage k applies

    B_k = X + h 𝒦_k(u(B_{k−1})),   B_0 = X,

with 𝒦_k a 1x1 conv → BN → ReLU and u the pairwise update of :func:`nlseg.ops.pairwise_update`
(queries: B_{k−1} at full resolution, keys: pooled B_{k−1}). Output shape = input shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nlseg.ops import KernelParams, pairwise_update_with


@dataclass(frozen=True)
class NonlocalConfig:
    """Hyper-parameters of a Nonlocal Block (docs/design.md §2.3): the pairwise kernel ω with its
    parameters (``log_gamma`` included, docs/design.md §6), the number of stages and the pool p."""

    pairwise: KernelParams = KernelParams("dot")
    stages: int = 2
    pool: int = 2

    def __post_init__(self) -> None:
        if self.stages < 1:
            raise ValueError(f"a Nonlocal Block needs at least one stage, got {self.stages}")
        if self.pool < 0:
            raise ValueError(f"pool size must be >= 0 (0 = no subsampling), got {self.pool}")


class PairwiseOperator(nn.Module):
    """u = pairwise_update(θ, φ, v, x) as a module, so tools can find, count and replace it."""

    def __init__(self, params: KernelParams, impl: str | None = None) -> None:
        super().__init__()
        self.params, self.impl = params, impl

    def forward(self, theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return pairwise_update_with(theta, phi, values, x, self.params, impl=self.impl)

    def extra_repr(self) -> str:
        p = self.params
        gamma = f", log_gamma={p.log_gamma:.6g}" if p.kernel == "log" else ""
        return f"kernel={p.kernel!r}, s={p.s}, lam={p.lam}, n={p.n}{gamma}, impl={self.impl!r}"


def _stage_conv(channels: int) -> nn.Sequential:
    """𝒦: 1x1 conv → BN → ReLU (docs/design.md §2.3 records the order)."""
    return nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class NonlocalBlock(nn.Module):
    """Multi-stage Nonlocal Block (4.1), (4.6)–(4.8) with subsampling pool p (§4.2.1)."""

    def __init__(self, channels: int, config: NonlocalConfig = NonlocalConfig(), h: float = 0.06) -> None:
        super().__init__()
        embed = max(1, channels // 2)
        self.config = config
        self.h = h
        self.theta = nn.Conv2d(channels, embed, 1)
        self.phi = nn.Conv2d(channels, embed, 1)
        self.stages = nn.ModuleList(_stage_conv(channels) for _ in range(config.stages))
        self.pairwise = PairwiseOperator(config.pairwise)

    def subsample(self, t: torch.Tensor) -> torch.Tensor:
        """Max-pool with window and stride p, covering ragged borders (any H, W); p = 0: identity."""
        p = self.config.pool
        return t if p <= 1 else F.max_pool2d(t, p, p, ceil_mode=True)

    def key_grid(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size of the subsampled keys for an input of ``height`` x ``width``."""
        p = self.config.pool
        return (height, width) if p <= 1 else (-(-height // p), -(-width // p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)
        phi = self.subsample(self.phi(x)).flatten(2).transpose(1, 2)
        out = x
        for stage in self.stages:
            values = self.subsample(out).flatten(2).transpose(1, 2)
            u = self.pairwise(theta, phi, values, out.flatten(2).transpose(1, 2))
            out = x + self.h * stage(u.transpose(1, 2).reshape(b, c, hgt, wid))
        return out

    def dense_pairwise_macs(self, height: int, width: int) -> int:
        """Multiply-adds of the pairwise part counted as the thesis does (Tables 6.1, 6.2).

        ω formed once (N·M·C'), then one N×M by M×C product per stage.
        """
        n_q = height * width
        kh, kw = self.key_grid(height, width)
        m = kh * kw
        embed, c = self.theta.out_channels, self.theta.in_channels
        return n_q * m * embed + len(self.stages) * n_q * m * c
