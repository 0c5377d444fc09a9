"""Engines built with TensorRT on a GPU: parity with ONNX Runtime, the plugin in the engine, the backend.

Needs TensorRT >= 10.9, a CUDA GPU and Triton; skipped otherwise (this project's CI has neither
TensorRT nor a GPU). Engines are built by the real entry point in a subprocess without
TRITON_INTERPRET (the plugin's kernel is compiled ahead of time while TensorRT builds), then
run here. Parity: max |TensorRT − ONNX Runtime| over the logits within 1e-3 (fp32) / 1e-2
(fp16) of the logits' largest magnitude, argmax agreement >= 99.5 %; ONNX Runtime runs the
float32 plugin graph (its PairwiseKernel node is nlseg's own pairwise update).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from nlseg.errors import InputError
from nlseg.onnx.ort_op import custom_op_available, open_session
from nlseg.tensorrt.engine_meta import metadata_path

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
pytestmark = [
    pytest.mark.skipif(not HAS_TENSORRT, reason="needs TensorRT >= 10.9; it cannot be installed here (docs/design.md §4)"),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="the plugin's kernel needs triton"),
    pytest.mark.skipif(not custom_op_available(), reason="the ONNX Runtime reference needs onnxruntime-extensions"),
]

TINY = ["--random-init", "--seed", "3", "--blocks", "1-1-1", "--channels", "8-8-8", "--nonlocal", "frac"]
PROFILE = ["--min-shape", "1x3x24x40", "--opt-shape", "2x3x45x80", "--max-shape", "2x3x90x160"]
SHAPE = (2, 3, 45, 80)
TOLERANCE = {"fp32": 1e-3, "fp16": 1e-2}


def nlseg(*args: object, timeout: int = 900):
    from tests.test_triton_compiled import run_uninterpreted

    return run_uninterpreted(["-m", "nlseg", *map(str, args)], timeout=timeout)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The float32 plugin ONNX, and fp32 / fp16 engines built from it and from the checkpoint flags."""
    root = tmp_path_factory.mktemp("engines")
    onnx_path = root / "tiny.onnx"
    result = nlseg("export", *TINY, "--plugin", "--out", onnx_path)
    assert result.returncode == 0, result.stderr
    engines = {}
    for precision, extra in (("fp32", []), ("fp16", ["--half"])):
        engine = root / f"tiny_{precision}.engine"
        result = nlseg("export", *TINY, "--trt", *extra, *PROFILE, "--out", engine, "--timing-cache",
                       root / "timing.cache", "--triton-repo", root / "repo")
        assert result.returncode == 0, result.stdout + result.stderr
        engines[precision] = engine
    return {"onnx": onnx_path, "root": root, **engines}


