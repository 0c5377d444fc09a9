"""``nlseg synth-clip``: a deterministic synthetic driving clip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from nlseg.data.synthetic.clip import clip_frames, write_clip


def frames_of(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def test_clip_frames_are_deterministic_and_the_file_shows_them(tmp_path):
    args = dict(scenes=2, seconds_per_scene=1.0, size=(36, 64), fps=10, seed=3)
    rendered = list(clip_frames(**args))
    assert all(np.array_equal(x, y) for x, y in zip(rendered, clip_frames(**args), strict=True))
    assert not np.array_equal(rendered[0], list(clip_frames(**{**args, "seed": 4}))[0])
    decoded = frames_of(write_clip(tmp_path / "a.mp4", **args))
    assert len(decoded) == len(rendered) == 20 and decoded[0].shape == (36, 64, 3)
    assert min(psnr(x, y) for x, y in zip(rendered, decoded)) > 24  # lossy H.264 (26.6 dB at 64x36) of these frames
    assert all(int(np.argmax([psnr(r, d) for r in rendered])) == i for i, d in enumerate(decoded))  # in order
    assert np.abs(decoded[0].astype(int) - decoded[9].astype(int)).mean() > 1  # the zoom moves the picture
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]


def test_cli_errors_are_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nlseg", "synth-clip", str(tmp_path / "x.avi")],
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "x.avi" in result.stderr
