"""The PIDE-based Nonlocal Block (thesis §4.2; DESIGN §2.3).

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

from nlseg.ops import pairwise_update
from nlseg.ops.kernels import EULER_GAMMA, check_kernel, check_log_gamma


@dataclass(frozen=True)
class NonlocalConfig:
    """Hyper-parameters of a Nonlocal Block (docs/design.md §2.3); ``log_gamma`` is the constant
    term γ of the log kernel, c(−2λ log‖·‖ − γ) (docs/design.md §6)."""

    kernel: str = "dot"
    s: float = 0.5
    stages: int = 2
    pool: int = 2
    lam: float = 0.1
    n: int = 2
    log_gamma: float = EULER_GAMMA

    def __post_init__(self) -> None:
        check_kernel(self.kernel, self.s, self.n)
        check_log_gamma(self.log_gamma)
        if self.stages < 1:
            raise ValueError(f"a Nonlocal Block needs at least one stage, got {self.stages}")
        if self.pool < 0:
            raise ValueError(f"pool size must be >= 0 (0 = no subsampling), got {self.pool}")


class PairwiseOperator(nn.Module):
    """u = pairwise_update(θ, φ, v, x) as a module, so tools can find, count and replace it."""

    def __init__(self, kernel: str, s: float = 0.5, lam: float = 0.1, n: int = 2, impl: str | None = None,
                 log_gamma: float = EULER_GAMMA) -> None:
        super().__init__()
        self.kernel, self.s, self.lam, self.n, self.impl = kernel, s, lam, n, impl
        self.log_gamma = log_gamma

    def forward(self, theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return pairwise_update(theta, phi, values, x, self.kernel, s=self.s, lam=self.lam, n=self.n,
                               log_gamma=self.log_gamma, impl=self.impl)

    def extra_repr(self) -> str:
        gamma = f", log_gamma={self.log_gamma:.6g}" if self.kernel == "log" else ""
        return f"kernel={self.kernel!r}, s={self.s}, lam={self.lam}, n={self.n}{gamma}, impl={self.impl!r}"


def _stage_conv(channels: int) -> nn.Sequential:
    """𝒦: 1x1 conv → BN → ReLU (DESIGN §2.3 records the order)."""
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
        self.pairwise = PairwiseOperator(config.kernel, config.s, config.lam, config.n, log_gamma=config.log_gamma)

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
