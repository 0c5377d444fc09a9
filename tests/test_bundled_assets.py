"""The bundled default weights and sample clip: present, small, loadable, documented, used by default.

The last test scores the weights on the real CamVid validation split (``../shared/data/camvid``)
and checks the number ``assets/README.md`` records; it skips without that copy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch

from nlseg.assets import ASSETS_DIR, DEFAULT_WEIGHTS, SAMPLE_CLIP
from nlseg.checkpoint import load_model
from nlseg.data.labels import BDD100K_CLASSES, CAMVID_CLASSES

MAX_WEIGHTS_BYTES = 5 * 1024 * 1024
REAL_CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
# CamVid val (101 frames the weights never trained on), as assets/README.md records it.
RECORDED_VAL_MIOU = 0.5066


def test_default_weights_are_small_safe_to_load_and_a_realtime_camvid_segmenter():
    assert DEFAULT_WEIGHTS.is_file(), f"{DEFAULT_WEIGHTS} is missing"
    assert DEFAULT_WEIGHTS.stat().st_size <= MAX_WEIGHTS_BYTES
    payload = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    assert "optimizer" not in payload, "ship a stripped checkpoint, not a resumable last.pt"
    model, config, _ = load_model(DEFAULT_WEIGHTS)
    assert config.task == "segment" and config.layout == "realtime" and config.num_classes == 19
    assert config.nonlocal_kernel is not None, "the default must stay a Nonlocal Hamiltonian network"
    assert sum(p.numel() for p in model.parameters()) < 500_000
    assert tuple(config.image_size) == (270, 480)  # a 960x540 frame halved: CamVid's pixel scale
    meta = payload["meta"]
    assert meta["dataset"] == "camvid" and meta["class_names"] == list(BDD100K_CLASSES)
    assert meta["data_dir"] is None, "no machine path ships in the weights"
    with torch.no_grad():
        logits = model.eval()(torch.rand(1, 3, 90, 160))
    assert logits.shape == (1, 19, 90, 160) and torch.isfinite(logits).all()


def test_assets_readme_gives_provenance_and_licence_of_the_data():
    text = (ASSETS_DIR / "README.md").read_text()
    assert DEFAULT_WEIGHTS.name in text and "CC BY-NC 4.0" in text and "non-commercial research use" in text
    assert "ECCV 2008" in text and "Pattern Recognition Letters" in text  # CamVid's two papers
    assert "Brostow" in text and "nlseg train camvid" in text and "--init runs/camvid/default/last.pt" in text
    assert f"**mIoU {100 * RECORDED_VAL_MIOU:.1f}%**" in text


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
    assert Path(summary["weights"]).resolve() == DEFAULT_WEIGHTS.resolve()
    written = cv2.VideoCapture(str(out / SAMPLE_CLIP.with_suffix(".mp4").name))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == summary["frames"] == -(-frames // 8)
    assert (int(written.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(written.get(cv2.CAP_PROP_FRAME_WIDTH))) == size
    written.release()


@pytest.mark.skipif(not REAL_CAMVID.is_dir(), reason="the CamVid copy (../shared/data/camvid) is not on this machine")
def test_default_weights_score_on_camvid_val_as_recorded():
    result = subprocess.run([sys.executable, "-m", "nlseg", "eval", str(DEFAULT_WEIGHTS), "--dataset", "camvid",
                             "--data-dir", str(REAL_CAMVID), "--split", "val", "--json", "--workers", "2"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["images"] == 101 and list(scores["per_class_iou"]) == list(CAMVID_CLASSES)
    assert scores["miou"] == pytest.approx(RECORDED_VAL_MIOU, abs=2e-3)
