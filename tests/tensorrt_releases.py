"""NVIDIA's ``tensorrt.plugin`` framework of each TensorRT release the tests check the plugin against.

:data:`RELEASES` are ``tensorrt-cu12-bindings`` versions on PyPI. :func:`release_plugin_dir`
gives the wheel's ``tensorrt_bindings/plugin/`` folder: the installed wheel's when it is that
version (the ``[dev]`` extra pins 11.4), else fetched once per machine with
``pip download tensorrt-cu12-bindings==VER --no-deps`` (about 1.3 MB a wheel) and unpacked,
its Python files only, into ``$NLSEG_CACHE_DIR/tensorrt-bindings/VER/plugin`` (default
``~/.cache/nlseg``). The wheel asked for is the CPython 3.11 x86-64 Linux one whatever runs
the tests: only its pure-Python framework is read, which is the same in every wheel of a
release. Where pip cannot fetch it (offline) the answer is a skip reason.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tests.tensorrt_framework import BINDINGS, plugin_package_dir

RELEASES: tuple[str, ...] = ("10.13.3.9", "10.16.1.11", "11.4.0.106")
_PLUGIN = "tensorrt_bindings/plugin/"
_WHEEL_TAGS = ("--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11",
               "--platform", "manylinux_2_28_x86_64")


def cache_root() -> Path:
    """Where fetched frameworks are kept: ``$NLSEG_CACHE_DIR/tensorrt-bindings`` (default ``~/.cache/nlseg``)."""
    base = os.environ.get("NLSEG_CACHE_DIR") or Path.home() / ".cache" / "nlseg"
    return Path(base) / "tensorrt-bindings"


def installed_release() -> str | None:
    """The version of the installed bindings wheel, None when there is none."""
    try:
        return importlib.metadata.version(BINDINGS)
    except importlib.metadata.PackageNotFoundError:
        return None


def _fetch(version: str, root: Path) -> Path:
    """Download the wheel and unpack its framework under ``root/version`` (atomically: a rename). RuntimeError
    with pip's last line when pip cannot fetch it."""
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{version}-") as tmp:
        command = [sys.executable, "-m", "pip", "download", f"{BINDINGS}=={version}", "--no-deps", *_WHEEL_TAGS,
                   "--disable-pip-version-check", "--timeout", "20", "--retries", "1", "-q", "-d", tmp]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            raise RuntimeError("pip download took over 180 s") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
            raise RuntimeError(f"pip download failed ({lines[-1].strip() if lines else f'exit {result.returncode}'})")
        staged = Path(tmp) / "release"
        with zipfile.ZipFile(wheels[0]) as wheel:
            members = [m for m in wheel.namelist() if m.startswith(_PLUGIN) and m.endswith(".py")]
            if not any(m.endswith("/_lib.py") for m in members):
                raise RuntimeError(f"{wheels[0].name} has no {_PLUGIN}_lib.py")
            for member in members:
                target = staged / "plugin" / member[len(_PLUGIN):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(wheel.read(member))
        final = root / version
        try:
            staged.rename(final)
        except OSError:
            if not (final / "plugin" / "_lib.py").is_file():  # not another process that got there first
                raise
    return final / "plugin"


@functools.cache
def release_plugin_dir(version: str) -> Path | str:
    """``tensorrt_bindings/plugin`` of release ``version``, or why it is not available (a skip reason)."""
    if installed_release() == version and plugin_package_dir() is not None:
        return plugin_package_dir()
    cached = cache_root() / version / "plugin"
    if (cached / "_lib.py").is_file():
        return cached
    try:
        return _fetch(version, cache_root())
    except (OSError, RuntimeError, zipfile.BadZipFile) as exc:
        return f"NVIDIA's tensorrt.plugin of TensorRT {version}: {BINDINGS}=={version} could not be fetched: {exc}"

