"""The real-time segmenter's training head in one C++ pass (``upsampled_ce.cpp``): autograd and inputs.

:func:`upsampled_cross_entropy_cpu` returns, for float32 coarse logits (B, C, h, w) on the CPU and
labels (B, H, W), the class-weighted cross-entropy of the logits upsampled to (H, W), summed over
the labelled pixels, and the arg-max label of every pixel, with the gradient of the sum with respect
to the coarse logits; the upsampled logits are never formed. The upsampling is separable with two
taps per output row and column, which the caller reads off its own upsampling function with
:func:`separable_taps`, so the kernel computes exactly that function's weights.
:mod:`nlseg.train.loss` is the contract and the reference it is tested against.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import torch
from torch.autograd.function import once_differentiable

from nlseg.ops.cpu.build import LoadedHead

RETURN_CODES = {2: "bad sizes", 3: "out of memory", 4: "a label that is neither a class nor the ignore index"}
Upsample = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]


@lru_cache(maxsize=64)
def separable_taps(upsample: Upsample, size_in: int, size_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two source indices (2, size_out) int64 and weights (2, size_out) float32 of each output line
    of ``upsample(x, (H, W))``, a separable upsampling with at most two taps per line (bilinear),
    read off its output for the identity (cached: do not modify them)."""
    # Output row r = Σ_k m[r, k] · input row k; the columns of the identity stay as they are.
    m = upsample(torch.eye(size_in, dtype=torch.float32, device="cpu")[None, None], (size_out, size_in))[0, 0]
    if m.shape != (size_out, size_in) or ((m != 0).sum(1) > 2).any():
        name = getattr(upsample, "__name__", repr(upsample))
        raise ValueError(f"{name} is not a two-tap separable upsampling ({size_in} -> {size_out})")
    index = torch.arange(size_in).expand(size_out, size_in)
    nonzero = m != 0
    first = torch.where(nonzero, index, size_in).amin(1).clamp(max=size_in - 1)
    last = torch.where(nonzero, index, -1).amax(1).clamp(min=0)
    rows = torch.arange(size_out)
    w_first = m[rows, first]
    w_last = torch.where(last != first, m[rows, last], torch.zeros(()))
    return torch.stack([first, last]).contiguous(), torch.stack([w_first, w_last]).float().contiguous()


class _UpsampledCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, coarse: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,  # type: ignore[override]
                upsample: Upsample, ignore_index: int, head: LoadedHead) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = coarse.shape
        height, width = target.shape[-2:]
        padded = -(-c // head.lanes) * head.lanes  # whole vectors of classes; the padding is not read
        logits = coarse.new_zeros(b, h, w, padded)
        logits[..., :c] = coarse.detach().permute(0, 2, 3, 1)
        labels = target.contiguous()
        rows, row_taps = separable_taps(upsample, h, height)
        cols, col_taps = separable_taps(upsample, w, width)
        class_weight = None if weight is None else weight.detach().float().contiguous()
        loss = torch.empty(b, dtype=torch.float64)
        predicted = torch.empty(b, height, width, dtype=torch.uint8)
        grad = torch.empty_like(logits)
        parallel, thread_num = head.openmp or (None, None)
        code = head.entry(logits.data_ptr(), labels.data_ptr(), None if class_weight is None else class_weight.data_ptr(),
                          rows.data_ptr(), row_taps.data_ptr(), cols.data_ptr(), col_taps.data_ptr(),
                          b, c, padded, h, w, height, width, ignore_index, torch.get_num_threads(), parallel, thread_num,
                          loss.data_ptr(), predicted.data_ptr(), grad.data_ptr())
        if code != 0:
            raise ValueError(f"the CPU training-head kernel refused its inputs: {RETURN_CODES.get(code, code)}")
        ctx.save_for_backward(grad[..., :c])
        ctx.mark_non_differentiable(predicted)
        return loss.sum().to(coarse.dtype), predicted

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: torch.Tensor, _grad_labels: torch.Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return (grad * grad_loss).permute(0, 3, 1, 2), None, None, None, None, None


def upsampled_cross_entropy_cpu(coarse: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                                upsample: Upsample, ignore_index: int, head: LoadedHead
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed loss, uint8 labels (B, H, W)) of float32 CPU ``coarse`` logits (B, C, h, w), C <= 256, upsampled
    by ``upsample`` to the size of the uint8 labels ``target`` (B, H, W); ``weight``: (C,) CPU class weights
    or None. Differentiable in ``coarse``. ValueError on inputs of other kinds or shapes, and on a label
    that is neither a class nor ``ignore_index``."""
    if coarse.dtype != torch.float32 or coarse.device.type != "cpu" or target.dtype != torch.uint8:
        raise ValueError(f"float32 CPU logits and uint8 labels, got {coarse.dtype} on {coarse.device} and {target.dtype}")
    if coarse.dim() != 4 or target.dim() != 3 or target.shape[0] != coarse.shape[0] or coarse.shape[1] > 256:
        raise ValueError(f"logits (B, C <= 256, h, w) and labels (B, H, W), got {tuple(coarse.shape)} and "
                         f"{tuple(target.shape)}")
    if weight is not None and (weight.shape != (coarse.shape[1],) or weight.device.type != "cpu"):
        raise ValueError(f"class weights ({coarse.shape[1]},) on the CPU, got {tuple(weight.shape)} on {weight.device}")
    return _UpsampledCrossEntropy.apply(coarse, target, weight, upsample, ignore_index, head)
