"""``nlseg profile``: forward-pass latency and throughput per backend (:func:`nlseg.api.profile_backend`)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from nlseg.api.profile import backends_to_profile, open_for_profile, profile_backend
from nlseg.assets import default_weights
from nlseg.cli import app
from nlseg.cli import options as opt
from nlseg.cli.console import table_console
from nlseg.errors import InputError
from nlseg.onnx.source_model import random_init
from nlseg.runtime.device import resolve_device


@app.command()
@opt.with_model_flags
def profile(
    model_flags: opt.ModelFlags,
    weights: Annotated[Optional[Path], typer.Argument(help="Checkpoint .pt, .onnx, OpenVINO .xml or TensorRT .engine (default: the bundled weights).")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="torch | onnxruntime | openvino | tensorrt | all.")] = None,
    shape: Annotated[Optional[str], typer.Option("--shape", help="Input BxCxHxW (default: 1x3 and the model's size).")] = None,
    half: Annotated[bool, typer.Option("--half", help="fp16 on CUDA, bf16 on CPU (torch backend); bf16 on openvino.")] = False,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed passes first.")] = 10,
    iters: Annotated[int, typer.Option("--iters", help="Timed passes.")] = 50,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="Time a captured CUDA graph (torch and tensorrt backends).")] = False,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda if available).")] = None,
    random_init_flag: Annotated[bool, typer.Option("--random-init", help="Time an untrained architecture from the model flags.")] = False,
    dataset: opt.Dataset = "bdd100k",
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line (p50_ms, p90_ms, p99_ms, throughput, …).")] = False,
) -> None:
    """Time forward passes (CUDA events on GPU) and print mean, percentiles, min, max and throughput."""
    if warmup < 0 or iters < 1:
        raise InputError(f"--warmup must be >= 0 and --iters >= 1, got {warmup} and {iters}")
    torch_device = resolve_device(device)
    if random_init_flag and weights is not None:
        raise InputError("--random-init: pass either WEIGHTS or --random-init, not both")
    weights_path = None if random_init_flag else (weights if weights is not None else default_weights())
    source = random_init(model_flags.config(dataset), seed=0) if weights_path is None else None
    batch_shape = None if shape is None else opt.parse_size(shape, "--shape")
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="nlseg-profile-") as tmp:
        for name in backends_to_profile(backend, weights_path):
            engine = open_for_profile(name, weights_path, source, torch_device, half=half, cuda_graph=cuda_graph,
                                      workdir=Path(tmp))
            try:
                results.append(profile_backend(engine, batch_shape, warmup=warmup, iters=iters))
            finally:
                engine.close()
    console = table_console()
    for r in results:
        table = Table(title=f"{r['backend']} on {r['device_name']}", title_justify="left")
        for col in ("precision", "shape", "mean", "p50", "p90", "p95", "p99", "min", "max", "images/s"):
            table.add_column(col, justify="left" if col in ("precision", "shape") else "right")
        table.add_row(r["precision"], "x".join(map(str, r["shape"])),
                      *(f"{r[k + '_ms']:.3f}" for k in ("mean", "p50", "p90", "p95", "p99", "min", "max")),
                      f"{r['throughput']:.1f}")
        console.print(table)
    if as_json:
        print(json.dumps(results[0] if len(results) == 1 else {"backends": results}))
