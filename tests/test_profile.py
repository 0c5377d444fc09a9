"""``nlseg profile`` and the onnxruntime backend of ``nlseg infer``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from nlseg.checkpoint import save_checkpoint
from nlseg.nn import ModelConfig, build_model

ROOT = Path(__file__).resolve().parents[1]
STATS = {"p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "min_ms", "max_ms", "throughput"}


def nlseg(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nlseg", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    config = ModelConfig.from_preset("bdd100k", nonlocal_kernel="frac", blocks=(1, 1, 1), channels=(8, 8, 8),
                                     image_size=(30, 40))
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    save_checkpoint(path, build_model(config), config, meta={"normalization": {"mean": [0.4] * 3, "std": [0.2] * 3}})
    return path


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_profile_json(checkpoint, backend):
    result = nlseg("profile", checkpoint, "--backend", backend, "--shape", "2x3x30x40", "--warmup", "1",
                   "--iters", "4", "--json")
    assert result.returncode == 0, result.stderr
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert STATS <= set(last) and last["backend"] == backend and last["shape"] == [2, 3, 30, 40]
    assert last["min_ms"] <= last["p50_ms"] <= last["p90_ms"] <= last["p99_ms"] <= last["max_ms"]
    assert abs(last["throughput"] - 2e3 / last["mean_ms"]) < 1e-2 * last["throughput"]
    assert "p99" in result.stdout and "images/s" in result.stdout


def test_profile_random_init_and_all(checkpoint):
    result = nlseg("profile", "--random-init", "--layout", "realtime", "--shape", "1x3x64x96", "--iters", "2",
                   "--warmup", "0", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["weights"] == "<random-init>"
    result = nlseg("profile", checkpoint, "--backend", "all", "--iters", "2", "--warmup", "0", "--json")
    assert result.returncode == 0, result.stderr
    names = [r["backend"] for r in json.loads(result.stdout.strip().splitlines()[-1])["backends"]]
    assert names == ["torch", "onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])


@pytest.mark.parametrize("args,flag", [
    (["--backend", "tpu"], "--backend"),
    (["--shape", "1x4x30x40"], "--shape"),
    (["--iters", "0"], "--iters"),
    (["--cuda-graph", "--device", "cpu"], "--cuda-graph"),
])
def test_profile_errors(checkpoint, args, flag):
    result = nlseg("profile", checkpoint, *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and flag in lines[0], result.stderr


def test_infer_with_an_onnx_export_matches_torch(checkpoint, tmp_path):
    onnx_path = tmp_path / "tiny.onnx"
    result = nlseg("export", checkpoint, "--format", "onnx", "--out", onnx_path)
    assert result.returncode == 0, result.stderr
    image = tmp_path / "street.png"
    cv2.imwrite(str(image), np.random.default_rng(1).integers(0, 255, (61, 83, 3), dtype=np.uint8))
    masks = {}
    for weights in (checkpoint, onnx_path):
        out = tmp_path / weights.suffix[1:]
        result = nlseg("infer", image, "--weights", weights, "--out", out, "--save-masks")
        assert result.returncode == 0, result.stderr
        masks[weights.suffix] = cv2.imread(str(out / "masks" / "street.png"), cv2.IMREAD_UNCHANGED)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["backend"] == {".pt": "torch", ".onnx": "onnxruntime"}[weights.suffix]
    assert masks[".pt"].shape == (61, 83)
    assert (masks[".pt"] == masks[".onnx"]).mean() > 0.999


def test_per_pixel_mean_reaches_both_backends(tmp_path):
    """A thesis-recipe checkpoint subtracts a per-pixel mean (§4.4): torch and ONNX runtimes apply it alike."""
    import torch

    from nlseg.contract import preprocess
    from nlseg.runtime.ort_backend import OrtBackend
    from nlseg.runtime.torch_backend import TorchBackend

    config = ModelConfig.from_preset("bdd100k", nonlocal_kernel="dot", blocks=(1, 1, 1), channels=(8, 8, 8),
                                     image_size=(12, 20))
    mean_image = torch.rand(3, 12, 20)
    ckpt = tmp_path / "pp.pt"
    save_checkpoint(ckpt, build_model(config), config,
                    meta={"normalization": {"mean": mean_image.mean((1, 2)).tolist(), "std": [1.0] * 3, "per_pixel": True}},
                    input_mean=mean_image)
    backend = TorchBackend.from_checkpoint(ckpt, torch.device("cpu"))
    frame = np.full((24, 40, 3), 128, np.uint8)
    batch = preprocess([frame], (12, 20), backend.info)
    expected = 128 / 255 - mean_image.numpy()
    np.testing.assert_allclose(batch[0], expected, atol=1e-5)
    onnx_path = tmp_path / "pp.onnx"
    assert nlseg("export", ckpt, "--out", onnx_path).returncode == 0
    ort_info = OrtBackend(onnx_path, torch.device("cpu")).info
    np.testing.assert_allclose(preprocess([frame], (12, 20), ort_info), batch, atol=1e-5)
