"""The annotated video: H.264 MP4 by default, VP9 WebM, OpenCV's mp4v, read back with PyAV and played in Chromium.

The browser tests load each file in a ``<video>`` element of headless Chromium (Debian's
``chromium`` package) and wait for ``loadeddata``; they skip where Chromium is not installed.
The mp4v file must fail there, which is why H.264 is the default.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from nlseg.checkpoint import save_checkpoint
from nlseg.nn import ModelConfig, build_model
from nlseg.runtime.video_writer import VideoWriter

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A tiny random-init segmenter: the tests are about the video, not the labels."""
    config = ModelConfig.from_preset("bdd100k", blocks=(1, 1, 1), channels=(8, 8, 8), image_size=(24, 32))
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_checkpoint(path, build_model(config), config)
    return path


def frames(count: int, size: tuple[int, int], noise: int = 0) -> list[np.ndarray]:
    """A disc moving over a gradient, ``size`` = (width, height), BGR, with uniform noise of amplitude ``noise``."""
    width, height = size
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))
    out = []
    for i in range(count):
        frame = cv2.merge((ramp, np.roll(ramp, 3 * i, axis=1), np.full_like(ramp, (9 * i) % 255)))
        cv2.circle(frame, ((5 * i) % width, height // 2), max(2, height // 5), (0, 0, 255), -1)
        if noise:
            frame = cv2.add(frame, rng.integers(0, noise, frame.shape, dtype=np.uint8))
        out.append(frame)
    return out


def write(path: Path, codec: str, count: int = 12, size: tuple[int, int] = (131, 97), fps: float = 12.5,
          noise: int = 0) -> Path:
    with VideoWriter(path, fps, size, codec) as writer:
        for frame in frames(count, size, noise):
            writer.write(frame)
    assert writer.frames == count
    return path


def read_back(path: Path) -> dict:
    """What PyAV finds in a video: codec, pixel format, size, rate and the frames it decodes."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [frame.to_ndarray(format="bgr24") for frame in container.decode(stream)]
        return {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                "size": (stream.codec_context.width, stream.codec_context.height), "rate": stream.average_rate,
                "frames": decoded, "format": container.format.name}


def play_in_chromium(video: Path) -> str:
    """'loadeddata WxH' or 'error CODE' from a headless Chromium ``<video>`` element loading ``video``."""
    page = video.with_name(video.name + ".html")
    page.write_text(f"""<!doctype html><html><body><video id="v" muted preload="auto" src="{video.name}"></video>
<script>
const v = document.getElementById("v");
function report(text) {{ const p = document.createElement("pre"); p.id = "result"; p.textContent = text;
                        document.body.appendChild(p); }}
v.addEventListener("loadeddata", () => report("loadeddata " + v.videoWidth + "x" + v.videoHeight));
v.addEventListener("error", () => report("error " + (v.error ? v.error.code : "?")));
</script></body></html>
""")
    with tempfile.TemporaryDirectory(prefix="nlseg-chromium-") as profile:
        result = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=90)
    dom = result.stdout
    start = dom.find('<pre id="result">')
    assert start >= 0, f"no media event in the page (chromium exit {result.returncode}): {result.stderr[-500:]}"
    return dom[start + len('<pre id="result">'):dom.index("</pre>", start)]


def nlseg(*args: object, prelude: str = "") -> subprocess.CompletedProcess:
    """``nlseg ARGS`` in a subprocess, after the Python statements ``prelude``."""
    code = f"{prelude}import sys; from nlseg.cli import main; sys.argv[0] = 'nlseg'; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def source_video(tmp_path: Path, count: int, size: tuple[int, int] = (96, 54), noise: int = 0) -> Path:
    return write(tmp_path / "drive.mp4", "mp4v", count, size, 20.0, noise)


def test_h264_is_yuv420p_faststart_mp4_with_every_frame_and_odd_sizes_padded(tmp_path):
    path = write(tmp_path / "a.mp4", "h264", count=12, size=(131, 97))
    got = read_back(path)
    assert (got["codec"], got["pix_fmt"], got["size"], got["rate"]) == ("h264", "yuv420p", (132, 98), 12.5)
    assert len(got["frames"]) == 12
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "+faststart: the index must come before the media data"
    # padding replicates the last column and row; the picture itself survives lossy coding
    original = frames(12, (131, 97))[5].astype(int)
    assert np.abs(got["frames"][5][:97, :131].astype(int) - original).mean() < 6


def test_vp9_webm_and_mp4v(tmp_path):
    vp9 = read_back(write(tmp_path / "a.webm", "vp9", count=9, size=(64, 48)))
    assert (vp9["codec"], vp9["pix_fmt"], vp9["size"], len(vp9["frames"])) == ("vp9", "yuv420p", (64, 48), 9)
    assert "webm" in vp9["format"]
    mp4v = read_back(write(tmp_path / "b.mp4", "mp4v", count=9, size=(63, 47)))
    assert (mp4v["codec"], mp4v["size"], len(mp4v["frames"])) == ("mpeg4", (64, 48), 9)


def test_a_closed_writer_checks_every_frame_reached_the_file(tmp_path):
    writer = VideoWriter(tmp_path / "c.mp4", 10, (32, 32), "h264")
    writer.write(np.zeros((32, 32, 3), np.uint8))
    writer.frames += 1  # claim a frame the encoder never saw
    with pytest.raises(RuntimeError, match="wrote 1 of 2 frames"):
        writer.close()


def test_infer_writes_h264_by_default_and_webm_for_vp9(weights, tmp_path):
    video = source_video(tmp_path, 10)
    result = nlseg("infer", video, "--weights", weights, "--out", tmp_path / "h264")
    assert result.returncode == 0, result.stderr
    got = read_back(tmp_path / "h264" / "drive.mp4")
    assert (got["codec"], got["pix_fmt"], len(got["frames"])) == ("h264", "yuv420p", 10)
    assert json.loads((tmp_path / "h264" / "summary.json").read_text())["codec"] == "h264"
    result = nlseg("infer", video, "--weights", weights, "--out", tmp_path / "vp9", "--codec", "vp9")
    assert result.returncode == 0, result.stderr
    assert "drive.webm" in result.stdout and not (tmp_path / "vp9" / "drive.mp4").exists()
    assert len(read_back(tmp_path / "vp9" / "drive.webm")["frames"]) == 10
    bad = nlseg("infer", video, "--weights", weights, "--out", tmp_path / "bad", "--codec", "h265")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: --codec: expected one of h264, vp9, mp4v, got 'h265'"]


def test_without_an_h264_encoder_infer_warns_once_and_writes_mp4v(weights, tmp_path):
    video = source_video(tmp_path, 6)
    result = nlseg("infer", video, "--weights", weights, "--out", tmp_path / "out",
                   prelude="import sys; sys.modules['av'] = None; ")  # as if PyAV were not installed
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "no H.264 encoder" in warnings[0] and "mp4v" in warnings[0]
    got = read_back(tmp_path / "out" / "drive.mp4")
    assert got["codec"] == "mpeg4" and len(got["frames"]) == 6
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["codec"] == "mp4v"


@needs_chromium
def test_chromium_plays_h264_and_vp9_but_not_mp4v(tmp_path):
    assert play_in_chromium(write(tmp_path / "h264.mp4", "h264", size=(131, 97))) == "loadeddata 132x98"
    assert play_in_chromium(write(tmp_path / "vp9.webm", "vp9")) == "loadeddata 132x98"
    assert play_in_chromium(write(tmp_path / "mp4v.mp4", "mp4v")).startswith("error")


def test_sigterm_leaves_an_h264_file_that_plays(weights, tmp_path):
    video = source_video(tmp_path, 1500, size=(160, 90), noise=60)  # noise: packets fill the file's buffer soon
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "nlseg", "infer", str(video), "--weights", str(weights),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline and not any(".tmp-" in p.name and p.stat().st_size > 100_000 for p in out.glob("*")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    summary = json.loads((out / "summary.json").read_text())
    got = read_back(out / "drive.mp4")
    assert summary["interrupted"] and got["codec"] == "h264" and 0 < len(got["frames"]) == summary["frames"] < 1500
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]
    if CHROMIUM is not None:
        assert play_in_chromium(out / "drive.mp4") == "loadeddata 160x90"
