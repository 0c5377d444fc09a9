"""``nlseg serve [WEIGHTS]``: serve a model on Triton Inference Server over HTTP and gRPC (:mod:`nlseg.serve`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from nlseg.cli import app
from nlseg.serve.stub_env import DEFAULT_STUB_SITE


@app.command()
def serve(
    weights: Annotated[Optional[Path], typer.Argument(help="Checkpoint .pt, .onnx or TensorRT .engine (default: the bundled weights).")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="torch | onnxruntime | tensorrt (default: from the weights file).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda if available).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address the endpoints listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option("--http-port", help="KServe v2 HTTP port.")] = 8000,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="KServe v2 gRPC port.")] = 8001,
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="Prometheus metrics port.")] = 8002,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Largest batch the dynamic batcher forms.")] = 8,
    instances: Annotated[int, typer.Option("--instances", help="Model instances (each loads the weights; batches run in parallel).")] = 1,
    name: Annotated[str, typer.Option("--name", help="Model name in the URLs.")] = "nlseg",
    max_pixels: Annotated[int, typer.Option("--max-pixels", help="Largest image (width x height) a request may send.")] = 4096 * 4096,
    stub_site: Annotated[Path, typer.Option("--stub-site", help="Folder with a NumPy 1.x for Triton's Python stub, "
                                                                 "used where this environment has NumPy 2.")] = DEFAULT_STUB_SITE,
) -> None:
    """Serve WEIGHTS as Triton model NAME: input 'image' (encoded JPEG/PNG bytes), output 'mask' (PNG of train ids).

    Prints one line with the URLs once ready; SIGINT or SIGTERM answers the requests in flight and exits 0.
    """
    from nlseg.serve.server import ServeOptions, serve as run_server

    options = ServeOptions(weights=weights, backend=backend, device=device, host=host, http_port=http_port,
                           grpc_port=grpc_port, metrics_port=metrics_port, max_batch=max_batch, instances=instances,
                           name=name, max_pixels=max_pixels, stub_site=stub_site)

    def ready(urls: dict[str, str]) -> None:
        print(f"nlseg serve: {name} ready ({max_batch} per batch, {instances} instance(s)): {urls['http']} "
              f"{urls['grpc']} metrics {urls['metrics']}", flush=True)

    try:
        run_server(options, ready)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(f"nlseg serve: {name} stopped", flush=True)
