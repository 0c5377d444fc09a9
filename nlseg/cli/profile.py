"""``nlseg profile``: forward-pass latency and throughput per backend."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import torch
import typer
from rich.table import Table

from nlseg.assets import demo_weights
from nlseg.cli import app
from nlseg.cli.console import table_console
from nlseg.cli import options as opt
from nlseg.errors import InputError
from nlseg.onnx import ExportOptions, export_onnx, read_metadata
from nlseg.onnx.weights import SourceModel, for_check, from_checkpoint, random_init
from nlseg.runtime.backend import Backend
from nlseg.runtime.device import resolve_device
from nlseg.runtime.load import BACKENDS, backend_for, open_backend
from nlseg.runtime.ort_backend import OrtBackend
from nlseg.runtime.timing import latency_stats
from nlseg.runtime.torch_backend import TorchBackend, model_info


def _backends(choice: str | None, weights: Path | None) -> list[str]:
    if choice == "all":
        engine = weights is not None and backend_for(weights, None) == "tensorrt"
        return ["torch", "onnxruntime"] + (["tensorrt"] if engine else [])
    if choice is None:
        return ["torch"] if weights is None else [backend_for(weights, None)]
    if choice not in BACKENDS:
        raise InputError(f"--backend: unknown backend {choice!r}; expected {', '.join(BACKENDS)} or all")
    return [choice]


@app.command()
def profile(
    weights: Annotated[Optional[Path], typer.Argument(help="Checkpoint .pt, .onnx or TensorRT .engine (default: the bundled demo weights).")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="torch | onnxruntime | tensorrt | all.")] = None,
    shape: Annotated[Optional[str], typer.Option("--shape", help="Input BxCxHxW (default: 1x3 and the model's size).")] = None,
    half: Annotated[bool, typer.Option("--half", help="fp16 on CUDA, bf16 on CPU (torch backend).")] = False,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed passes first.")] = 10,
    iters: Annotated[int, typer.Option("--iters", help="Timed passes.")] = 50,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="Time a captured CUDA graph (torch and tensorrt backends).")] = False,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda if available).")] = None,
    random_init: Annotated[bool, typer.Option("--random-init", help="Time an untrained architecture from the model flags.")] = False,
    dataset: opt.Dataset = "bdd100k",
    model: opt.Model = "hamiltonian",
    layout: opt.Layout = "thesis",
    blocks: opt.Blocks = None,
    channels: opt.Channels = None,
    nonlocal_op: opt.Nonlocal = None,
    s: opt.S = None,
    stages: opt.Stages = None,
    pool: opt.Pool = None,
    h: opt.H = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line (p50_ms, p90_ms, p99_ms, throughput, …).")] = False,
) -> None:
    """Time forward passes (CUDA events on GPU) and print mean, percentiles, min, max and throughput."""
    if warmup < 0 or iters < 1:
        raise InputError(f"--warmup must be >= 0 and --iters >= 1, got {warmup} and {iters}")
    torch_device = resolve_device(device)
    if random_init and weights is not None:
        raise InputError("--random-init: pass either WEIGHTS or --random-init, not both")
    weights_path = None if random_init else (weights if weights is not None else demo_weights())
    names = _backends(backend, weights_path)
    results: list[dict] = []
    console = table_console()
    with tempfile.TemporaryDirectory(prefix="nlseg-profile-") as tmp:
        for name in names:
            engine = _open(name, weights_path, torch_device, half, cuda_graph, Path(tmp),
                           (dataset, model, blocks, channels, nonlocal_op, s, stages, pool, h, layout))
            size = engine.info.input_size
            batch_shape = (1, 3, size[0], size[1]) if shape is None else opt.parse_size(shape, "--shape")
            if len(batch_shape) != 4 or batch_shape[1] != 3:
                raise InputError(f"--shape: expected Bx3xHxW such as 1x3x90x160, got {shape!r}")
            times = engine.time_forward(batch_shape, warmup, iters)  # type: ignore[arg-type]
            results.append({
                "backend": engine.name,
                "device": engine.device,
                "device_name": engine.device_name(),
                "precision": engine.precision,
                "shape": list(batch_shape),
                "weights": str(weights_path) if weights_path is not None else "<random-init>",
                **latency_stats(times, batch_shape[0]),
            })
            engine.close()
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


def _source(weights: Path | None, flags: tuple) -> SourceModel:
    """The PyTorch model behind ``weights`` (a checkpoint, or an export's recorded origin) or the model flags."""
    if weights is None:
        dataset, arch, blocks, channels, nonlocal_op, s, stages, pool, h, layout = flags
        config = opt.model_config(dataset, arch, blocks, channels, nonlocal_op, s, stages, pool, h, layout=layout)
        try:
            return random_init(config, seed=0)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    if weights.suffix == ".onnx":
        return for_check(read_metadata(weights), None)
    if backend_for(weights, None) == "tensorrt":
        from nlseg.tensorrt.engine_meta import read_engine_metadata

        return for_check(read_engine_metadata(weights).model, None)
    return from_checkpoint(weights)


def _open(name: str, weights: Path | None, device: torch.device, half: bool, cuda_graph: bool, tmp: Path,
          flags: tuple) -> Backend:
    """The backend ``name`` for ``weights``; a checkpoint is exported for onnxruntime on the fly."""
    if weights is not None and backend_for(weights, None) == name:
        return open_backend(weights, name, device, half=half, cuda_graph=cuda_graph)
    if name == "tensorrt":
        raise InputError("--backend tensorrt: TensorRT runs engines: build one with nlseg export --trt "
                         "and profile that file")
    source = _source(weights, flags)
    if name == "torch":
        precision = ("fp16" if device.type == "cuda" else "bf16") if half else "fp32"
        label = weights if weights is not None else Path("<random-init>")
        info = model_info(source.config, source.meta, source.input_mean)
        return TorchBackend(source.model, info, label, device, precision, cuda_graph)
    onnx_path = tmp / "model.onnx"
    try:
        export_onnx(source, onnx_path, ExportOptions(half=half))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return OrtBackend(onnx_path, device)
