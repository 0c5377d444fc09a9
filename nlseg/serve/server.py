"""``nlseg serve``: a Segmenter behind NVIDIA's Triton Inference Server, bound through ``nvidia-pytriton``.

The ``tritonserver`` binary in the ``nvidia-pytriton`` wheel speaks KServe v2 over HTTP and gRPC, batches
requests dynamically and exports Prometheus metrics; its Python backend hands each batch of requests to
:class:`ServedModel` in this process, which segments them with nlseg's own backend (torch, onnxruntime or
tensorrt: the wheel has no native onnxruntime or TensorRT backend). The wire contract is
:mod:`nlseg.serve.contract`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlseg.errors import InputError
from nlseg.serve import watchdog
from nlseg.serve.contract import INPUT, OUTPUT, BadImage, config_parameters, decode_image, encode_image
from nlseg.serve.stub_env import DEFAULT_STUB_SITE, StubEnvError, library_path, stub_prefix

LOG = logging.getLogger("nlseg.serve")


@dataclass(frozen=True)
class ServeOptions:
    """What ``nlseg serve`` was asked for."""

    weights: Path | None = None
    backend: str | None = None
    device: str | None = None
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch: int = 8
    instances: int = 1
    name: str = "nlseg"
    max_pixels: int = 4096 * 4096
    queue_delay_us: int = 2000  # how long the dynamic batcher waits to fill a batch
    stub_site: Path = DEFAULT_STUB_SITE

    def urls(self) -> dict[str, str]:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return {"http": f"http://{host}:{self.http_port}/{self.name}", "grpc": f"grpc://{host}:{self.grpc_port}/{self.name}",
                "metrics": f"http://{host}:{self.metrics_port}/metrics"}


class ServedModel:
    """The callable Triton runs for one model instance: a list of requests in, one response each out.

    Every image of every request in the batch is decoded and checked first; one bad entry fails the
    batch it came in with an error naming the request entry and the problem (``nvidia-pytriton`` answers
    a batch as a whole), and the server goes on with the next batch.
    """

    def __init__(self, segmenter: Any, max_batch: int, max_pixels: int) -> None:
        self.segmenter, self.max_batch, self.max_pixels = segmenter, max_batch, max_pixels

    def __call__(self, requests: list[Any]) -> list[dict[str, np.ndarray]]:
        images: list[np.ndarray] = []
        counts: list[int] = []
        for r, request in enumerate(requests):
            data = request[INPUT]
            if data.dtype != np.object_ or data.ndim != 2 or data.shape[1] != 1:
                raise BadImage(f"request {r}: input {INPUT!r} must be BYTES of shape [batch, 1], got "
                               f"{data.dtype} {list(data.shape)}")
            for i, entry in enumerate(data[:, 0]):
                try:
                    images.append(decode_image(bytes(entry), self.max_pixels))
                except BadImage as exc:
                    where = f"{INPUT}[{i}]" if len(requests) == 1 else f"request {r}, {INPUT}[{i}]"
                    LOG.warning("bad request: %s: %s", where, exc)
                    raise BadImage(f"{where}: {exc}") from None
            counts.append(len(data))
        masks = self.segmenter.predict(images, batch=self.max_batch) if images else []
        encoded = [encode_image(mask) for mask in masks]
        responses, start = [], 0
        for count in counts:
            responses.append({OUTPUT: np.array(encoded[start:start + count], dtype=np.object_).reshape(count, 1)})
            start += count
        return responses


def port_in_use(host: str, port: int) -> bool:
    """Whether ``host:port`` cannot be bound now (another server holds it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports on ``host`` that were free a moment ago (for tests and benchmarks)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def check_options(options: ServeOptions) -> None:
    """InputError naming the flag for a value the server cannot start with (checked before loading anything)."""
    for param, value, low in (("max_batch", options.max_batch, 1), ("instances", options.instances, 1),
                              ("max_pixels", options.max_pixels, 4), ("queue_delay_us", options.queue_delay_us, 0)):
        if value < low:
            raise InputError(f"need at least {low}, got {value}", param=param)
    ports = {"http_port": options.http_port, "grpc_port": options.grpc_port, "metrics_port": options.metrics_port}
    for param, port in ports.items():
        if not 1 <= port <= 65535:
            raise InputError(f"{port} is not a TCP port (1-65535)", param=param)
        if list(ports.values()).count(port) > 1:
            raise InputError(f"{port} is given to more than one of --http-port, --grpc-port, --metrics-port",
                             param=param)
        if port_in_use(options.host, port):
            raise InputError(f"{options.host}:{port} is in use (another server is listening there)", param=param)
    if not options.name or not all(c.isalnum() or c in "._-" for c in options.name):
        raise InputError(f"{options.name!r}: a model name is letters, digits, '.', '_' and '-'", param="name")


def _quiet_pytriton() -> None:
    """nlseg prints its own one-line status; pytriton's INFO logs go, its warnings and errors stay."""
    for name in ("pytriton", "pytriton.triton", "pytriton.server", "pytriton.models", "pytriton.proxy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # a bad request is logged as one line (LOG), not as the traceback pytriton logs for every failed batch
    logging.getLogger("pytriton.proxy.inference").setLevel(logging.ERROR)


def serve(options: ServeOptions, on_ready: Callable[[dict[str, str]], None],
          stop: threading.Event | None = None) -> None:
    """Run the server until SIGINT or SIGTERM (or ``stop`` is set); requests in flight are answered first.

    ``on_ready(urls)`` is called once the model is loaded and ready on both endpoints.
    """
    check_options(options)
    try:
        import pytriton.server.triton_server as triton_server
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
        from pytriton.triton import Triton, TritonConfig
    except ImportError as exc:
        raise InputError(f"nlseg serve needs nvidia-pytriton (pip install 'nlseg[serve]'): {exc}") from None
    from nlseg.api import load

    segmenters = [load(options.weights, backend=options.backend, device=options.device)
                  for _ in range(options.instances)]
    first = segmenters[0]
    parameters = config_parameters(first.info, first.backend.name, first.backend.precision, options.max_pixels)
    _quiet_pytriton()
    os.environ["LD_LIBRARY_PATH"] = library_path()  # read by the tritonserver process pytriton starts
    with tempfile.TemporaryDirectory(prefix="nlseg-serve-") as work:
        workdir = Path(work)
        try:
            prefix = stub_prefix(options.stub_site, workdir)
        except StubEnvError as exc:
            raise InputError(str(exc), param="stub_site") from None
        triton_server.get_triton_python_backend_python_env = lambda: prefix  # the stub's Python (stub_env)
        config = TritonConfig(http_address=options.host, http_port=options.http_port, grpc_address=options.host,
                              grpc_port=options.grpc_port, metrics_address=options.host,
                              metrics_port=options.metrics_port, exit_timeout_secs=10, allow_gpu_metrics=False,
                              log_file=workdir / "tritonserver.log", log_verbose=0)
        batcher = DynamicBatcher(max_queue_delay_microseconds=options.queue_delay_us)
        triton = Triton(config=config, workspace=workdir / "pytriton")
        guard = watchdog.start(workdir)  # stops tritonserver and its stub if this process is killed outright
        try:
            triton.bind(options.name, [ServedModel(s, options.max_batch, options.max_pixels) for s in segmenters],
                        inputs=[Tensor(name=INPUT, dtype=np.bytes_, shape=(1,))],
                        outputs=[Tensor(name=OUTPUT, dtype=np.bytes_, shape=(1,))],
                        config=ModelConfig(max_batch_size=options.max_batch, batcher=batcher),
                        strict=False)
            model = next(iter(triton._model_manager.models))  # pytriton 0.7.0 has no API for config parameters
            model._get_triton_model_config().backend_parameters.update(parameters)
            _run(triton, options, on_ready, stop, workdir / "tritonserver.log")
        finally:
            triton.stop()
            guard.terminate()
            guard.wait()
            for segmenter in segmenters:
                segmenter.close()


def _run(triton: Any, options: ServeOptions, on_ready: Callable[[dict[str, str]], None],
         stop: threading.Event | None, log: Path) -> None:
    """Start the server, report ready, wait for a signal or ``stop``."""
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        try:
            triton.run()
        except Exception as exc:  # the server did not come up: its own last error line says why
            raise RuntimeError(f"Triton Inference Server did not start: {_last_error(log) or exc}") from None
        on_ready(options.urls())
        while not stop.wait(0.5):
            if not triton.is_alive():
                raise RuntimeError(f"Triton Inference Server stopped: {_last_error(log) or 'no reason logged'}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _last_error(log: Path) -> str | None:
    """The last error line of the server's log, without its timestamp prefix."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("E")]
    except OSError:
        return None
    return lines[-1].split("] ", 1)[-1].strip() if lines else None
