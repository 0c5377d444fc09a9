"""The dot kernel without an N×M matrix (docs/design.md §2.3).

Σ_j (θ_i·φ_j) v_j = θ_i (Φᵀ V) and Σ_j θ_i·φ_j = θ_i · Σ_j φ_j, so the nonlocal diffusion
update (4.1) with ω = λ θ·φ costs O((N + M)·C'·C) instead of O(N·M·C). Exact.
"""

from __future__ import annotations

import torch

from nlseg.ops.omega import KernelParams, combine
from nlseg.ops.reference import compute_dtype


def pairwise_associative(theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, x: torch.Tensor,
                         params: KernelParams) -> torch.Tensor:
    """u = (λ/M)(θ (ΦᵀV) − x (θ·Σφ)) for the kernel ``dot``."""
    if params.kernel != "dot":
        raise ValueError(f"the associative implementation only exists for kernel 'dot', not {params.kernel!r}")
    out_dtype = x.dtype
    dtype = compute_dtype(theta.dtype)
    theta, phi, values, x = (t.to(dtype) for t in (theta, phi, values, x))
    keys_values = phi.transpose(1, 2) @ values  # (B, C', C)
    key_sum = phi.sum(dim=1).unsqueeze(-1)  # (B, C', 1)
    weighted_values = params.lam * (theta @ keys_values)
    row_sums = params.lam * (theta @ key_sum)
    return combine(params.kernel, weighted_values, row_sums, x, phi.shape[1]).to(out_dtype)
