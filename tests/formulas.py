"""Independent float64 evaluations of the thesis's formulas, the tests' oracle."""

from __future__ import annotations

import math

import torch

GAMMA = 0.5772156649015329


def authors_log_weight(dist, lam=0.1, n=2):
    """The authors' code's log kernel as written there, λ·c_n(−2 log d − γ) (0 at d = 0), float64."""
    c = 1 / ((4 * math.pi) ** (n / 2) * math.gamma(n / 2))
    safe = torch.where(dist == 0, torch.ones_like(dist), dist)
    return torch.where(dist == 0, 0.0, lam * c * (-2 * torch.log(safe) - GAMMA))


def authors_log_gamma(lam=0.1):
    """The constant term under which (4.8)'s c(−2λ log d − γ') equals the authors' kernel: γ' = λγ."""
    return lam * GAMMA


def naive_update(theta, phi, values, x, kernel, s=0.5, lam=0.1, n=2, log_gamma=GAMMA):
    """Written from thesis (4.1), (4.6)-(4.8) and docs/design.md §2.3 with exact differences, float64.

    ``log_gamma`` is the log kernel's constant term: GAMMA as (4.8) reads (the text's convention),
    ``authors_log_gamma(lam)`` for the thesis authors' λ·c(−2 log d − γ) (docs/design.md §6).
    """
    theta, phi, values, x = (t.double() for t in (theta, phi, values, x))
    m = phi.shape[1]
    diff = theta[:, :, None, :] - phi[:, None, :, :]  # (B, N, M, C')
    big = diff.abs().amax(-1, keepdim=True)  # hypot-style scaling: exact for huge and tiny values
    dist = big.squeeze(-1) * (diff / torch.where(big > 0, big, 1.0)).pow(2).sum(-1).sqrt()
    dot = (theta[:, :, None, :] * phi[:, None, :, :]).sum(-1)
    zero = dist == 0
    safe = torch.where(zero, torch.ones_like(dist), dist)
    if kernel == "dot":
        w = lam * dot
    elif kernel == "gaussian":
        w = torch.exp(lam * dot)
    elif kernel == "frac":
        c = 4**s * math.gamma(n / 2 + s) / (math.pi ** (n / 2) * abs(math.gamma(-s)))
        w = torch.where(zero, 0.0, c * lam * safe ** (-(n + 2 * s)))
    elif kernel == "invfrac":
        c = math.gamma(n / 2 - s) / (4**s * math.pi ** (n / 2) * math.gamma(s))
        w = torch.where(zero, 0.0, c * lam * safe ** (-(n - 2 * s)))
    elif kernel == "log":
        c = 1 / ((4 * math.pi) ** (n / 2) * math.gamma(n / 2))
        w = torch.where(zero, 0.0, c * (-2 * lam * torch.log(safe) - log_gamma))
    else:
        raise AssertionError(kernel)
    v = values[:, None, :, :]  # (B, 1, M, C)
    xi = x[:, :, None, :]  # (B, N, 1, C)
    if kernel in ("dot", "gaussian"):
        terms = v - xi
    elif kernel == "frac":
        terms = xi - v
    else:
        terms = v.expand(-1, x.shape[1], -1, -1)
    return (w[..., None] * terms).sum(2) / m
