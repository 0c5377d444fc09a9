"""Choosing and naming devices."""

from __future__ import annotations

import platform

import torch

from nlseg.errors import InputError


def resolve_device(flag: str | None, local_rank: int = 0) -> torch.device:
    """A device name -> torch.device; ``auto`` (or none) is CUDA when available, and a bare
    ``cuda`` is this process's GPU ``local_rank`` (torchrun). InputError naming ``device`` if unusable."""
    if flag in (None, "", "auto"):
        flag = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(flag)
    except RuntimeError:
        raise InputError(f"unknown device {flag!r}; use auto, cpu, cuda or cuda:N", param="device") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"{flag}: CUDA is not available on this machine", param="device")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise InputError(f"{flag}: {device} does not exist ({torch.cuda.device_count()} CUDA device(s) present)",
                             param="device")
    elif device.type != "cpu":
        raise InputError(f"unsupported device type {device.type!r}; use auto, cpu or cuda", param="device")
    return device


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ('AMD EPYC …'), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def describe_device(device: str | torch.device) -> str:
    """'NVIDIA H200' for CUDA devices, the CPU model and thread count otherwise."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"
