"""Fault injection, the video writers on a real full filesystem: ``nlseg infer`` (PyAV H.264) and ``nlseg synth-clip``
onto a 300 KiB tmpfs end in one line naming the file and "No space left on device", exit 1, and leave neither
the file nor its temporary file (nor the output folder). Needs root and a working ``mount``; skipped otherwise."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from nlseg.assets import SAMPLE_CLIP
from tests.test_faults_inputs import run
from tests.test_faults_writes import _mount, expect_failure
from tests.test_infer import weights  # noqa: F401 (fixture)


@pytest.fixture
def full_dir(tmp_path):
    """A 300 KiB tmpfs with about 20 KiB left: less than either video needs (the writers fail within a few frames)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "full"
    folder.mkdir()
    if not _mount(folder, "size=300k"):
        pytest.skip("mount -t tmpfs failed here (no privilege for mounts in this container)")
    try:
        (folder / ".filler").write_bytes(b"\0" * 280 * 1024)  # expect_failure ignores this name
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_infer_video_on_a_full_disk(capsys, full_dir, weights):
    # every 6th frame: 20 frames at 640x360, still more than the room left, and a short run on a busy CPU
    status, err = run(capsys, "infer", SAMPLE_CLIP, "--weights", weights, "--out", full_dir / "v", "--vid-stride", "6")
    expect_failure(status, err, full_dir, errno.ENOSPC, allowed=(1,))
    assert f"{full_dir / 'v' / Path(SAMPLE_CLIP).name}: No space left on device" in err


def test_synth_clip_on_a_full_disk(capsys, full_dir):
    status, err = run(capsys, "synth-clip", full_dir / "c.mp4", "--workers", "1")
    expect_failure(status, err, full_dir, errno.ENOSPC, allowed=(1,))
    assert f"{full_dir / 'c.mp4'}: No space left on device" in err
