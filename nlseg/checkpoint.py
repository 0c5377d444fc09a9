"""Checkpoints: ``.pt`` files that carry the model config, loadable with ``weights_only=True``.

Layout (a plain dict of tensors and JSON-able values):
``{"format": "nlseg-checkpoint", "version": 1, "model_config": {...}, "state_dict": {...},
"meta": {...}}`` plus any extra entries a trainer adds (optimiser state, epoch, RNG states).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

import nlseg
from nlseg.errors import InputError
from nlseg.io import atomic_path
from nlseg.nn.config import ModelConfig, build_model

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

FORMAT = "nlseg-checkpoint"
VERSION = 1


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    config: ModelConfig,
    meta: dict[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """Write ``model``'s weights with ``config`` atomically (temporary name, then rename)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "nlseg_version": nlseg.__version__,
        "model_config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
        **extra,
    }
    buffer = io.BytesIO()  # serialised in memory: torch's own writer reports a full disk as a RuntimeError
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return Path(path)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint dict, loaded with ``weights_only=True``; InputError naming the file otherwise."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: checkpoint not found")
    if not p.is_file():
        raise InputError(f"{p}: is a folder, not a checkpoint file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file (0 bytes), not a checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns before refusing a pickle: the one line below says it all
            warnings.simplefilter("ignore")
            payload = torch.load(p, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise InputError(f"{p}: {_load_failure(p, exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{p}: not an nlseg checkpoint (no 'format': '{FORMAT}' entry)")
    if payload.get("version", 0) > VERSION:
        raise InputError(f"{p}: checkpoint format version {payload.get('version')} is newer than this nlseg reads ({VERSION})")
    return payload


def _load_failure(path: Path, exc: Exception) -> str:
    """One line on why torch.load refused ``path``: truncated, a pickle, or not a checkpoint at all."""
    with open(path, "rb") as f:
        head = f.read(4)
    text = _ANSI.sub("", str(exc)).strip()
    if head == b"PK\x03\x04" or isinstance(exc, EOFError):
        return "truncated or corrupt checkpoint (the file ends early or is not a complete .pt archive)"
    if head[:1] == b"\x80" and "Weights only load failed" in text:
        return "not an nlseg checkpoint (a pickle of Python objects, which torch.load(weights_only=True) refuses)"
    first = text.splitlines()[0][:120] if text else "no message"
    if "Weights only load failed" in text:
        first = "neither a .pt archive nor a pickle"
    return f"not a readable PyTorch checkpoint ({first})"


def load_model(path: str | os.PathLike[str]) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """Build the network a checkpoint describes and load its weights; returns (model, config, payload)."""
    payload = read_checkpoint(path)
    try:
        config = ModelConfig.from_dict(payload["model_config"])
        model = build_model(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: invalid model config in checkpoint ({exc})") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError) as exc:
        lines = _ANSI.sub("", str(exc)).strip().splitlines()
        first = lines[0][:160] if lines else type(exc).__name__
        raise InputError(f"{path}: weights do not fit the model config ({first})") from None
    return model, config, payload
