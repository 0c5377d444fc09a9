"""``nlseg infer`` end to end on videos and images the tests write, and on the dashcam fixtures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from nlseg.checkpoint import save_checkpoint
from nlseg.nn import ModelConfig, build_model

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
DASHCAM = FIXTURES / "dashcam"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A tiny random-init thesis segmenter with a Nonlocal Block per Unit."""
    config = ModelConfig.from_preset("bdd100k", nonlocal_kernel="dot", blocks=(1, 1, 1), channels=(8, 8, 8),
                                     image_size=(45, 80))
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_checkpoint(path, build_model(config), config)
    return path


def write_video(path: Path, frames: int, size: tuple[int, int], fps: float = 24.0) -> Path:
    """A moving disc on a gradient, ``size`` = (width, height)."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    ramp = np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))
    for i in range(frames):
        frame = cv2.merge((ramp, np.roll(ramp, i, axis=1), np.full_like(ramp, (5 * i) % 255)))
        cv2.circle(frame, ((7 * i) % width, height // 2), max(2, height // 6), (0, 0, 255), -1)
        writer.write(frame)
    writer.release()
    return path


def probe(path: Path) -> tuple[int, tuple[int, int], float]:
    """(decoded frame count, (width, height), fps) of a video."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    fps = cap.get(cv2.CAP_PROP_FPS)
    count, size = 0, (0, 0)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        count += 1
        size = (frame.shape[1], frame.shape[0])
    cap.release()
    return count, size, fps


