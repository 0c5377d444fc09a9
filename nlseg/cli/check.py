"""``nlseg check``: an exported ONNX model against its PyTorch weights on the same input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from nlseg.cli import app
from nlseg.cli import options as opt
from nlseg.onnx.parity import DEFAULT_TOLERANCES, check_onnx

FP32, FP16 = DEFAULT_TOLERANCES["float32"], DEFAULT_TOLERANCES["float16"]

Model = Annotated[Path, typer.Argument(help="Exported model (.onnx).")]
Weights = Annotated[Optional[Path], typer.Option(
    "--weights", help="Checkpoint .pt (default: the weights recorded at export, else the bundled default weights).")]
Shape = Annotated[Optional[str], typer.Option(
    "--shape", help="Input BxCxHxW, e.g. 1x3x90x160 (default: the export's size).")]
Image = Annotated[Optional[Path], typer.Option(
    "--image", help="Run on this image (resized to --shape), not random pixels.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the random input.")]
Atol = Annotated[Optional[float], typer.Option(
    "--atol", help=f"Pass when max_abs_diff <= atol + rtol * max|logits| (default {FP32.atol:g}; fp16 graphs {FP16.atol:g}).")]
Rtol = Annotated[Optional[float], typer.Option("--rtol", help=f"See --atol (default {FP32.rtol:g}; fp16 graphs {FP16.rtol:g}).")]
MinAgreement = Annotated[Optional[float], typer.Option(
    "--min-agreement", help=f"Lowest argmax_agreement accepted (default {FP32.min_agreement:g}; fp16 {FP16.min_agreement:g}).")]
Json = Annotated[bool, typer.Option("--json", help="End with one JSON line of the results.")]


@app.command()
def check(
    model: Model,
    weights: Weights = None,
    shape: Shape = None,
    image: Image = None,
    seed: Seed = 0,
    atol: Atol = None,
    rtol: Rtol = None,
    min_agreement: MinAgreement = None,
    as_json: Json = False,
) -> None:
    """Compare MODEL in ONNX Runtime with its weights in PyTorch on the same input (exit 1 above tolerance)."""
    parsed = opt.parse_size(shape, "--shape") if shape is not None else None
    report = check_onnx(model, weights=weights, shape=parsed, image=image, seed=seed,
                        atol=atol, rtol=rtol, min_agreement=min_agreement)
    t = report.tolerances
    print(f"{model}: {report.graph} graph, {report.precision}, input {'x'.join(map(str, report.shape))}, "
          f"weights {report.weights}")
    print(f"max_abs_diff     {report.max_abs_diff:.3g} (limit {t.atol:g} + {t.rtol:g} x max|logits| "
          f"{report.reference_scale:.3g} = {report.abs_limit:.3g})")
    print(f"max_rel_diff     {report.max_rel_diff:.3g}")
    print(f"argmax_agreement {report.argmax_agreement:.6f} (limit {t.min_agreement:g})")
    print("PASS" if report.passed else "FAIL: above tolerance")
    if as_json:
        print(json.dumps(report.to_dict()))
    if not report.passed:
        raise typer.Exit(1)
