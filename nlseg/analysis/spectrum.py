"""Spectra of the Nonlocal Blocks' stage weights 𝒦1, 𝒦2 (thesis §6.2, Figures 6.1–6.4, A.3–A.5).

Each stage of a :class:`~nlseg.nn.nonlocal_block.NonlocalBlock` applies 𝒦_k = 1x1 conv → BN →
ReLU; the thesis's 𝒦_k ∈ R^{C×C} is the conv's weight matrix, and that is what is reported by
default. With ``fold_bn`` the matrix is diag(γ/√(σ²+ε))·𝒦_k, the linear part of conv → BN in
evaluation mode (BN's shift is an offset, not part of the linear map): the map the features
actually see before the ReLU.

For each 𝒦 we report the eigenvalues (their real parts decide amplification or damping, and
the fraction with a positive real part should stay near 0.5, Figures 6.1, 6.2) and the
eigenvalues of the symmetric part 𝒦_s = (𝒦 + 𝒦ᵀ)/2, which alone determines the quadratic
form xᵀ𝒦x (Figures 6.3, 6.4). Positive means strictly greater than zero.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nlseg.io import atomic_path
from nlseg.nn.nonlocal_block import NonlocalBlock

JSON_NAME, REAL_PNG, SYMMETRIC_PNG = "spectrum.json", "eigenvalues_real.png", "eigenvalues_symmetric.png"


@dataclass(frozen=True)
class StageSpectrum:
    """The spectrum of one stage matrix 𝒦_k (C×C) of one Nonlocal Block."""

    stage: int
    eigenvalues_real: list[float]
    eigenvalues_imag: list[float]
    fraction_positive_real: float
    symmetric_eigenvalues: list[float]
    fraction_positive_symmetric: float


@dataclass(frozen=True)
class BlockSpectrum:
    """The stages of one Nonlocal Block, named by its module path and (when known) its Unit (1-based)."""

    name: str
    unit: int | None
    channels: int
    stages: list[StageSpectrum]

    @property
    def label(self) -> str:
        return f"Unit {self.unit}" if self.unit is not None else self.name


def stage_matrix(stage: nn.Sequential, fold_bn: bool = False) -> torch.Tensor:
    """𝒦 (C×C, float64) of a stage conv → BN → ReLU; with ``fold_bn`` the rows are scaled by γ/√(σ²+ε)."""
    conv, bn = stage[0], stage[1]
    if not isinstance(conv, nn.Conv2d) or conv.kernel_size != (1, 1) or conv.in_channels != conv.out_channels:
        raise ValueError(f"expected a square 1x1 convolution as the stage's first layer, got {conv}")
    k = conv.weight.detach().to("cpu", torch.float64).reshape(conv.out_channels, conv.in_channels)
    if fold_bn:
        if not isinstance(bn, nn.BatchNorm2d) or bn.running_var is None:
            raise ValueError(f"fold_bn needs a BatchNorm2d with running statistics after the conv, got {bn}")
        gamma = bn.weight.detach().to("cpu", torch.float64) if bn.weight is not None else torch.ones(k.shape[0])
        scale = gamma / torch.sqrt(bn.running_var.detach().to("cpu", torch.float64) + bn.eps)
        k = scale[:, None] * k
    return k


def matrix_spectrum(k: torch.Tensor, stage: int = 1) -> StageSpectrum:
    """Eigenvalues of ``k`` (sorted by real part) and of its symmetric part (ascending)."""
    k = k.to(torch.float64)
    eig = torch.linalg.eigvals(k)
    eig = eig[torch.argsort(eig.real, stable=True)]
    sym = torch.linalg.eigvalsh((k + k.T) / 2)
    return StageSpectrum(
        stage=stage,
        eigenvalues_real=eig.real.tolist(),
        eigenvalues_imag=eig.imag.tolist(),
        fraction_positive_real=float((eig.real > 0).double().mean()),
        symmetric_eigenvalues=sym.tolist(),
        fraction_positive_symmetric=float((sym > 0).double().mean()),
    )


def _unit_of(name: str) -> int | None:
    match = re.search(r"(?:^|\.)units\.(\d+)(?:\.|$)", name)
    return int(match.group(1)) + 1 if match else None


def nonlocal_spectra(model: nn.Module, fold_bn: bool = False) -> list[BlockSpectrum]:
    """The spectra of every Nonlocal Block of ``model``, in module order."""
    blocks = []
    for name, module in model.named_modules():
        if isinstance(module, NonlocalBlock):
            stages = [matrix_spectrum(stage_matrix(stage, fold_bn), i) for i, stage in enumerate(module.stages, 1)]
            blocks.append(BlockSpectrum(name, _unit_of(name), module.theta.in_channels, stages))
    return blocks


def spectrum_report(blocks: list[BlockSpectrum], fold_bn: bool, source: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: what was analysed, what 𝒦 means, and every eigenvalue."""
    return {
        "format": "nlseg-spectrum",
        "version": 1,
        **source,
        "matrix": "diag(gamma/sqrt(running_var+eps)) @ conv" if fold_bn else "conv",
        "bn_folded": fold_bn,
        "positive": "strictly greater than 0",
        "blocks": [{"name": b.name, "unit": b.unit, "channels": b.channels,
                    "stages": [asdict(s) for s in b.stages]} for b in blocks],
    }


def _plot(blocks: list[BlockSpectrum], path: Path, symmetric: bool, title: str) -> None:
    """One panel per (stage, block): eigenvalue against index, the zero line, '+ fraction' in a corner."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = max(len(b.stages) for b in blocks)
    cols = len(blocks)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for c, block in enumerate(blocks):
        for r in range(rows):
            ax = axes[r][c]
            if r >= len(block.stages):
                ax.axis("off")
                continue
            st = block.stages[r]
            values = st.symmetric_eigenvalues if symmetric else st.eigenvalues_real
            fraction = st.fraction_positive_symmetric if symmetric else st.fraction_positive_real
            ax.plot(range(1, len(values) + 1), values, ".", markersize=4)
            ax.axhline(0.0, color="grey", linewidth=0.8)
            ax.text(0.04, 0.92, f"+ {fraction:.2f}", transform=ax.transAxes, va="top", fontsize=10)
            ax.set_title(f"{block.label} ({block.channels}x{block.channels}): $\\mathcal{{K}}_{st.stage}$", fontsize=9)
            ax.set_xlabel("index", fontsize=8)
            if c == 0:
                ax.set_ylabel("eigenvalue" if symmetric else "Re(eigenvalue)", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def write_spectrum(blocks: list[BlockSpectrum], out: Path, fold_bn: bool, source: dict[str, Any],
                   title: str) -> dict[str, Path]:
    """Write ``spectrum.json`` and the two figures (Figures 6.1/6.2 and 6.3/6.4 style) into ``out``."""
    if not blocks:
        raise ValueError("no Nonlocal Blocks to analyse")
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / JSON_NAME, "real": out / REAL_PNG, "symmetric": out / SYMMETRIC_PNG}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(spectrum_report(blocks, fold_bn, source), indent=1) + "\n")
    what = "BN-folded " if fold_bn else ""
    _plot(blocks, paths["real"], False, f"Real parts of the eigenvalues of {what}K1, K2\n{title}")
    _plot(blocks, paths["symmetric"], True, f"Eigenvalues of the symmetric parts of {what}K1, K2\n{title}")
    return paths
