"""The weights an export is made from, how their origin is recorded, and how a check finds them again.

An export records a :class:`WeightsOrigin`: the checkpoint path, or the seed of a
random-init build, and the SHA-256 of the state dict. ``nlseg check`` rebuilds the same
PyTorch model from it (or from the checkpoint it is given) and refuses weights whose digest differs, so a
parity number always compares the graph with the weights it was exported from.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nlseg.assets import default_weights
from nlseg.checkpoint import load_model
from nlseg.errors import InputError
from nlseg.nn.config import ModelConfig, build_model
from nlseg.onnx.metadata import ModelMetadata, WeightsOrigin


@dataclass
class SourceModel:
    """A PyTorch model in eval mode with its config, weights origin and checkpoint meta."""

    model: nn.Module
    config: ModelConfig
    origin: WeightsOrigin
    meta: dict[str, Any] = field(default_factory=dict)
    input_mean: torch.Tensor | None = None  # (3, H, W) when the trainer subtracted a per-pixel mean


def state_digest(model: nn.Module) -> str:
    """SHA-256 over the state dict (names, dtypes, shapes and bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def from_checkpoint(path: str | os.PathLike[str]) -> SourceModel:
    """The model a checkpoint holds (InputError naming the file if it is not one)."""
    model, config, payload = load_model(path)
    model.eval()
    origin = WeightsOrigin("checkpoint", state_digest(model), path=str(Path(path).resolve()))
    meta = dict(payload.get("meta", {}))
    per_pixel = meta.get("normalization", {}).get("per_pixel", False)
    return SourceModel(model, config, origin, meta, payload.get("input_mean") if per_pixel else None)


def random_init(config: ModelConfig, seed: int) -> SourceModel:
    """``build_model(config)`` under ``torch.manual_seed(seed)``, without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(config).eval()
    return SourceModel(model, config, WeightsOrigin("random-init", state_digest(model), seed=seed))


def for_check(metadata: ModelMetadata, weights: Path | None) -> SourceModel:
    """The PyTorch model an export came from: ``weights`` if given, else the recorded origin.

    Recorded origin: the same seed for random-init exports; the checkpoint path if it still
    exists, else the bundled default weights. InputError when the weights' digest is not the exported one.
    """
    origin = metadata.weights
    param = None
    if weights is not None:
        source, what, param = from_checkpoint(weights), str(weights), "weights"
    elif origin.source == "random-init" and origin.seed is not None:
        source, what = random_init(metadata.config, origin.seed), f"random-init seed {origin.seed}"
    elif origin.path is not None and Path(origin.path).is_file():
        source, what = from_checkpoint(origin.path), origin.path
    else:
        try:
            bundled = default_weights()
        except InputError:
            raise InputError(f"{origin.path}: the weights this model was exported from are not here "
                             "(nor are the bundled weights); name the checkpoint", param="weights") from None
        source, what = from_checkpoint(bundled), str(bundled)
    if source.origin.sha256 != origin.sha256:
        fix = ("name the checkpoint it was exported from" if source.origin.source == "checkpoint" else
               "the same seed draws other weights under another torch version; export from a checkpoint instead")
        raise InputError(f"{what}: these are not the weights the model was exported from (state-dict SHA-256 "
                         f"{source.origin.sha256[:12]}…, export recorded {origin.sha256[:12]}…); {fix}", param=param)
    return source
