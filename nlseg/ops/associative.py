"""The dot kernel without an N×M matrix (DESIGN §2.3).

Σ_j (θ_i·φ_j) v_j = θ_i (Φᵀ V) and Σ_j θ_i·φ_j = θ_i · Σ_j φ_j, so the nonlocal diffusion
update (4.1) with ω = λ θ·φ costs O((N + M)·C'·C) instead of O(N·M·C). Exact.
"""

from __future__ import annotations

import torch

from nlseg.ops.kernels import EULER_GAMMA, combine
from nlseg.ops.reference import compute_dtype


def pairwise_associative(
    theta: torch.Tensor,
    phi: torch.Tensor,
    values: torch.Tensor,
    x: torch.Tensor,
    kernel: str,
    *,
    s: float = 0.5,
    lam: float = 0.1,
    n: int = 2,
    log_gamma: float = EULER_GAMMA,
) -> torch.Tensor:
    """u = (λ/M)(θ (ΦᵀV) − x (θ·Σφ)) for ``kernel='dot'``; ``s``, ``n`` and ``log_gamma`` are unused."""
    if kernel != "dot":
        raise ValueError(f"the associative implementation only exists for kernel 'dot', not {kernel!r}")
    out_dtype = x.dtype
    dtype = compute_dtype(theta.dtype)
    theta, phi, values, x = (t.to(dtype) for t in (theta, phi, values, x))
    keys_values = phi.transpose(1, 2) @ values  # (B, C', C)
    key_sum = phi.sum(dim=1).unsqueeze(-1)  # (B, C', 1)
    weighted_values = lam * (theta @ keys_values)
    row_sums = lam * (theta @ key_sum)
    return combine(kernel, weighted_values, row_sums, x, phi.shape[1]).to(out_dtype)
