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


def engine(model: str, kernel: str, plugin_layers: int, built: bool = True) -> dict:
    return {"model": model, "kernel": kernel, "precision": "fp32", "built": built, "plugin_layers": plugin_layers}


GOOD = {"engines": {"frac_fp32": engine("frac", "frac", 6), "log_fp32": engine("log", "log", 6),
                    "bundled_fp32": engine("bundled", "dot", 0)},
        "parity": {"frac_fp32": {"passed": True}, "log_fp32": {"passed": True}, "bundled_fp32": {"passed": True}},
        "cuda_graph": {"passed": True}, "int8": {"passed": True, "argmax_agreement": 0.991}}
STEPS = [gpu_check.Step("a", 0), gpu_check.Step("b", None, skipped="time")]


def test_verdict_passes_a_report_where_every_check_passed():
    assert gpu_check.verdict(GOOD, STEPS)
    assert gpu_check.verdict({**GOOD, "int8": {"skipped": "TensorRT 11.4.0.106 removed INT8 calibration"}}, STEPS)
    no_trt = {"engines": {"skipped": "no TensorRT"}, "parity": {}, "cuda_graph": {"passed": True}, "int8": None}
    assert gpu_check.verdict(no_trt, STEPS)


def test_verdict_fails_without_plugin_layers():
    """The engines of the bundled weights alone (𝓛 lowered to standard layers) do not test the plugin."""
    only_bundled = {**GOOD, "engines": {"bundled_fp32": engine("bundled", "dot", 0)},
                    "parity": {"bundled_fp32": {"passed": True}}}
    assert not gpu_check.verdict(only_bundled, STEPS)
    lowered = {**GOOD, "engines": {**GOOD["engines"], "frac_fp32": engine("frac", "frac", 0)}}
    assert not gpu_check.verdict(lowered, STEPS), "a distance-kernel engine without its plugin layers"


@pytest.mark.parametrize("change", [
    {"parity": {**GOOD["parity"], "frac_fp32": {"passed": False}}},
    {"parity": {k: v for k, v in GOOD["parity"].items() if k != "log_fp32"}},  # an engine without a parity result
    {"parity": {"error": ["Traceback"]}},
    {"parity": {}},
    {"engines": {**GOOD["engines"], "log_fp32": engine("log", "log", 0, built=False)}},
    {"engines": {}},
    {"cuda_graph": {"passed": False}},
    {"cuda_graph": {"name": "fused_cuda_graph", "status": None, "skipped": "time", "error": []}},
    {"int8": {"passed": False, "argmax_agreement": 0.93}},
    {"int8": {"built": False, "error": ["calibration failed"]}},
], ids=["parity-failed", "parity-missing", "parity-error", "no-parity", "not-built", "no-engines", "graph-mismatch",
        "graph-not-run", "int8-disagrees", "int8-not-built"])
def test_verdict_fails_on_a_failed_or_missing_check(change):
    assert not gpu_check.verdict({**GOOD, **change}, STEPS)


def test_verdict_fails_when_a_step_failed():
    assert not gpu_check.verdict(GOOD, [*STEPS, gpu_check.Step("c", 1)])


def test_argmax_agreement_over_batches():
    import numpy as np

    a = np.zeros((1, 3, 2, 2), np.float32)
    a[0, 1] = 1.0  # class 1 everywhere
    b = a.copy()
    b[0, 2, 0, 0] = 5.0  # one pixel of four differs
    assert gpu_check.agreement([a, a], [a, b]) == pytest.approx(0.875)


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


def test_int8_frames_calibrate_and_compare_on_different_frames_of_the_sample_clip(tmp_path):
    calib, held_out = gpu_check.sample_frames(tmp_path)
    calib_names = {p.name for p in calib.iterdir()}
    held_names = {p.name for p in held_out.iterdir()}
    assert len(calib_names) >= 32 and len(held_names) >= 16 and not calib_names & held_names  # 120 frames: 40, 20
    from nlseg.contract import read_image

    assert read_image(next(held_out.iterdir())).shape == (360, 640, 3)
