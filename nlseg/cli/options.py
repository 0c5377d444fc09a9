"""Model flags shared by ``nlseg summary``, ``train``, ``export`` and ``profile``."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Optional

import typer

from nlseg.errors import InputError
from nlseg.nn.config import ARCHITECTURES, ModelConfig
from nlseg.nn.presets import LAYOUTS, PRESETS

# CLI names of the nonlocal operators -> pairwise kernels (DESIGN §2.3); "diffusion" is 𝓛 (4.1).
NONLOCAL_CHOICES: dict[str, str | None] = {
    "none": None,
    "diffusion": "dot",
    "gaussian": "gaussian",
    "frac": "frac",
    "invfrac": "invfrac",
    "log": "log",
}

Dataset = Annotated[str, typer.Option("--dataset", help=f"Architecture preset: {', '.join(PRESETS)}.")]
Model = Annotated[str, typer.Option("--model", help=f"Block type or baseline: {', '.join(ARCHITECTURES)}.")]
Blocks = Annotated[Optional[str], typer.Option("--blocks", help="Blocks per Unit, e.g. 6-6-6.")]
Channels = Annotated[Optional[str], typer.Option("--channels", help="Channels per Unit, e.g. 32-64-112.")]
Nonlocal = Annotated[Optional[str], typer.Option(
    "--nonlocal", help=f"Nonlocal operator: {', '.join(NONLOCAL_CHOICES)} (default: none; realtime layout: diffusion).")]
S = Annotated[Optional[float], typer.Option("--s", help="Exponent s of frac / invfrac, 0 < s < 1 (default 0.5).")]
Stages = Annotated[Optional[int], typer.Option("--stages", help="Stages per Nonlocal Block (default 2).")]
Pool = Annotated[Optional[int], typer.Option("--pool", help="Subsampling pool of the Nonlocal Block, 0 = none (default: preset).")]
H = Annotated[Optional[float], typer.Option("--h", help="Step size h of the Blocks (default 0.06).")]
Layout = Annotated[str, typer.Option("--layout", help=f"Network layout: {', '.join(LAYOUTS)} (realtime: segmenters only).")]


def parse_ints(text: str | None, flag: str) -> tuple[int, ...] | None:
    """'6-6-6' -> (6, 6, 6); an InputError naming ``flag`` for anything else."""
    if text is None:
        return None
    try:
        values = tuple(int(part) for part in text.split("-"))
    except ValueError:
        values = ()
    if not values or any(v <= 0 for v in values):
        raise InputError(f"{flag}: expected dash-separated positive integers such as 6-6-6, got {text!r}")
    return values


def parse_size(text: str, flag: str) -> tuple[int, ...]:
    """'90x160' -> (90, 160); '1x3x90x160' -> (1, 3, 90, 160); an InputError naming ``flag`` otherwise."""
    try:
        values = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        values = ()
    if not values or any(v <= 0 for v in values):
        raise InputError(f"{flag}: expected positive integers joined by 'x' such as 90x160, got {text!r}")
    return values


def model_config(
    dataset: str,
    model: str,
    blocks: str | None,
    channels: str | None,
    nonlocal_op: str | None,
    s: float | None,
    stages: int | None,
    pool: int | None,
    h: float | None,
    *,
    layout: str = "thesis",
) -> ModelConfig:
    """The ModelConfig the model flags describe; InputError naming the flag on bad values."""
    if dataset not in PRESETS:
        raise InputError(f"--dataset: unknown dataset {dataset!r}; expected one of {', '.join(PRESETS)}")
    if model not in ARCHITECTURES:
        raise InputError(f"--model: unknown model {model!r}; expected one of {', '.join(ARCHITECTURES)}")
    if nonlocal_op is not None and nonlocal_op not in NONLOCAL_CHOICES:
        raise InputError(f"--nonlocal: unknown operator {nonlocal_op!r}; expected one of {', '.join(NONLOCAL_CHOICES)}")
    if layout not in LAYOUTS:
        raise InputError(f"--layout: unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if layout != "thesis" and PRESETS[dataset].task != "segment":
        raise InputError(f"--layout {layout}: a segmentation layout; --dataset {dataset} is a classification set")
    if layout != "thesis" and model not in ("hamiltonian", "leapfrog", "midpoint"):
        raise InputError(f"--layout {layout}: needs a Hamiltonian, Leapfrog or Midpoint --model, not {model}")
    default_kernel = LAYOUTS[layout].get("nonlocal_kernel")
    kernel = default_kernel if nonlocal_op is None else NONLOCAL_CHOICES[nonlocal_op]
    if kernel is not None and model not in ("hamiltonian", "leapfrog", "midpoint"):
        raise InputError(f"--nonlocal: {model} is a baseline without Nonlocal Blocks; use --nonlocal none")
    if s is not None and kernel in ("frac", "invfrac") and not 0 < s < 1:
        raise InputError(f"--s: the {nonlocal_op} kernel needs 0 < s < 1, got {s}")
    if stages is not None and stages < 1:
        raise InputError(f"--stages: need at least 1, got {stages}")
    if pool is not None and pool < 0:
        raise InputError(f"--pool: need 0 (none) or a positive pool size, got {pool}")
    if h is not None and not h > 0:
        raise InputError(f"--h: the step size must be positive, got {h}")
    block_counts = parse_ints(blocks, "--blocks")
    channel_counts = parse_ints(channels, "--channels")
    config = ModelConfig.from_preset(
        dataset,
        layout=layout,
        arch=model,
        blocks=block_counts,
        channels=channel_counts,
        s=s,
        stages=stages,
        pool=pool,
        h=h,
    )
    config = replace(config, nonlocal_kernel=kernel)
    if len(config.blocks) != len(config.channels):
        raise InputError(f"--blocks {'-'.join(map(str, config.blocks))} and --channels "
                         f"{'-'.join(map(str, config.channels))} must name the same number of Units")
    if model == "hamiltonian" and any(c % 2 for c in config.channels):
        raise InputError(f"--channels: Hamiltonian Blocks split channels in halves; all must be even, got {channels}")
    return config
