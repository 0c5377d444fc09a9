"""Reference pairwise update: forms ω block by block, the oracle for every fast path.

Memory is bounded by ``max_chunk_elements`` (query rows × key columns of ω at a time). With
autograd, each block is recomputed in the backward pass (activation checkpointing), so
training holds O(N·C) activations, not the N×M matrix.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from nlseg.ops.omega import DISTANCE_KERNELS, KernelParams, combine, condition_embeddings, pair_weights

DEFAULT_CHUNK_ELEMENTS = 1 << 22  # 4M kernel entries: 16 MB of float32 per block


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other dtype is computed in float32 (docs/design.md §2.3)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def pairwise_reference(theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, x: torch.Tensor,
                       params: KernelParams, *,
                       max_chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS) -> torch.Tensor:
    """u (B, N, C) by forming ω in blocks of query rows; ``max_chunk_elements=None`` forms it whole."""
    out_dtype = x.dtype
    dtype = compute_dtype(theta.dtype)
    theta, phi, values, x = (t.to(dtype) for t in (theta, phi, values, x))
    m = phi.shape[1]
    log_scale = None
    if params.kernel in DISTANCE_KERNELS:
        theta, phi, log_scale = condition_embeddings(theta, phi)

    def block(theta_rows: torch.Tensor, x_rows: torch.Tensor, phi: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        w = pair_weights(params, theta_rows, phi, log_scale)
        return combine(params.kernel, w @ values, w.sum(-1, keepdim=True), x_rows, m)

    n_rows = theta.shape[1]
    unbounded = max_chunk_elements is None or theta.device.type == "meta"  # meta tensors hold no memory
    rows = n_rows if unbounded else max(1, max_chunk_elements // max(m, 1))
    recompute = torch.is_grad_enabled() and any(t.requires_grad for t in (theta, phi, values, x))
    parts = []
    for start in range(0, n_rows, rows):
        args = (theta[:, start : start + rows], x[:, start : start + rows], phi, values)
        if recompute and rows < n_rows:
            parts.append(checkpoint(block, *args, use_reentrant=False))
        else:
            parts.append(block(*args))
    u = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    return u.to(out_dtype)
