"""``nlseg benchmark`` on a tiny model: every row of the JSON line, mIoU against an independent count, bad flags."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import nlseg
from nlseg.api.benchmark import STATUSES
from nlseg.checkpoint import save_checkpoint
from nlseg.nn import ModelConfig, build_model

ROOT = Path(__file__).resolve().parents[1]
SIZE = (32, 48)
KEYS = {"format", "precision", "status", "size_mb", "miou", "p50_ms", "p99_ms", "fps", "note"}
FORMATS = "torch,onnx,onnx-int8,openvino,openvino-int8,engine-fp16"


def nlseg_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nlseg", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny checkpoint, an image+mask folder (val: 4 scored frames, train: calibration) and a 12-frame clip."""
    root = tmp_path_factory.mktemp("bench")
    config = ModelConfig.from_preset("bdd100k", blocks=(1, 1, 1), channels=(8, 8, 8), image_size=SIZE)
    torch.manual_seed(0)
    weights = root / "tiny.pt"
    save_checkpoint(weights, build_model(config), config, meta={"normalization": {"mean": [0.4] * 3, "std": [0.25] * 3}})
    rng = np.random.default_rng(0)
    data = root / "data"
    for split, count in (("val", 4), ("train", 3)):
        (data / "images" / split).mkdir(parents=True)
        (data / "masks" / split).mkdir(parents=True)
        for i in range(count):
            image = cv2.GaussianBlur(rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8), (7, 7), 0)
            mask = np.kron(rng.integers(0, 19, (SIZE[0] // 8, SIZE[1] // 8)), np.ones((8, 8), np.int64)).astype(np.uint8)
            mask[:2] = 255  # ignored
            cv2.imwrite(str(data / "images" / split / f"f{i}.png"), image)
            cv2.imwrite(str(data / "masks" / split / f"f{i}.png"), mask)
    clip = root / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(12):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    return weights, data, clip, root


def independent_miou(weights: Path, data: Path) -> float:
    """mIoU of the torch model on the val folder counted here with NumPy (images are already at SIZE)."""
    seg = nlseg.load(weights, device="cpu")
    conf = np.zeros((19, 19), np.int64)
    for image_path in sorted((data / "images" / "val").glob("*.png")):
        labels = seg.predict(str(image_path)).astype(np.int64)
        mask = cv2.imread(str(data / "masks" / "val" / image_path.name), cv2.IMREAD_UNCHANGED).astype(np.int64)
        keep = mask != 255
        np.add.at(conf, (mask[keep], labels[keep]), 1)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    return float(np.mean(tp[union > 0] / union[union > 0]))


def test_benchmark_json_rows(setup, tmp_path):
    weights, data, clip, _ = setup
    out = tmp_path / "run"
    result = nlseg_cli("benchmark", weights, "--data", f"folder:{data}", "--imgsz", f"{SIZE[0]}x{SIZE[1]}",
                       "--formats", FORMATS, "--device", "cpu", "--out", out, "--limit", "4", "--iters", "3",
                       "--warmup", "0", "--clip", clip, "--calib-frames", "3", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout.strip().splitlines()[-1])["rows"]
    assert [r["format"] for r in rows] == FORMATS.split(",")
    by_name = {r["format"]: r for r in rows}
    for row in rows:
        assert KEYS <= set(row) and row["status"] in STATUSES
        if row["status"] in ("passed", "validation failed"):
            assert row["size_mb"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"] and row["fps"] > 0
            assert 0.0 <= row["miou"] <= 1.0 and 0.0 <= row["agreement"] <= 1.0
        else:
            assert row["note"] and row["p50_ms"] is None
    torch_row = by_name["torch"]
    assert torch_row["status"] == "passed" and torch_row["agreement"] == 1.0 and torch_row["miou_drop"] == 0.0
    assert torch_row["miou"] == pytest.approx(independent_miou(weights, data), abs=1e-4)
    assert by_name["onnx"]["status"] == "passed" and by_name["onnx"]["agreement"] >= 0.999
    assert by_name["onnx-int8"]["precision"] == "int8"  # (a tiny model grows: its QDQ nodes outweigh the weights)
    if importlib.util.find_spec("openvino"):
        assert by_name["openvino"]["status"] == "passed" and by_name["openvino-int8"]["precision"] == "int8"
    else:
        assert by_name["openvino"]["status"] == "skipped" and "not installed" in by_name["openvino"]["note"]
    if not torch.cuda.is_available():
        assert by_name["engine-fp16"]["status"] == "skipped" and "GPU" in by_name["engine-fp16"]["note"]
    assert (out / "model.onnx").is_file() and (out / "model-int8.onnx").is_file()
    assert (out / "infer" / "onnx" / "1" / "summary.json").is_file()
    markdown = (out / "benchmark.md").read_text()
    assert "| format | precision | status |" in markdown and "engine-fp16" in markdown
    assert json.loads((out / "benchmark.json").read_text())["rows"] == rows


@pytest.mark.parametrize("args,flag", [(["--formats", "onnx,tpu"], "--formats"), (["--data", "camvid"], "--data"),
                                       (["--data", "folder:/no/such/dir"], "--data"), (["--limit", "0"], "--limit")])
def test_bad_flags_are_one_line(setup, tmp_path, args, flag):
    weights, _, clip, _ = setup
    result = nlseg_cli("benchmark", weights, "--out", tmp_path / "r", "--clip", clip, *args)
    assert result.returncode == 2 and result.stderr.strip().startswith(f"error: {flag}:"), result.stderr
    assert "Traceback" not in result.stderr
