"""The OpenVINO backend: an nlseg ``.onnx`` export or OpenVINO IR on the CPU, at an explicit precision.

OpenVINO's CPU plugin picks its compute precision itself unless told (bf16 on CPUs with
AVX512-BF16 or AMX), so this backend always sets ``INFERENCE_PRECISION_HINT``: ``fp32`` (the
default: the torch model's numbers) or ``bf16``; an INT8 model (NNCF, or an ONNX Runtime QDQ
export) runs its integer kernels with everything else in fp32 and reports ``int8``. The arg-max
over classes runs in the graph (a TopK node added when the model has no ``labels`` output), and
every call runs a model compiled for its input shape that computes only the output it returns.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlseg.errors import InputError
from nlseg.openvino.ir import import_openvino, read_model
from nlseg.runtime.backend import Backend

HINTS = {"fp32": "f32", "bf16": "bf16"}
RUNS_AT = (*HINTS, "int8")  # the precisions this backend runs (INT8 only for INT8 models)
MAX_COMPILED = 8  # compiled (output, input shape) models kept per backend


def compile_config(hint: str) -> dict[str, Any]:
    """OpenVINO CPU properties for a model computed at ``hint`` (``f32`` or ``bf16``).

    LATENCY: one stream, every core on one request (nlseg segments a batch at a time); no pinning, so
    the pipeline's decode and encode threads share the cores as with the other backends.
    """
    return {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}


def with_labels(ov: Any, model: Any) -> Any:
    """``model`` with a second output ``labels``: the uint8 arg-max of ``logits`` over the class axis."""
    from openvino import opset13 as ops

    logits = model.output("logits").get_node().input_value(0)  # what the Result node holds
    top = ops.topk(logits, ops.constant(np.int64(1)), axis=1, mode="max", sort="none", index_element_type="i32")
    labels = ops.convert(ops.squeeze(top.output(1), ops.constant(np.int64(1))), "u8")
    labels.output(0).get_tensor().set_names({"labels"})
    return ov.Model([logits, labels.output(0)], model.get_parameters(), model.get_friendly_name())


class OpenVinoBackend(Backend):
    """An nlseg model compiled by OpenVINO for the CPU."""

    name = "openvino"

    def __init__(self, path: Path, precision: str | None = None) -> None:
        ov = import_openvino("the openvino backend")
        self.core = ov.Core()
        model, metadata = read_model(self.core, path)
        if metadata.config.task != "segment":
            raise InputError(f"{path}: the model is a {metadata.config.task} network; nlseg infer needs a segmenter")
        if metadata.precision != "float32":
            raise InputError(f"{path}: a {metadata.precision} export; OpenVINO takes float32 models and computes in the "
                             "precision chosen when loading (fp32, or bf16 with --half): export without --half")
        built = "int8" if metadata.quantization is not None else None
        if precision is not None and precision not in RUNS_AT:
            raise InputError(f"OpenVINO runs fp32, bf16 or (INT8 models) int8, not {precision}", param="precision")
        if built is not None and precision not in (None, built):
            raise InputError(f"{path} is an INT8 model ({metadata.quantization['method']}); it runs at int8, "
                             f"not {precision}", param="precision")
        if built is None and precision == "int8":
            raise InputError(f"{path} is not quantized; make an INT8 model with nlseg export --int8",
                             param="precision")
        self.precision = built or precision or "fp32"
        hint = HINTS.get(self.precision, "f32")
        capabilities = self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if hint == "bf16" and "BF16" not in capabilities:
            raise InputError(f"this CPU has no bf16 support in OpenVINO (it offers {', '.join(capabilities)}); "
                             "run fp32", param="precision")
        if "labels" not in metadata.outputs:
            model = with_labels(ov, model)
        # one model per output: a request computes every output of its model, and predict needs no logits
        self._models = {name: ov.Model([model.output(name)], model.get_parameters(), model.get_friendly_name())
                        for name in ("labels", "logits")}
        self._hint = hint
        self._compiled: OrderedDict[tuple[str, tuple[int, ...]], tuple[Any, Any]] = OrderedDict()
        self.weights = path
        self.device = "cpu"
        self.info = metadata.info()
        self._batch_dynamic = "batch" in metadata.dynamic_axes
        self._version = ov.get_version()
        self._request("labels", (1, metadata.config.in_channels, *self.info.input_size))  # errors surface at load

    def _request(self, output: str, shape: tuple[int, ...]) -> Any:
        """The infer request of the model that computes only ``output`` (``labels`` or ``logits``), compiled
        for exactly ``shape`` on first use; the last ``MAX_COMPILED`` are kept. OpenVINO's CPU plugin runs
        1.2–1.6x faster on a static shape than on the export's dynamic axes, and the labels alone another
        1.3–1.5x faster than labels and logits together (benchmarks/RESULTS.md)."""
        model = self._models[output]
        dynamic = model.inputs[0].get_partial_shape().is_dynamic
        key = output, shape if dynamic else ()  # a fixed-size export compiles once, as it is
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key][1]
        if dynamic:
            model = model.clone()
            model.reshape({0: list(shape)})
        compiled = self.core.compile_model(model, "CPU", compile_config(self._hint))
        compiled_hint = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if compiled_hint != self._hint:
            raise RuntimeError(f"OpenVINO compiled {self.weights} at {compiled_hint}, not the {self._hint} asked for")
        self._compiled[key] = compiled, compiled.create_infer_request()
        if len(self._compiled) > MAX_COMPILED:
            self._compiled.popitem(last=False)
        return self._compiled[key][1]

    @property
    def compiled(self) -> dict[tuple[str, tuple[int, ...]], Any]:
        """The compiled models by (output, input shape) (shape ``()`` for a fixed-size export), the least
        recently used first."""
        return {key: compiled for key, (compiled, _) in self._compiled.items()}

    @classmethod
    def from_file(cls, path: Path, device: torch.device, precision: str | None = None) -> "OpenVinoBackend":
        """``path`` (.xml or .onnx) on the CPU; OpenVINO's GPU plugin is not used, whatever ``device`` says."""
        return cls(path, precision)

    def _run(self, batch: np.ndarray, output: str) -> np.ndarray:
        if not self._batch_dynamic and batch.shape[0] != 1:
            return np.concatenate([self._run(batch[i:i + 1], output) for i in range(batch.shape[0])])
        request = self._request(output, tuple(batch.shape))
        request.infer({0: np.ascontiguousarray(batch, np.float32)})
        return request.get_output_tensor(0).data.copy()  # the request's buffer is reused by the next call

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, "labels")

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, "logits").astype(np.float32, copy=False)

    def time_forward(self, shape: tuple[int, int, int, int], warmup: int, iters: int) -> list[float]:
        """Milliseconds of what :meth:`predict` runs: the forward pass and the arg-max in the graph."""
        if not self.info.dynamic and tuple(shape[2:]) != self.info.input_size:
            raise InputError(f"{self.weights} has a fixed input size "
                             f"{self.info.input_size[0]}x{self.info.input_size[1]}", param="shape")
        request = self._request("labels", tuple(shape))
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        for _ in range(warmup):
            request.infer({0: x})
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            request.infer({0: x})
            times.append((time.perf_counter() - t0) * 1e3)
        return times

    def device_name(self) -> str:
        cpu = self.core.get_property("CPU", "FULL_DEVICE_NAME")
        return f"{cpu} via OpenVINO {self._version.split('-')[0]} ({self.precision})"

    def close(self) -> None:
        self._compiled.clear()
