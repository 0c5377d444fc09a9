"""Fault injection, writes: a full filesystem, a read-only one, a forbidden folder, for every non-video writer.

Where the tests run as root and ``mount`` works, the full and the read-only filesystems are real
(a 64 KiB tmpfs filled to the last byte; a tmpfs mounted read-only), so the errors are the
kernel's own. Elsewhere the same errno is injected at the final rename of :func:`nlseg.io.atomic_path`
(every writer goes through it). EACCES is always injected: root ignores permission bits.
Each case checks the one line (the path and the reason), the exit status, and that no file,
complete or not, sits under the final name, and no temporary file is left.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import nlseg.io
from nlseg.checkpoint import save_checkpoint
from nlseg.errors import os_error_line
from nlseg.io import write_image, write_text
from nlseg.nn import ModelConfig, build_model
from tests.test_faults_inputs import run
from tests.test_infer import weights  # noqa: F401 (fixture)

REASONS = {errno.ENOSPC: "No space left on device", errno.EROFS: "Read-only file system",
           errno.EACCES: "Permission denied"}


def _mount(folder: Path, options: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.fixture(params=[errno.ENOSPC, errno.EROFS, errno.EACCES], ids=["ENOSPC", "EROFS", "EACCES"])
def bad_dir(request, tmp_path, monkeypatch):
    """(a folder where writing fails with the errno, the errno): a real tmpfs where possible."""
    code = request.param
    folder = tmp_path / "bad"
    folder.mkdir()
    mounted = code != errno.EACCES and _mount(folder, "size=64k" if code == errno.ENOSPC else "ro,size=64k")
    if mounted:
        request.addfinalizer(lambda: subprocess.run(["umount", str(folder)], check=True))
    if mounted and code == errno.ENOSPC:
        fd = os.open(folder / ".filler", os.O_WRONLY | os.O_CREAT)
        try:  # fill it: not one byte left
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
    if not mounted:
        real_replace = os.replace

        def failing_replace(src, dst):
            if Path(dst).is_relative_to(folder):
                raise OSError(code, os.strerror(code), str(src))
            return real_replace(src, dst)

        monkeypatch.setattr(nlseg.io.os, "replace", failing_replace)
    return folder, code


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.name != ".filler"]


@pytest.fixture(scope="module")
def tiny(weights) -> Path:
    """The tiny random-init segmenter of tests/test_infer.py."""
    return weights


def expect_failure(code: int, err: str, bad: Path, errno_: int, allowed: tuple[int, ...] = (1, 2)) -> None:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and code in allowed, err
    assert str(bad) in lines[0] and REASONS[errno_] in lines[0], err
    assert not leftovers(bad), leftovers(bad)
    assert [p.name for p in bad.iterdir() if p.name != ".filler"] == []  # nor empty output folders


def test_api_writers_raise_oserror_naming_the_final_file(bad_dir, tiny):
    folder, code = bad_dir
    config = ModelConfig.from_preset("bdd100k", blocks=(1, 1, 1), channels=(8, 8, 8))
    for write, name in ((lambda p: save_checkpoint(p, build_model(config), config), "best.pt"),
                        (lambda p: write_text(p, "{}\n" * 40000), "summary.json"),
                        (lambda p: write_image(p, np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)),
                         "mask.png")):
        with pytest.raises(OSError) as info:
            write(folder / name)
        assert info.value.errno == code and os_error_line(info.value) == f"{folder / name}: {REASONS[code]}"
    assert not leftovers(folder)


def test_export_onnx(capsys, bad_dir, tiny):
    folder, code = bad_dir
    status, err = run(capsys, "export", tiny, "--out", folder / "m.onnx")
    expect_failure(status, err, folder, code)


def test_spectrum(capsys, bad_dir, tiny):
    folder, code = bad_dir
    status, err = run(capsys, "spectrum", tiny, "--out", folder / "s")
    expect_failure(status, err, folder, code)


def test_synth_dataset(capsys, bad_dir):
    folder, code = bad_dir
    status, err = run(capsys, "synth", folder / "d", "--train", "2", "--val", "0", "--workers", "1", "--size", "90x160")
    expect_failure(status, err, folder, code)


def test_infer_images_masks_summary(capsys, bad_dir, tiny, tmp_path):
    folder, code = bad_dir
    src = tmp_path / "imgs"
    src.mkdir()
    import cv2

    for i in range(2):
        cv2.imwrite(str(src / f"i{i}.png"), np.random.default_rng(i).integers(0, 255, (120, 160, 3), np.uint8))
    status, err = run(capsys, "infer", src, "--weights", tiny, "--out", folder / "o", "--save-masks")
    expect_failure(status, err, folder, code)


def test_triton_repository(bad_dir, tmp_path):
    from nlseg.tensorrt.model_repository import TritonModel, write_model

    folder, code = bad_dir
    plan = tmp_path / "m.plan"
    plan.write_bytes(os.urandom(100_000))
    model = TritonModel("nlseg", "tensorrt_plan", 0, (), (), "model.plan")
    with pytest.raises(OSError) as info:
        write_model(folder, model, plan)
    assert info.value.errno == code and str(folder / "nlseg") in os_error_line(info.value)
    assert not leftovers(folder)
