"""``nlseg export --trt`` and engines in infer / profile where TensorRT is missing: one line, exit 2."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from nlseg.errors import InputError
from nlseg.runtime.load import open_backend
from tests.test_onnx_cli import cli

ROOT = Path(__file__).resolve().parents[1]
NO_TENSORRT = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                                 reason="TensorRT is installed: the missing-TensorRT path cannot be shown")


def assert_install_line(err: str, flag: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"error: {flag}: this needs TensorRT >= 10.9, which is not installed")
    assert "pip install --extra-index-url https://pypi.nvidia.com" in line and "nvcr.io/nvidia/tensorrt" in line


@NO_TENSORRT
@pytest.mark.parametrize("args,flag", [(["--trt"], "--trt"), (["--format", "engine", "--out", "m.plan"], "--format engine")])
def test_export_engine_without_tensorrt_is_one_line(tmp_path, args, flag):
    """The real entry point, as a user runs it: exit 2, one line, no traceback, nothing written."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "nlseg", "export", *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert_install_line(result.stderr, flag)
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert list(tmp_path.iterdir()) == []


@NO_TENSORRT
def test_engines_in_infer_and_profile_without_tensorrt_are_one_line(capsys, tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not read: TensorRT is missing first")
    code, _, err = cli(capsys, "profile", engine, "--iters", "1")
    assert code == 2
    assert_install_line(err, str(engine))
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.zeros((24, 32, 3), np.uint8))
    code, _, err = cli(capsys, "infer", frame, "--weights", engine, "--out", tmp_path / "out")
    assert code == 2
    assert_install_line(err, str(engine))
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"x")
    with pytest.raises(InputError, match="this needs TensorRT"):
        open_backend(plan, None, torch.device("cpu"))


def test_engine_flags_need_an_engine(capsys):
    code, _, err = cli(capsys, "export", "--workspace", "64")  # --int8 also makes INT8 ONNX and OpenVINO models
    assert code == 2 and err.strip() == "error: --workspace: applies to TensorRT engines only (format 'engine'; nlseg export --trt)"
    code, _, err = cli(capsys, "export", "--max-shape", "4x3x90x160")
    assert code == 2 and "--max-shape: applies to TensorRT engines" in err
    code, _, err = cli(capsys, "export", "--trt", "--format", "onnx")
    assert code == 2 and "--trt builds an engine; it contradicts --format onnx" in err


@NO_TENSORRT
def test_engine_output_name_is_checked_after_tensorrt(capsys):
    code, _, err = cli(capsys, "export", "--trt", "--out", "model.onnx")
    assert code == 2 and "this needs TensorRT" in err


def test_profile_tensorrt_backend_needs_an_engine(capsys, tmp_path):
    code, _, err = cli(capsys, "profile", "--backend", "tensorrt", "--random-init", "--blocks", "1-1-1",
                       "--channels", "8-8-8", "--iters", "1", "--device", "cpu")
    assert code == 2 and "--backend: TensorRT runs engines: build one (nlseg export --trt)" in err


@pytest.fixture
def captured_build(monkeypatch):
    """export_engine up to the TensorRT build: what build_engine would receive."""
    import nlseg.tensorrt.export as engine_export

    calls = []
    monkeypatch.setattr(engine_export, "build_engine", lambda *args: calls.append(args) or "built")
    return calls


def tiny_source():
    from nlseg.nn.config import ModelConfig
    from nlseg.onnx.source_model import random_init

    config = ModelConfig.from_preset("bdd100k", blocks=(1, 1, 1), channels=(8, 8, 8), nonlocal_kernel="log")
    return random_init(config, seed=0)


@pytest.mark.parametrize("version,half,onnx_half,flags", [
    ("10.13.0", False, False, ()),
    ("10.13.0", True, False, ("FP16", "OBEY_PRECISION_CONSTRAINTS")),
    ("11.0.0", True, True, ()),
])
def test_engine_export_chooses_the_graph_precision_per_tensorrt_version(captured_build, tmp_path, version, half,
                                                                         onnx_half, flags):
    from types import SimpleNamespace

    from nlseg.tensorrt.export import EngineRequest, export_engine

    request = EngineRequest(half=half, max_shape=(2, 3, 180, 320), workspace_mb=512)
    assert export_engine(SimpleNamespace(__version__=version), tmp_path / "m.engine", request,
                         source=tiny_source()) == "built"
    (_, model, metadata, out, plan, options, shapes), = captured_build
    assert metadata.graph == "plugin" and metadata.precision == ("float16" if onnx_half else "float32")
    assert sum(n.op_type == "PairwiseKernel" for n in model.graph.node) == 6
    assert plan.onnx_half == onnx_half and plan.builder_flags == flags and out == tmp_path / "m.engine"
    assert shapes.max == (2, 3, 180, 320) and shapes.opt == (1, 3, 90, 160)
    assert options is request, "the builder gets the caller's engine options, one type throughout"


def test_engine_from_an_onnx_export_keeps_its_graph(captured_build, capsys, tmp_path):
    from types import SimpleNamespace

    from nlseg.tensorrt.export import EngineRequest, export_engine

    onnx_path = tmp_path / "fp32.onnx"
    code, _, err = cli(capsys, "export", "--random-init", "--blocks", "1-1-1", "--channels", "8-8-8", "--nonlocal",
                       "invfrac", "--plugin", "--out", onnx_path)
    assert code == 0, err
    with pytest.raises(InputError, match="^half: TensorRT 11.0.0 is strongly typed"):
        export_engine(SimpleNamespace(__version__="11.0.0"), tmp_path / "m.engine", EngineRequest(half=True),
                      onnx_path=onnx_path)
    export_engine(SimpleNamespace(__version__="10.9.0"), tmp_path / "m.engine", EngineRequest(half=True),
                  onnx_path=onnx_path)
    (_, model, metadata, _, plan, _, _), = captured_build
    assert metadata.precision == "float32" and plan.precision == "fp16" and not plan.strongly_typed
    with pytest.raises(InputError, match="^workspace: need at least 1 MiB"):
        export_engine(SimpleNamespace(__version__="10.9.0"), tmp_path / "m.engine", EngineRequest(workspace_mb=0),
                      onnx_path=onnx_path)
