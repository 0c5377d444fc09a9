"""benchmarks/gpu_check.py's logic that needs no GPU: arguments, the no-CUDA exit, JSON assembly, the verdict,
and the parity check through Polygraphy's Comparator (run here with two ONNX Runtime runners on the CPU).

The GPU steps themselves (engine builds, TensorRT parity, latencies, the fused table) run only on
a machine with CUDA: ``bash benchmarks/gpu_check.sh``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
_spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(_spec)
sys.modules["gpu_check"] = gpu_check  # dataclasses look their module up
_spec.loader.exec_module(gpu_check)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_without_cuda_it_says_so_in_one_line_and_exits_2(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "out")], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "gpu_check: no CUDA device" in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_arguments_are_one_line_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.parse_args(["--iters", "0"])
    assert exc.value.code == 2 and "--iters >= 1" in capsys.readouterr().err


def test_latency_rows_from_nlseg_profile_json():
    one = {"backend": "tensorrt", "precision": "fp16", "shape": [1, 3, 720, 1280], "p50_ms": 1.23456, "p99_ms": 2.5,
           "throughput": 810.123, "device_name": "H200"}
    assert gpu_check.latency_rows(one, "cuda_graph") == [
        {"backend": "tensorrt", "variant": "cuda_graph", "precision": "fp16", "shape": "1x3x720x1280", "p50_ms": 1.2346,
         "p99_ms": 2.5, "images_per_s": 810.12}]
    both = {"backends": [dict(one, backend="torch"), dict(one, backend="onnxruntime")]}
    assert [r["backend"] for r in gpu_check.latency_rows(both, "eager")] == ["torch", "onnxruntime"]
    assert gpu_check.last_json('table\n{"a": 1}\nnot json\n{"b": 2}\ntrailing') == {"b": 2}
    assert gpu_check.last_json("no json at all") is None


def test_steps_past_the_budget_are_skipped_not_run(tmp_path):
    runner = gpu_check.Runner(tmp_path, budget_s=5)
    step = runner.run("late", [sys.executable, "-c", "raise SystemExit(3)"], timeout=10)
    assert step.status is None and step.skipped.startswith("time:")
    runner = gpu_check.Runner(tmp_path, budget_s=60)
    step = runner.run("fails", [sys.executable, "-c", "print('x'); raise SystemExit(3)"], timeout=30)
    assert step.status == 3 and (tmp_path / "fails.log").read_text().endswith("x\n")


def test_verdict_needs_every_build_parity_and_step():
    steps = [gpu_check.Step("a", 0), gpu_check.Step("b", None, skipped="time")]
    good = {"engines": {"fp32": {"built": True}, "fp16": {"built": True}},
            "parity": {"fp32": {"passed": True}, "fp16": {"passed": True}}}
    assert gpu_check.verdict(good, steps)
    assert not gpu_check.verdict({**good, "engines": {"fp32": {"built": False}}}, steps)
    assert not gpu_check.verdict({**good, "parity": {"fp16": {"passed": False}}}, steps)
    assert not gpu_check.verdict({**good, "parity": {"error": ["Traceback"]}}, steps)
    assert not gpu_check.verdict(good, [*steps, gpu_check.Step("c", 1)])
    no_trt = {"engines": {"skipped": "no TensorRT"}, "parity": {}}
    assert gpu_check.verdict(no_trt, steps)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    from nlseg.nn.config import ModelConfig
    from nlseg.onnx.export import ExportOptions, export_onnx
    from nlseg.onnx.source_model import random_init

    root = tmp_path_factory.mktemp("parity")
    config = ModelConfig.from_preset("bdd100k", layout="realtime", blocks=(1, 1, 1), channels=(8, 8, 8),
                                     nonlocal_kernel="frac")
    paths = {}
    for name, graph, seed in (("plugin", "plugin", 1), ("portable", "portable", 1), ("other", "portable", 2)):
        paths[name] = root / f"{name}.onnx"
        export_onnx(random_init(config, seed=seed), paths[name], ExportOptions(graph=graph))
    return paths


def test_parity_through_polygraphys_comparator(graphs):
    """The GPU check's parity: here the plugin graph (nlseg's op in ONNX Runtime) against the portable graph."""
    pytest.importorskip("polygraphy", reason="the parity check uses Polygraphy (pip install -e '.[dev]')")
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    from nlseg.onnx.ort_op import custom_op_available, open_session

    if not custom_op_available():
        pytest.skip("the plugin graph runs in ONNX Runtime through onnxruntime-extensions")
    feeds = gpu_check.parity_feeds(2)
    reference = OnnxrtRunner(open_session(graphs["plugin"]), name="plugin")
    same = gpu_check.parity(reference, OnnxrtRunner(SessionFromOnnx(str(graphs["portable"])), name="portable"),
                            feeds, "fp32")
    assert same["passed"] and same["within_tolerance"] and same["argmax_agreement"] >= 0.995
    assert 0 < same["relative"] < 1e-3 and same["tolerance"] == 1e-3
    other = gpu_check.parity(reference, OnnxrtRunner(SessionFromOnnx(str(graphs["other"])), name="other weights"),
                             feeds, "fp16")
    assert not other["passed"] and not other["within_tolerance"] and other["relative"] > 1e-2
    json.dumps([same, other])
