"""Data-parallel training under ``torchrun``: one process per device, NCCL on GPUs, gloo on CPUs.

Every process holds the whole dataset and draws the same global batch and augmentation
from the shared per-epoch generator, then trains on its contiguous slice. Batch norm is
synchronised across processes so that the global batch is normalised exactly as in a
single process, and the loss is scaled so that DDP's gradient average equals the gradient
of the global batch mean: the run reproduces the single-process run up to float rounding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from nlseg.runtime.device import resolve_device


@dataclass(frozen=True)
class Context:
    """This process's rank, the number of processes and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """The contiguous part of ``n`` items (a global batch, the validation set) this process takes."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def all_reduce(self, tensors: list[torch.Tensor]) -> None:
        """Sum ``tensors`` in place over all processes (no-op in a single process)."""
        if self.world > 1:
            for t in tensors:
                dist.all_reduce(t)


def setup(device_flag: str) -> Context:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(0, 1, resolve_device(device_flag))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_flag, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), device)


def teardown() -> None:
    """Leave the process group, if any."""
    if dist.is_initialized():
        dist.destroy_process_group()


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of a sum is the sum of the gradients (an all-reduce again)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 (autograd context)
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def differentiable_all_reduce(x: torch.Tensor) -> torch.Tensor:
    """``x`` summed over all processes, with gradients flowing back to every process."""
    return _AllReduceSum.apply(x)


class SyncBatchNorm2d(nn.BatchNorm2d):
    """Batch norm with statistics over the global batch of all processes, on any device.

    Two all-reduces per call (mean, then centred variance) through autograd-aware
    collectives, so gradients flow to every process's inputs as in one big batch.
    The state dict is that of :class:`torch.nn.BatchNorm2d`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        xf = x.float()
        count = torch.tensor([x.numel() / x.shape[1]], device=x.device, dtype=torch.float32)
        total = differentiable_all_reduce(torch.cat([xf.sum((0, 2, 3)), count]))
        n = total[-1]
        mean = total[:-1] / n
        centred = xf - mean[None, :, None, None]
        var = differentiable_all_reduce(centred.pow(2).sum((0, 2, 3))) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach() * n / max(float(n) - 1, 1.0))
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def sync_batchnorm(model: nn.Module) -> nn.Module:
    """Swap every BatchNorm2d of ``model`` for :class:`SyncBatchNorm2d` in place (same state; before ``.to``)."""
    for module in model.modules():
        for name, child in module.named_children():
            if type(child) is nn.BatchNorm2d:
                sync = SyncBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                       child.track_running_stats)
                sync.load_state_dict(child.state_dict())
                setattr(module, name, sync)
    return model

