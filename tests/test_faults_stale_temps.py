"""Temporary files of a killed run: the next ``nlseg infer`` into the folder removes those whose writer is dead
(:func:`nlseg.io.remove_stale_temps`), keeps a live run's, and reports the older names without a process id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nlseg.io import atomic_path, remove_stale_temps
from tests.test_infer import weights, write_video  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[1]


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_atomic_path_names_its_process(tmp_path):
    with atomic_path(tmp_path / "clip.mp4") as tmp:
        assert tmp.name.startswith(f".clip.tmp-{os.getpid()}-")
        assert tmp.suffix == ".mp4" and remove_stale_temps(tmp_path) == [] and tmp.exists()  # our own: kept
    assert (tmp_path / "clip.mp4").exists() and not tmp.exists()


def test_dead_writer_removed_live_kept_old_reported(tmp_path):
    (tmp_path / "masks").mkdir()
    dead = tmp_path / f".drive.tmp-{dead_pid()}-ab12cd_9.mp4"
    dead_mask = tmp_path / "masks" / f".f01.tmp-{dead_pid()}-zz00yy11.png"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        live = tmp_path / f".drive.tmp-{sleeper.pid}-qwertyui.mp4"
        old = tmp_path / ".summary.tmp-k3j4h5g6.json"
        other = tmp_path / ".notes.tmp-x"  # not atomic_path's pattern: not ours to touch
        for path in (dead, dead_mask, live, old, other):
            path.write_bytes(b"partial")
        notes = remove_stale_temps(tmp_path)
        assert not dead.exists() and not dead_mask.exists()
        assert live.exists() and old.exists() and other.exists()
        assert len(notes) == 3, notes
        assert any(str(dead) in n and "removed" in n for n in notes)
        assert any(str(dead_mask) in n and "removed" in n for n in notes)
        assert any(str(old) in n and "left in place" in n for n in notes)
        assert not any(str(live) in n for n in notes)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_sigkill_leftover_removed_by_the_next_run(weights, tmp_path):
    video = write_video(tmp_path / "long.mp4", 2000, (160, 90))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "nlseg", "infer", str(video), "--weights", str(weights), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not [p for p in out.glob(".long.tmp-*") if p.stat().st_size > 0]:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    [stale] = list(out.glob(f".long.tmp-{proc.pid}-*.mp4"))
    short = write_video(tmp_path / "short.mp4", 3, (160, 90))
    again = subprocess.run([sys.executable, "-m", "nlseg", "infer", str(short), "--weights", str(weights),
                            "--out", str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert again.returncode == 0, again.stderr
    assert not stale.exists() and not list(out.glob(".*.tmp-*"))
    assert f"note: {stale}: removed, a temporary file of killed run {proc.pid}" in again.stderr.splitlines()
    assert json.loads((out / "summary.json").read_text())["stale_temps"] == [
        f"{stale}: removed, a temporary file of killed run {proc.pid}"]