def reference(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    return open_session(onnx_path).run(["logits"], {"image": x})[0]


def backend(path: Path, cuda_graph: bool = False):
    from nlseg.runtime.trt_backend import TensorRTBackend

    return TensorRTBackend(path, torch.device("cuda"), cuda_graph)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_matches_onnx_runtime(built, precision):
    x = np.random.default_rng(7).standard_normal(SHAPE).astype(np.float32)
    expected = reference(built["onnx"], x)
    engine = backend(built[precision])
    got = engine.outputs(x)["logits"].astype(np.float32)
    scale = float(np.abs(expected).max())
    assert float(np.abs(got - expected).max()) <= TOLERANCE[precision] * scale
    assert float((got.argmax(1) == expected.argmax(1)).mean()) >= 0.995
    np.testing.assert_array_equal(engine.predict(x), got.argmax(1).astype(np.uint8))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_backend_logits_are_float32_and_give_its_labels(built, precision):
    """Backend.logits: the engine's logits as float32 (split into profile-sized batches), argmax = predict."""
    engine = backend(built[precision])
    x = np.random.default_rng(4).standard_normal((5, 3, 24, 40)).astype(np.float32)
    logits = engine.logits(x)
    assert logits.dtype == np.float32 and logits.shape == (5, 19, 24, 40)
    np.testing.assert_array_equal(engine.predict(x), logits.argmax(1).astype(np.uint8))
    expected = reference(built["onnx"], x[:2])
    assert float(np.abs(logits[:2] - expected).max()) <= TOLERANCE[precision] * float(np.abs(expected).max())


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_metadata_records_the_build(built, precision):
    data = json.loads(metadata_path(built[precision]).read_text())
    import tensorrt as trt

    assert data["tensorrt_version"] == trt.__version__
    assert data["gpu"]["compute_capability"] == list(torch.cuda.get_device_capability())
    assert data["precision"] == precision
    assert data["plugin"]["name"] == "PairwiseKernel" and data["plugin"]["namespace"] == "nlseg"
    assert data["plugin"]["count"] == 6 and data["plugin"]["kernels"] == ["frac"]
    assert len(data["plugin_layers"]) == 6, "every PairwiseKernel node is a plugin layer of the engine"
    assert data["profile"] == {"min": [1, 3, 24, 40], "opt": [2, 3, 45, 80], "max": [2, 3, 90, 160]}
    assert (built["root"] / "timing.cache").stat().st_size > 0
    assert (built[precision].with_suffix(".trt.onnx")).is_file()


def test_backend_cuda_graph_profile_and_shapes(built):
    eager, graphed = backend(built["fp32"]), backend(built["fp32"], cuda_graph=True)
    x = np.random.default_rng(1).standard_normal((1, 3, 24, 40)).astype(np.float32)
    np.testing.assert_array_equal(eager.predict(x), graphed.predict(x))
    np.testing.assert_array_equal(eager.predict(x), graphed.predict(x))  # replayed
    assert eager.info.input_size == (45, 80) and eager.info.dynamic
    times = graphed.time_forward((2, 3, 45, 80), warmup=2, iters=5)
    assert len(times) == 5 and all(t > 0 for t in times)
    with pytest.raises(InputError, match="accepts input shapes 1x3x24x40 .. 2x3x90x160"):
        eager.predict(np.zeros((1, 3, 180, 320), np.float32))
    batch = np.random.default_rng(2).standard_normal((5, 3, 24, 40)).astype(np.float32)
    assert eager.predict(batch).shape == (5, 24, 40)  # split into profile-sized batches


def test_wrong_gpu_in_metadata_is_refused(built, tmp_path):
    engine = tmp_path / "copy.engine"
    engine.write_bytes(built["fp32"].read_bytes())
    data = json.loads(metadata_path(built["fp32"]).read_text())
    data["gpu"]["compute_capability"] = [1, 0]
    metadata_path(engine).write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"compute capability 1\.0"):
        backend(engine)


def test_triton_repository_with_the_engine(built):
    from tests.test_triton_repo import parse_config

    repo = built["root"] / "repo"
    config = parse_config((repo / "tiny_fp16_trt" / "config.pbtxt").read_text())
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 2
    assert (repo / "tiny_fp16_trt" / "1" / "model.plan").read_bytes() == built["fp16"].read_bytes()
    assert (repo / "tiny_fp16_onnx" / "config.pbtxt").is_file()


def test_infer_and_profile_run_the_engine(built, tmp_path):
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8))
    result = nlseg("infer", frame, "--weights", built["fp16"], "--out", tmp_path / "out", "--cuda-graph")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["backend"] == "tensorrt" and summary["frames"] == 1 and summary["precision"] == "fp16"
    result = nlseg("profile", built["fp32"], "--backend", "all", "--shape", "1x3x45x80", "--iters", "5", "--json")
    assert result.returncode == 0, result.stderr
    names = [r["backend"] for r in json.loads(result.stdout.strip().splitlines()[-1])["backends"]]
    assert names == ["torch", "onnxruntime", "tensorrt"]


def test_int8_engine_from_calibration_images(built, tmp_path):
    import tensorrt as trt

    if int(trt.__version__.split(".")[0]) >= 11:
        result = nlseg("export", *TINY, "--trt", "--int8", "--calib-data", tmp_path, "--out", tmp_path / "q.engine")
        assert result.returncode == 2 and "removed INT8 calibration" in result.stderr
        return
    images = tmp_path / "calib"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 255, (90, 160, 3), dtype=np.uint8))
    engine = tmp_path / "q.engine"
    result = nlseg("export", *TINY, "--trt", "--int8", "--calib-data", images, *PROFILE, "--out", engine)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(metadata_path(engine).read_text())["precision"] == "int8"
    assert engine.with_suffix(".calib.cache").is_file()
    x = np.random.default_rng(7).standard_normal(SHAPE).astype(np.float32)
    got = backend(engine).outputs(x)["logits"]
    assert np.isfinite(got).all()
    assert float((got.argmax(1) == reference(built["onnx"], x).argmax(1)).mean()) >= 0.5
