"""``nlseg synth-clip``: a deterministic synthetic driving clip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from nlseg.data.synthetic.clip import write_clip


def frames_of(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame)


def test_clip_length_size_and_determinism(tmp_path):
    a = write_clip(tmp_path / "a.mp4", scenes=2, seconds_per_scene=1.0, size=(36, 64), fps=10, seed=3)
    b = write_clip(tmp_path / "b.mp4", scenes=2, seconds_per_scene=1.0, size=(36, 64), fps=10, seed=3)
    fa, fb = frames_of(a), frames_of(b)
    assert len(fa) == 20 and fa[0].shape == (36, 64, 3)
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))
    assert np.abs(fa[0].astype(int) - fa[9].astype(int)).mean() > 1  # the zoom moves the picture
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4"]


def test_cli_errors_are_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nlseg", "synth-clip", str(tmp_path / "x.avi")],
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "x.avi" in result.stderr
