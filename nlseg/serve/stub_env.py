"""The environment of Triton's Python stub process, which ``nvidia-pytriton`` starts and we must prepare.

Two facts, found by running it (README, *nlseg serve*): the stub embeds libpython and finds it on
``LD_LIBRARY_PATH``, so that path must begin with this interpreter's ``LIBDIR`` (else a Python built
outside the system loads the system's libpython and crashes); and the stub of ``nvidia-pytriton``
0.7.0 is built against NumPy 1.x (pybind11 of the ``numpy.core`` era): under NumPy 2 it misreads an
array's item size and hands the model corrupted BYTES tensors, then aborts. Where this process runs
NumPy 2, the stub gets an environment of its own: a NumPy 1.x folder first, then this environment's
site-packages (for ``pytriton``, ``zmq``), found by the stub through ``PATH`` like a virtual environment.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from pathlib import Path

import numpy as np

#: Where ``nlseg serve`` looks for a NumPy 1.x for the stub when this environment has NumPy 2.
DEFAULT_STUB_SITE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nlseg" / "triton-stub"


class StubEnvError(RuntimeError):
    """The stub cannot get a NumPy it can run with; the message says what to install."""


def library_path() -> str:
    """``LD_LIBRARY_PATH`` with this interpreter's LIBDIR first."""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    rest = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p and p != libdir]
    return os.pathsep.join([libdir, *rest])


def _numpy1_version(folder: Path) -> str | None:
    """The NumPy 1.x version installed in ``folder`` (a ``pip install --target`` folder), else None."""
    for info in sorted(folder.glob("numpy-*.dist-info")):
        version = info.name[len("numpy-"):-len(".dist-info")]
        if version.split(".")[0] == "1" and (folder / "numpy" / "__init__.py").is_file():
            return version
    return None


def install_hint(stub_site: Path) -> str:
    """The command that puts a NumPy 1.x where the stub looks for it."""
    return f"{Path(sys.executable).name} -m pip install --target {stub_site} 'numpy>=1.24,<2'"


def stub_prefix(stub_site: Path, workspace: Path) -> Path:
    """The Python environment the stub runs in: this one (NumPy 1.x here), else one made in ``workspace``."""
    if int(np.__version__.split(".")[0]) < 2:
        return Path(sys.exec_prefix)
    if _numpy1_version(stub_site) is None:
        raise StubEnvError(f"Triton's Python stub (nvidia-pytriton 0.7.0) needs NumPy 1.x and this environment has "
                           f"NumPy {np.__version__}; put one in {stub_site} once: {install_hint(stub_site)} "
                           "(or pass --stub-site DIR)")
    prefix = workspace / "stub-env"
    packages = prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    packages.mkdir(parents=True, exist_ok=True)
    (prefix / "bin").mkdir(exist_ok=True)
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    for name in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        link = prefix / "bin" / name
        if not link.exists():
            link.symlink_to(base)
    (prefix / "pyvenv.cfg").write_text(f"home = {base.parent}\ninclude-system-site-packages = false\n"
                                       f"version = {'.'.join(map(str, sys.version_info[:3]))}\n")
    # site-packages order: NumPy 1.x first, then this environment's (pytriton, zmq); .pth lines are appended
    lines = [str(stub_site), *site.getsitepackages()]
    (packages / "nlseg_stub.pth").write_text("\n".join(lines) + "\n")
    return prefix
