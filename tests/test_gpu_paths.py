"""The logic of the GPU-only paths that runs without a GPU: ONNX Runtime's providers, the INT8 calibrator's
batch size, the TensorRT backend's contexts per captured shape (with a stand-in context), the timing loop.

What only a GPU shows (captures, CUDA-event times, ONNX Runtime's user stream, calibration itself)
runs in benchmarks/gpu_check.py and tests/test_tensorrt_engine.py.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nlseg.errors import InputError
from nlseg.runtime import ort_backend, trt_backend
from nlseg.runtime.timing import time_calls

ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_onnxruntime_uses_the_cuda_provider_on_the_chosen_gpu(monkeypatch):
    monkeypatch.setattr(ort_backend.ort, "get_available_providers", lambda: ALL)
    assert ort_backend.providers_for(torch.device("cpu")) == ["CPUExecutionProvider"]
    assert ort_backend.providers_for(torch.device("cuda", 1)) == [("CUDAExecutionProvider", {"device_id": 1}),
                                                                  "CPUExecutionProvider"]
    assert ort_backend.providers_for(torch.device("cuda", 0), stream=1234) == [
        ("CUDAExecutionProvider", {"device_id": 0, "user_compute_stream": "1234"}), "CPUExecutionProvider"]


def test_the_tensorrt_provider_only_when_asked_for(monkeypatch):
    monkeypatch.setattr(ort_backend.ort, "get_available_providers", lambda: ALL)
    chosen = ort_backend.providers_for(torch.device("cuda", 0), True)
    assert [p[0] if isinstance(p, tuple) else p for p in chosen] == ALL
    monkeypatch.setattr(ort_backend.ort, "get_available_providers", lambda: ALL[1:])
    with pytest.raises(InputError, match="^tensorrt_provider: this onnxruntime has no TensorRT execution provider"):
        ort_backend.providers_for(torch.device("cuda", 0), True)
    monkeypatch.setattr(ort_backend.ort, "get_available_providers", lambda: ALL[2:])
    assert ort_backend.providers_for(torch.device("cuda", 0)) == ["CPUExecutionProvider"]


def test_the_int8_calibrator_reports_batch_size_1_for_explicit_batch_networks(tmp_path):
    """TensorRT 10: each calibration batch is a whole input of the calibration profile's shape."""
    from nlseg.tensorrt.calibration import make_calibrator

    class Base:  # trt.IInt8EntropyCalibrator2, whose constructor the calibrator must call
        def __init__(self) -> None:
            self.base_initialised = True

    cache = tmp_path / "m.calib.cache"
    calibrator = make_calibrator(SimpleNamespace(IInt8EntropyCalibrator2=Base), iter([]), (4, 3, 90, 160), "image",
                                 cache)
    assert calibrator.base_initialised and calibrator.get_batch_size() == 1
    with pytest.raises(RuntimeError, match="calibration feeds 'image', TensorRT asked for \\['x'\\]"):
        calibrator.get_batch(["x"])
    assert calibrator.get_batch(["image"]) is None, "no more batches"
    assert calibrator.read_calibration_cache() is None
    calibrator.write_calibration_cache(b"scales")
    assert calibrator.read_calibration_cache() == b"scales"
    one_image = iter([np.zeros((1, 3, 90, 160), np.float32)])
    wrong = make_calibrator(SimpleNamespace(IInt8EntropyCalibrator2=Base), one_image, (4, 3, 90, 160), "image", None)
    with pytest.raises(RuntimeError, match="calibration batch of shape \\(1, 3, 90, 160\\), the calibration profile"):
        wrong.get_batch(["image"])


class FakeContext:
    """An IExecutionContext that records the calls that bind it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        self.calls.append(("shape", tuple(shape)))
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        return (self.shape[0], 19, *self.shape[2:])

    def set_tensor_address(self, name: str, address: int) -> None:
        self.calls.append(("address", name))


def fake_backend(cuda_graph: bool, monkeypatch) -> trt_backend.TensorRTBackend:
    monkeypatch.setattr(trt_backend.torch.cuda, "device", lambda device: contextlib.nullcontext())
    backend = trt_backend.TensorRTBackend.__new__(trt_backend.TensorRTBackend)
    created: list[FakeContext] = []

    def create() -> FakeContext:
        created.append(FakeContext())
        return created[-1]

    backend._engine = SimpleNamespace(create_execution_context=create, created=created)
    backend._context = FakeContext()
    backend._device = torch.device("cpu")
    backend._use_graph = cuda_graph
    backend._bound, backend._context_shape = {}, None
    backend._input = SimpleNamespace(name="image", dtype="float32")
    backend.meta = SimpleNamespace(outputs=[SimpleNamespace(name="logits", dtype="float32")])
    backend.weights = Path("m.engine")
    return backend


A, B = (1, 3, 90, 160), (2, 3, 90, 160)


def test_eager_engines_share_one_context_rebound_only_when_the_shape_changes(monkeypatch):
    backend = fake_backend(False, monkeypatch)
    for shape in (A, A, B, B, A, A):
        bound = backend._bind(shape)
        assert bound.context is backend._context and bound.buffers["logits"].shape == (shape[0], 19, 90, 160)
    shapes = [c[1] for c in backend._context.calls if c[0] == "shape"]
    assert shapes == [A, B, A] and backend._engine.created == []
    assert backend._bind(A).buffers["image"] is backend._bound[A].buffers["image"], "buffers are kept per shape"


def test_each_captured_shape_gets_its_own_context_bound_once(monkeypatch):
    backend = fake_backend(True, monkeypatch)
    for shape in (A, B, A, B, A):
        backend._bind(shape)
    first, (second,) = backend._context, backend._engine.created
    assert backend._bound[A].context is first and backend._bound[B].context is second
    assert [c for c in first.calls if c[0] == "shape"] == [("shape", A)]
    assert [c for c in second.calls if c[0] == "shape"] == [("shape", B)]
    assert len(first.calls) == len(second.calls) == 3, "one shape and two addresses each, never rebound"


def test_the_timing_loop_times_each_call_after_the_warmup():
    calls = []
    times = time_calls(lambda: calls.append(len(calls)), warmup=3, iters=5)
    assert len(calls) == 8 and len(times) == 5 and all(t >= 0 for t in times)