def nlseg(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nlseg", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=Path(__file__).resolve().parents[1])


def leftovers(folder: Path) -> list[Path]:
    """Temporary files the atomic writers would leave behind on a failure."""
    return [p for p in folder.rglob("*") if ".tmp-" in p.name]


def test_video_frames_size_fps_and_summary(weights, tmp_path):
    video = write_video(tmp_path / "drive.mp4", 23, (132, 98), fps=20)
    out = tmp_path / "out"
    result = nlseg("infer", video, "--weights", weights, "--out", out, "--batch", "3", "--save-masks")
    assert result.returncode == 0, result.stderr
    count, size, fps = probe(out / "drive.mp4")
    assert (count, size) == (23, (132, 98)) and abs(fps - 20) < 0.5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 23 and summary["fps"] > 0 and summary["backend"] == "torch"
    assert summary["device"] == "cpu" and summary["weights"] == str(weights) and not summary["interrupted"]
    for stage in ("decode", "preprocess", "inference", "postprocess", "encode"):
        assert summary["stages"][stage]["p50_ms"] >= 0 and summary["stages"][stage]["p90_ms"] >= summary["stages"][stage]["p50_ms"]
    masks = sorted((out / "masks").iterdir())
    assert len(masks) == 23
    mask = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (98, 132) and mask.dtype == np.uint8 and mask.max() < 19
    assert "drive.mp4" in result.stdout and not leftovers(out)


def test_vid_stride_and_no_video(weights, tmp_path):
    video = write_video(tmp_path / "clip.mp4", 15, (64, 48), fps=30)
    out = tmp_path / "stride"
    assert nlseg("infer", video, "--weights", weights, "--out", out, "--vid-stride", "2").returncode == 0
    count, size, fps = probe(out / "clip.mp4")
    assert (count, size) == (8, (64, 48)) and abs(fps - 15) < 0.5
    out2 = tmp_path / "novideo"
    result = nlseg("infer", video, "--weights", weights, "--out", out2, "--no-video", "--save-masks")
    assert result.returncode == 0, result.stderr
    assert not list(out2.glob("*.mp4")) and len(list((out2 / "masks").iterdir())) == 15


def test_images_of_every_kind(weights, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "gray.png"), rng.integers(0, 255, (33, 57), dtype=np.uint8))
    cv2.imwrite(str(folder / "rgba.png"), rng.integers(0, 255, (40, 41, 4), dtype=np.uint8))
    cv2.imwrite(str(folder / "deep.png"), rng.integers(0, 65535, (21, 30, 3), dtype=np.uint16))
    cv2.imwrite(str(folder / "odd.jpg"), rng.integers(0, 255, (101, 77, 3), dtype=np.uint8))
    out = tmp_path / "out"
    result = nlseg("infer", folder, "--weights", weights, "--out", out, "--save-masks")
    assert result.returncode == 0, result.stderr
    expected = {"gray": (33, 57), "rgba": (40, 41), "deep": (21, 30), "odd": (101, 77)}
    for stem, shape in expected.items():
        assert cv2.imread(str(out / f"{stem}.jpg")).shape == (*shape, 3)
        assert cv2.imread(str(out / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED).shape == shape
    assert json.loads((out / "summary.json").read_text())["frames"] == 4


@pytest.mark.skipif(not DASHCAM.is_dir(), reason="shared dashcam fixtures not present")
def test_dashcam_fixture_folder_and_glob(weights, tmp_path):
    out = tmp_path / "dash"
    result = nlseg("infer", DASHCAM, "--weights", weights, "--out", out, "--batch", "2")
    assert result.returncode == 0, result.stderr
    overlays = sorted(out.glob("*.jpg"))
    assert len(overlays) == 6 and all(cv2.imread(str(p)).shape == (540, 960, 3) for p in overlays)
    out2 = tmp_path / "glob"
    result = nlseg("infer", str(DASHCAM / "solidYellow*.jpg"), "--weights", weights, "--out", out2)
    assert result.returncode == 0 and len(list(out2.glob("*.jpg"))) == 3


def test_default_out_is_a_new_numbered_run(weights, tmp_path):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((20, 30, 3), np.uint8))
    env_cwd = tmp_path / "work"
    env_cwd.mkdir()
    for expected in ("1", "2"):
        result = subprocess.run([sys.executable, "-m", "nlseg", "infer", str(image), "--weights", str(weights)],
                                capture_output=True, text=True, cwd=env_cwd, timeout=300,
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        assert result.returncode == 0, result.stderr
        assert (env_cwd / "runs" / "infer" / expected / "a.jpg").is_file()


def bad_inputs(tmp_path: Path, weights: Path) -> list[tuple[list[str], str]]:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    good = write_video(tmp_path / "good.mp4", 30, (64, 48))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    classifier = tmp_path / "classifier.pt"
    config = ModelConfig.from_preset("cifar10", blocks=(1, 1, 1), channels=(8, 8, 8))
    save_checkpoint(classifier, build_model(config), config)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really")
    notes = tmp_path / "weights.txt"
    notes.write_text("weights")
    w = ["--weights", str(weights)]
    return [
        ([str(tmp_path / "missing.mp4"), *w], "missing.mp4"),
        ([str(empty), *w], "empty.mp4"),
        ([str(text), *w], "notes.mp4"),
        ([str(truncated), *w], "truncated.mp4"),
        ([str(empty_dir), *w], "nothing"),
        ([str(broken), *w], "broken.jpg"),
        ([str(good), "--weights", str(classifier)], "segmenter"),
        ([str(good), "--weights", str(corrupt)], "corrupt.pt"),
        ([str(good), "--weights", str(notes)], "weights.txt"),
        ([str(good), "--weights", str(tmp_path / "absent.pt")], "absent.pt"),
        ([str(good), *w, "--batch", "0"], "--batch"),
        ([str(good), *w, "--imgsz", "90by160"], "--imgsz"),
        ([str(good), *w, "--device", "cuda:7"], "--device"),
    ]


def test_bad_inputs_one_line_and_nothing_left(weights, tmp_path):
    for args, name in bad_inputs(tmp_path, weights):
        out = tmp_path / f"out-{abs(hash(tuple(args)))}"
        result = nlseg("infer", *args, "--out", out)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0, (args, result.stdout)
        assert len(lines) == 1 and name in lines[0] and "Traceback" not in result.stderr, (args, result.stderr)
        assert not out.exists() or not [p for p in out.rglob("*") if p.suffix in (".mp4", ".jpg", ".png")], args


def test_unreadable_image_in_a_folder_is_reported_and_the_rest_written(weights, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    cv2.imwrite(str(folder / "ok.png"), np.zeros((20, 30, 3), np.uint8))
    (folder / "bad.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "out"
    result = nlseg("infer", folder, "--weights", weights, "--out", out)
    assert result.returncode == 1
    assert (out / "ok.jpg").is_file() and not (out / "bad.jpg").exists()
    assert "bad.png" in result.stderr and "Traceback" not in result.stderr
    assert json.loads((out / "summary.json").read_text())["problems"]


def test_ctrl_c_leaves_a_playable_video(weights, tmp_path):
    video = write_video(tmp_path / "long.mp4", 2000, (160, 90))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "nlseg", "infer", str(video), "--weights", str(weights),
                             "--out", str(out), "--imgsz", "90x160"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.suffix == ".mp4" and p.stat().st_size > 20_000 for p in out.glob("*")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    count, size, _ = probe(out / "long.mp4")
    assert 0 < count < 2000 and size == (160, 90)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["frames"] == count
    assert not leftovers(out) and "Interrupted" in stdout


def test_memory_stays_flat_on_a_long_video(weights, tmp_path):
    def peak_rss_mb(frames: int) -> float:
        video = write_video(tmp_path / f"v{frames}.mp4", frames, (320, 240))
        proc = subprocess.Popen([sys.executable, "-m", "nlseg", "infer", str(video), "--weights", str(weights),
                                 "--out", str(tmp_path / f"o{frames}"), "--imgsz", "24x32", "--batch", "4"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=Path(__file__).resolve().parents[1])
        _, status, usage = os.wait4(proc.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        return usage.ru_maxrss / 1024

    short, long = peak_rss_mb(100), peak_rss_mb(800)
    # 700 more 320x240 frames are 160 MB if kept; bounded queues hold a few
    assert long - short < 40, (short, long)


def test_odd_and_changing_frame_sizes_fit_the_writer():
    from nlseg.runtime.video_writer import fit_to

    odd = np.arange(97 * 131 * 3, dtype=np.uint32).astype(np.uint8).reshape(97, 131, 3)
    padded = fit_to(odd, (132, 98))
    assert padded.shape == (98, 132, 3)
    np.testing.assert_array_equal(padded[:97, :131], odd)  # nothing of the frame is lost
    assert fit_to(np.zeros((50, 60, 3), np.uint8), (132, 98)).shape == (98, 132, 3)
