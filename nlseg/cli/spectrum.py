"""``nlseg spectrum CHECKPOINT --out DIR``: eigenvalues of the Nonlocal Blocks' 𝒦1, 𝒦2 (thesis §6.2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from nlseg.analysis.spectrum import nonlocal_spectra, write_spectrum
from nlseg.checkpoint import load_model
from nlseg.cli import app
from nlseg.cli.console import table_console
from nlseg.errors import InputError
from nlseg.io import output_dir


@app.command()
def spectrum(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint (last.pt, best.pt) of a network with Nonlocal "
                                               "Blocks.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Folder for spectrum.json, eigenvalues_real.png and "
                                      "eigenvalues_symmetric.png.", show_default=False)],
    fold_bn: Annotated[bool, typer.Option("--fold-bn", help="Analyse diag(γ/√(σ²+ε))·𝒦, the conv with the "
                                          "stage's BN folded in, instead of the conv weights alone (the "
                                          "thesis's 𝒦).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line: the summary per matrix.")] = False,
) -> None:
    """Eigenvalues (real parts, fraction positive) of each Nonlocal Block's 1x1 stage weights 𝒦1, 𝒦2 and of
    their symmetric parts (𝒦+𝒦ᵀ)/2, as JSON and as figures in the style of thesis Figures 6.1–6.4."""
    model, config, payload = load_model(checkpoint)
    blocks = nonlocal_spectra(model, fold_bn)
    if not blocks:
        raise InputError(f"{checkpoint}: the {config.arch} network has no Nonlocal Blocks (trained with --nonlocal none)")
    meta = payload.get("meta", {})
    source = {"checkpoint": str(checkpoint), "model_config": config.to_dict(), "dataset": meta.get("dataset"),
              "epoch": meta.get("epoch")}
    kernel = config.nonlocal_kernel
    title = f"{config.arch} with {kernel} Nonlocal Blocks on {meta.get('dataset', '?')}, epoch {meta.get('epoch', '?')}"
    with output_dir(out) as folder:
        paths = write_spectrum(blocks, folder, fold_bn, source, title)

    console = table_console()
    console.print(f"{checkpoint}: {len(blocks)} Nonlocal Block(s), {kernel} kernel; "
                  f"𝒦 = {'conv with BN folded in' if fold_bn else 'the 1x1 conv weights'}")
    table = Table()
    for column in ("block", "𝒦", "size", "Re(λ) > 0", "min Re(λ)", "max Re(λ)", "λ(𝒦s) > 0", "min λ(𝒦s)",
                   "max λ(𝒦s)"):
        table.add_column(column, justify="left" if column in ("block", "𝒦") else "right")
    rows = []
    for block in blocks:
        for st in block.stages:
            rows.append({"block": block.name, "unit": block.unit, "stage": st.stage,
                         "fraction_positive_real": st.fraction_positive_real,
                         "fraction_positive_symmetric": st.fraction_positive_symmetric})
            table.add_row(block.label, f"𝒦{st.stage}", f"{block.channels}x{block.channels}",
                          f"{st.fraction_positive_real:.2f}", f"{min(st.eigenvalues_real):.3f}",
                          f"{max(st.eigenvalues_real):.3f}", f"{st.fraction_positive_symmetric:.2f}",
                          f"{st.symmetric_eigenvalues[0]:.3f}", f"{st.symmetric_eigenvalues[-1]:.3f}")
    console.print(table)
    for path in paths.values():
        console.print(f"wrote {path}")
    if as_json:
        print(json.dumps({"files": {k: str(v) for k, v in paths.items()}, "matrices": rows}))
