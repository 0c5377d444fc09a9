"""A backend whose model runs on a Triton Inference Server: ``nlseg.load("grpc://HOST:8001/nlseg")``.

It speaks :mod:`nlseg.serve.contract` with the stock ``tritonclient``: frames go out as lossless PNGs
(so the server segments exactly the pixels a local backend would), masks come back at each frame's own
size. What the model is (classes, palette, input size) is read from the served model's config.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

import numpy as np

from nlseg.contract import ModelInfo
from nlseg.errors import InputError
from nlseg.runtime.backend import Backend, BackendLost
from nlseg.serve.contract import INPUT, OUTPUT, decode_mask, encode_image

SCHEMES = {"http": 8000, "https": 8000, "grpc": 8001}


def is_server_url(weights: object) -> bool:
    """Whether ``weights`` names a served model (http://, https:// or grpc://) rather than a file."""
    return isinstance(weights, str) and weights.split("://", 1)[0].lower() in SCHEMES and "://" in weights


def parse_url(url: str) -> tuple[str, str, str]:
    """'grpc://host:8001/nlseg' -> ('grpc', 'host:8001', 'nlseg'); InputError naming ``weights`` otherwise."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    name = parts.path.strip("/")
    if scheme not in SCHEMES or not parts.hostname or not name or "/" in name:
        raise InputError(f"{url}: expected grpc://HOST[:PORT]/MODEL or http://HOST[:PORT]/MODEL", param="weights")
    try:
        port = parts.port or SCHEMES[scheme]
    except ValueError:
        raise InputError(f"{url}: the port is not a number", param="weights") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return scheme, f"{host}:{port}", name


def server_message(exc: Exception) -> str:
    """The line of a Triton error that says what was wrong (the server sends the model's whole traceback)."""
    text = exc.message() if callable(getattr(exc, "message", None)) else str(exc)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("nlseg.serve.contract.BadImage:"):
            return line.split(":", 1)[1].strip()
    return lines[0] if lines else type(exc).__name__


class RemoteBackend(Backend):
    """The model on a Triton Inference Server; ``prepare`` encodes frames, ``predict`` sends them."""

    name = "triton"

    def __init__(self, url: str, timeout: float | None = None) -> None:
        if timeout is not None and timeout <= 0:
            raise InputError(f"need a positive number of seconds, got {timeout}", param="timeout")
        try:
            from tritonclient.utils import InferenceServerException

            if url.lower().startswith("grpc"):
                import tritonclient.grpc as client_module
            else:
                import tritonclient.http as client_module
        except ImportError as exc:
            raise InputError(f"{url}: a served model needs tritonclient (pip install 'nlseg[serve]'): {exc}") from None
        self.url, self.timeout = url, timeout
        self.scheme, address, self.model = parse_url(url)
        self._module = client_module
        self._errors = (InferenceServerException, OSError)
        if self.scheme == "grpc":
            self._client = client_module.InferenceServerClient(address)
        else:
            kwargs = {} if timeout is None else {"connection_timeout": timeout, "network_timeout": timeout}
            self._client = client_module.InferenceServerClient(address, ssl=self.scheme == "https", **kwargs)
        config = self._call(lambda: self._config(), "cannot read the model config", load_time=True)
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        if "nlseg-input-size" not in params:
            raise InputError(f"{url}: the model {self.model!r} is not an nlseg model (no nlseg-* config parameters)",
                             param="weights")
        height, width = (int(v) for v in params["nlseg-input-size"].split("x"))
        self.info = ModelInfo(input_size=(height, width), class_names=tuple(json.loads(params["nlseg-classes"])),
                              palette=tuple(tuple(c) for c in json.loads(params["nlseg-palette"])), dynamic=False,
                              precision=params.get("nlseg-precision", "float32"))
        self.precision = params.get("nlseg-precision", "fp32")
        self.device = f"{params.get('nlseg-backend', '?')} on {address}"
        self.weights = Path(url)
        self.max_batch = int(config.get("max_batch_size", 1)) or 1

    def _config(self) -> dict[str, Any]:
        if self.scheme == "grpc":
            kwargs = {} if self.timeout is None else {"client_timeout": self.timeout}
            return self._client.get_model_config(self.model, as_json=True, **kwargs)["config"]
        return self._client.get_model_config(self.model)

    def _call(self, fn: Any, what: str, load_time: bool = False) -> Any:
        """Run a client call; a failure is one line naming the URL (InputError at load, BackendLost later)."""
        try:
            return fn()
        except self._errors as exc:
            message = server_message(exc)
            status = exc.status() if callable(getattr(exc, "status", None)) else None
            if "BadImage" in str(exc) or (status in ("400", "StatusCode.INVALID_ARGUMENT") and not load_time):
                raise InputError(f"{self.url}: {message}", param="source") from None
            if load_time:
                raise InputError(f"{self.url}: {what}: {message}", param="weights") from None
            raise BackendLost(f"{self.url}: {what}: {message}") from None

    def prepare(self, frames: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        """BGR uint8 frames -> a (B, 1) BYTES array of PNGs (the server resizes them to ``size``, its own)."""
        return np.array([[encode_image(frame)] for frame in frames], dtype=np.object_)

    def predict(self, batch: np.ndarray) -> list[np.ndarray]:  # type: ignore[override]
        """(B, 1) encoded images -> B (H, W) uint8 masks, each at its image's own size."""
        masks: list[np.ndarray] = []
        for start in range(0, len(batch), self.max_batch):
            chunk = batch[start:start + self.max_batch]
            result = self._call(lambda: self._infer(chunk), "the server did not answer")
            masks += [decode_mask(bytes(m)) for m in result.reshape(-1)]
        return masks

    def _infer(self, chunk: np.ndarray) -> np.ndarray:
        tensor = self._module.InferInput(INPUT, list(chunk.shape), "BYTES")
        tensor.set_data_from_numpy(chunk)
        output = self._module.InferRequestedOutput(OUTPUT)
        kwargs = {} if self.timeout is None or self.scheme != "grpc" else {"client_timeout": self.timeout}
        return self._client.infer(self.model, [tensor], outputs=[output], **kwargs).as_numpy(OUTPUT)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        raise InputError(f"{self.url}: the server returns masks, not class scores; run predict_proba on a local "
                         "model (nlseg.load(WEIGHTS))", param="weights")

    def time_forward(self, shape: tuple[int, int, int, int], warmup: int, iters: int) -> list[float]:
        """Milliseconds per round trip of a batch of random ``shape`` images (encoding included)."""
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, (shape[2], shape[3], 3), np.uint8) for _ in range(shape[0])]
        batch = self.prepare(frames, (shape[2], shape[3]))
        times = []
        for i in range(warmup + iters):
            t0 = time.perf_counter()
            self.predict(batch)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
        return times

    def device_name(self) -> str:
        return f"Triton Inference Server at {self.url}"

    def close(self) -> None:
        self._client.close()
