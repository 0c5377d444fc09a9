"""The training loss: cross-entropy summed over samples or labelled pixels (255 ignored), and the
real-time segmenter's head, its coarse logits upsampled to the labels' grid.

:func:`segmenter_loss` is one definition with two implementations: the reference (the model's own
:func:`~nlseg.nn.realtime.upsample_logits`, then :func:`summed_loss` and
:func:`~nlseg.train.metrics.class_labels`) and, for float32 on the CPU, the fused C++ pass of
:mod:`nlseg.ops.cpu.cross_entropy`, which never forms the full-resolution logits (that upsampling,
its backward and the log-softmax over the full grid were about half of a CPU training step).
Tests hold the two to the float64 reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nlseg.data.labels import IGNORE_INDEX
from nlseg.nn.realtime import upsample_logits
from nlseg.ops.cpu.build import HEAD_LIBRARY
from nlseg.ops.cpu.cross_entropy import upsampled_cross_entropy_cpu
from nlseg.train.metrics import class_labels


def summed_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy summed over samples or labelled pixels (255 ignored), in float32.

    With class weights ``weight`` each term is multiplied by the weight of its true class.
    """
    return F.cross_entropy(logits.float(), target.long(), weight=weight, ignore_index=IGNORE_INDEX, reduction="sum")


def labelled_count(target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Samples, or labelled pixels, of a target batch (at least 1), without a device sync.

    With class weights: the sum of the labelled pixels' weights (the weighted loss's mean divides by it).
    """
    if target.dim() == 1:
        return torch.tensor(float(len(target)), device=target.device)
    labelled = target != IGNORE_INDEX
    if weight is None:
        return labelled.sum().clamp(min=1).float()
    return weight[torch.where(labelled, target.long(), 0)].mul(labelled).sum().clamp(min=1e-12).float()


def segmenter_loss(coarse: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                   fused: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed loss, labels) of a real-time segmenter's coarse logits (B, C, h, w) upsampled to the
    size of the labels ``target`` (B, H, W): :func:`summed_loss` and the arg-max of
    ``upsample_logits(coarse, (H, W))``, in float32 for float16/bfloat16 logits (as CUDA autocast
    runs the upsampling).

    Float32 logits on the CPU with uint8 labels and at most 256 classes take the fused C++ kernel
    (labels uint8) when it builds and ``fused`` is set; anything else, the reference (labels int64).
    """
    head = (HEAD_LIBRARY.load() if fused and coarse.dtype == torch.float32 and coarse.device.type == "cpu"
            and target.dtype == torch.uint8 and coarse.shape[1] <= 256 else None)
    if head is not None:
        return upsampled_cross_entropy_cpu(coarse, target, weight, upsample_logits, IGNORE_INDEX, head)
    if coarse.dtype in (torch.float16, torch.bfloat16):
        coarse = coarse.float()
    logits = upsample_logits(coarse, tuple(target.shape[-2:]))
    return summed_loss(logits, target, weight), class_labels(logits.detach())
