"""Two and three signals to ``nlseg infer``: a second SIGINT/SIGTERM while the run finishes keeps the frames done so
far as a playable MP4 and summary.json (exit 130); a third quits at once (exit 130, no summary), its temporary
file left for the next run into the folder to remove (tests/test_faults_stale_temps.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nlseg.io import remove_stale_temps
from tests.test_infer import leftovers, probe, weights  # noqa: F401 (fixture)
from tests.test_video_writer import source_video

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    # noise: the encoder's packets soon fill the file's buffer, so the temporary file grows from the first frames
    return source_video(tmp_path_factory.mktemp("signals"), 1000, size=(160, 90), noise=60)


def interrupt(video: Path, weights: Path, out: Path, signals: list[tuple[float, int]],
              then_sigint_every: float | None = None) -> tuple[int, str, str]:
    """Run ``nlseg infer`` until its temporary video holds some frames, send ``signals`` (delay before each, signal),
    then SIGINT every ``then_sigint_every`` seconds until it exits; (exit status, stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "nlseg", "infer", str(video), "--weights", str(weights),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.time() + 60  # the container's header is written with the first packet: frames are done
        while time.time() < deadline and not [p for p in out.glob(".drive.tmp-*") if p.stat().st_size > 0]:
            time.sleep(0.05)
        for delay, sig in signals:
            time.sleep(delay)
            proc.send_signal(sig)
        while then_sigint_every is not None and proc.poll() is None and time.time() < deadline + 60:
            time.sleep(then_sigint_every)
            proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, stdout, stderr


# the second signal: with the first; 0.1 s later, while the video is being finished (main's code lost it all
# there: no video, no summary, nothing printed); 0.3 s later, about when the process exits (main's: killed, -15)
@pytest.mark.parametrize("delay", [0.0, 0.1, 0.3], ids=["together", "right-after-the-first", "at-the-exit"])
def test_second_signal_keeps_the_frames_done_so_far(long_video, weights, tmp_path, delay):
    out = tmp_path / "out"
    code, stdout, stderr = interrupt(long_video, weights, out, [(0, signal.SIGINT), (delay, signal.SIGTERM)])
    assert code == 130, stderr
    count, size, _ = probe(out / "drive.mp4")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and 0 < count == summary["frames"] < 1000 and size == (160, 90)
    assert not leftovers(out) and "Interrupted" in stdout and "Traceback" not in stderr
    if delay == 0.0:  # both arrived while the run was on: the second was seen and deferred
        assert "note: finishing the frames done so far; a third signal quits without them" in stderr


def test_third_signal_quits_at_once(long_video, weights, tmp_path):
    out = tmp_path / "out"
    start = time.time()
    # a pending signal sent again is delivered once: the third is sent until one lands while the run finishes
    code, _, stderr = interrupt(long_video, weights, out, [(0, signal.SIGINT), (0, signal.SIGTERM)], 0.005)
    assert code == 130 and "Traceback" not in stderr, stderr
    assert time.time() - start < 60
    assert not (out / "drive.mp4").exists() and not (out / "summary.json").exists()
    [partial] = out.glob(".drive.tmp-*.mp4")  # for the next run into the folder to remove
    pid = partial.name.split("-")[1]
    assert remove_stale_temps(out) == [f"{partial}: removed, a temporary file of killed run {pid}"]


def test_a_dead_encoder_stops_the_run_promptly(long_video, weights, tmp_path, monkeypatch):
    """The encoder fails with its queue full: the run ends with that error, nothing blocks on a queue nobody reads."""
    import errno
    import threading

    import nlseg
    from nlseg.runtime.video_writer import VideoWriter

    def full_disk(self, frame):
        time.sleep(3)  # meanwhile the main loop fills the encoder's queue and waits on it
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(VideoWriter, "write", full_disk)
    segmenter = nlseg.load(weights, device="cpu")
    raised: list[BaseException] = []

    def infer() -> None:
        try:
            segmenter.infer(long_video, tmp_path / "out", batch=2)
        except BaseException as exc:
            raised.append(exc)

    worker = threading.Thread(target=infer, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the run hangs after its encoder died"
    assert isinstance(raised[0], OSError) and raised[0].errno == errno.ENOSPC
    assert not (tmp_path / "out").exists()  # no video, no temporary file, no empty folder
