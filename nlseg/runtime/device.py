"""Choosing and naming devices."""

from __future__ import annotations

import platform

import torch

from nlseg.errors import InputError


def resolve_device(flag: str | None) -> torch.device:
    """``--device`` value -> torch.device; default CUDA when available. InputError if unusable."""
    if flag in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(flag)
    except RuntimeError:
        raise InputError(f"--device: unknown device {flag!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {flag}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {flag}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise InputError(f"--device: unsupported device type {device.type!r}; use cpu or cuda")
    return device


def describe_device(device: str | torch.device) -> str:
    """'NVIDIA H200' for CUDA devices, the CPU model and thread count otherwise."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model} ({torch.get_num_threads()} threads)"
