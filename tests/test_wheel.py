"""The wheel carries the default weights and the sample clip: built, installed outside the checkout, run.

The wheel is built with pip (no build isolation: the environment's setuptools, no index) from a
copy of the sources, so no ``build/`` folder of the checkout leaks into it or is left behind.
It is installed with ``pip install --no-deps --target`` (the environment's torch and the rest
are used, not reinstalled) and ``nlseg infer`` runs from an empty folder with only that target
on ``PYTHONPATH``, on the bundled clip, with the bundled weights.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import av

from nlseg.assets import DEFAULT_WEIGHTS, SAMPLE_CLIP

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ("camvid_realtime.pt", "sample_drive.mp4", "README.md")


def pip(*args: str, cwd: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300,
                            cwd=cwd)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_wheel_installed_elsewhere_runs_infer_on_the_bundled_clip(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "nlseg", source / "nlseg", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
    dist = tmp_path / "dist"
    pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(dist), str(source), cwd=tmp_path)
    (wheel,) = dist.glob("nlseg-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    for name in BUNDLED:
        assert sizes.get(f"nlseg/assets/{name}") == (ROOT / "nlseg" / "assets" / name).stat().st_size, name
    for name in ("pairwise_cpu.cpp", "upsampled_ce.cpp", "common.h"):  # the CPU kernels compile from these
        assert sizes.get(f"nlseg/ops/cpu/{name}") == (ROOT / "nlseg" / "ops" / "cpu" / name).stat().st_size, name
    assert wheel.stat().st_size < 8 * 1024 * 1024

    site = tmp_path / "site"
    pip("install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel), cwd=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NLSEG_ASSETS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    where = subprocess.run([sys.executable, "-c", "import nlseg.assets as a; print(a.__file__); print(a.SAMPLE_CLIP)"],
                           capture_output=True, text=True, timeout=120, cwd=empty, env=env)
    module, clip = where.stdout.split()
    assert Path(module).is_relative_to(site) and Path(clip).is_file(), where.stdout + where.stderr

    result = subprocess.run([str(site / "bin" / "nlseg"), "infer", "--out", "out", "--vid-stride", "8"],
                            capture_output=True, text=True, timeout=300, cwd=empty, env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads((empty / "out" / "summary.json").read_text())
    assert Path(summary["weights"]).is_relative_to(site) and Path(summary["source"]).is_relative_to(site)
    assert Path(summary["weights"]).read_bytes() == DEFAULT_WEIGHTS.read_bytes()
    with av.open(str(empty / "out" / SAMPLE_CLIP.name)) as written:
        stream = written.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in written.decode(stream)) == summary["frames"] == 15  # 120 frames, every 8th
    assert sorted(p.name for p in empty.iterdir()) == ["out"]
