"""The bundled default weights and sample clip: present, small, loadable, documented, used by default.

The last test scores the weights on the six hand-labelled dashcam photos (``../shared/fixtures/dashcam``)
and checks the number ``assets/README.md`` records; it skips without them. (The weights train on all of
CamVid's train and val, so no CamVid frame we have is held out from them.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch

from nlseg.assets import ASSETS_DIR, DEFAULT_WEIGHTS, SAMPLE_CLIP
from nlseg.checkpoint import load_model
from nlseg.data.labels import BDD100K_CLASSES

MAX_WEIGHTS_BYTES = 5 * 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]
DASHCAM_PHOTOS = ROOT.parent / "shared" / "fixtures" / "dashcam"
# Pixel accuracy on the six dashcam photos (benchmarks/accuracy.py --dashcam), as assets/README.md records it.
RECORDED_DASHCAM_PIXEL_ACCURACY = 0.9028


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


def test_the_readmes_stage_1_command_builds_the_shipped_architecture():
    text = (ASSETS_DIR / "README.md").read_text()
    command = re.search(r"# stage 1[^\n]*\n(nlseg train camvid .*?)\n# stage 2", text, re.S).group(1)
    flags = dict(re.findall(r"(--[a-z-]+) ([^\s\\]+)", command))
    _, config, _ = load_model(DEFAULT_WEIGHTS)
    assert flags["--layout"] == config.layout
    assert flags["--channels"] == "-".join(map(str, config.channels))
    assert flags["--blocks"] == "-".join(map(str, config.blocks))
    assert float(flags["--h"]) == config.h  # the step size is not the thesis's default (0.06) here
    assert flags["--infer-size"] == "x".join(map(str, config.image_size))


def test_assets_readme_gives_provenance_and_licence_of_the_data():
    text = (ASSETS_DIR / "README.md").read_text()
    assert DEFAULT_WEIGHTS.name in text and "CC BY-NC 4.0" in text and "non-commercial research use" in text
    assert "ECCV 2008" in text and "Pattern Recognition Letters" in text  # CamVid's two papers
    assert "Brostow" in text and "nlseg train camvid" in text
    stage1 = re.search(r"--out (runs/camvid/\S+-stage1)", text)
    assert stage1 and f"--init {stage1.group(1)}/last.pt" in text  # stage 2 starts from stage 1's weights
    assert f"**{100 * RECORDED_DASHCAM_PIXEL_ACCURACY:.1f}% pixel accuracy**" in text
    assert "held out" in text and "--holdout 0006R0" in text  # the recipe's number on a drive it never saw


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


@pytest.mark.skipif(not DASHCAM_PHOTOS.is_dir(), reason="the dashcam photos (../shared/fixtures/dashcam) are not here")
def test_default_weights_score_on_the_dashcam_photos_as_recorded():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "accuracy.py"), str(DEFAULT_WEIGHTS),
                             "--dashcam", str(DASHCAM_PHOTOS), "--json"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    scores = json.loads([line for line in result.stdout.splitlines() if line.startswith("json: ")][-1][len("json: "):])
    assert scores["photos"] == 6
    assert {"road", "sky", "terrain", "car"} <= set(scores["iou"])
    assert scores["pixel_accuracy"] == pytest.approx(RECORDED_DASHCAM_PIXEL_ACCURACY, abs=2e-3)
