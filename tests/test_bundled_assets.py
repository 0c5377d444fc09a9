"""The bundled demo weights and sample clip: present, small, loadable, and used by default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import torch

from nlseg.assets import DEMO_WEIGHTS, SAMPLE_CLIP
from nlseg.checkpoint import load_model
from nlseg.data.labels import BDD100K_CLASSES

MAX_DEMO_BYTES = 5 * 1024 * 1024


def test_demo_weights_are_small_safe_to_load_and_a_realtime_segmenter():
    assert DEMO_WEIGHTS.is_file(), f"{DEMO_WEIGHTS} is missing"
    assert DEMO_WEIGHTS.stat().st_size <= MAX_DEMO_BYTES
    payload = torch.load(DEMO_WEIGHTS, map_location="cpu", weights_only=True)
    assert "optimizer" not in payload, "ship the stripped best.pt, not a resumable last.pt"
    model, config, _ = load_model(DEMO_WEIGHTS)
    assert config.task == "segment" and config.layout == "realtime" and config.num_classes == 19
    assert config.nonlocal_kernel is not None, "the demo must stay a Nonlocal Hamiltonian network"
    assert payload["meta"]["class_names"] == list(BDD100K_CLASSES)
    with torch.no_grad():
        logits = model.eval()(torch.rand(1, 3, 90, 160))
    assert logits.shape == (1, 19, 90, 160) and torch.isfinite(logits).all()


def test_sample_clip_with_default_weights_end_to_end(tmp_path: Path):
    capture = cv2.VideoCapture(str(SAMPLE_CLIP))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)))
    capture.release()
    assert frames > 0
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "nlseg", "infer", str(SAMPLE_CLIP), "--out", str(out),
                             "--vid-stride", "8"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert Path(summary["weights"]).resolve() == DEMO_WEIGHTS.resolve()
    written = cv2.VideoCapture(str(out / SAMPLE_CLIP.with_suffix(".mp4").name))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == summary["frames"] == -(-frames // 8)
    assert (int(written.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(written.get(cv2.CAP_PROP_FRAME_WIDTH))) == size
    written.release()
