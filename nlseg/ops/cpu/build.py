"""Compiling and loading the CPU kernels on first use: ``pairwise_cpu.cpp`` (:data:`LIBRARY`, the
distance kernels) and ``upsampled_ce.cpp`` (:data:`HEAD_LIBRARY`, the real-time segmenter's
training head), each one shared library.

The sources have no PyTorch headers (they share ``common.h``): one call of the system C++ compiler
(``$CXX``, else ``c++`` or ``g++``) builds a library, loaded with ctypes, in 4-8 s on the busy
2-core development machine, where torch's ``cpp_extension`` build of a module including
``torch/extension.h`` took 50 s. A library is cached under torch's extensions directory
(``$TORCH_EXTENSIONS_DIR``, else ``~/.cache/torch_extensions``), named by a hash of its source,
the header, the compiler and flags. Concurrent first uses (pytest-xdist workers, DDP ranks) take
turns on a lock file: one builds, the others load its library; the build writes a temporary file
and renames it into place, so no reader ever sees a partial library.

If the compiler is missing or the build fails, :meth:`KernelLibrary.load` returns None and
warns once; the callers (:mod:`nlseg.ops.cpu.function`, :mod:`nlseg.ops.cpu.cross_entropy`) then
run their reference.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

SOURCE = Path(__file__).with_name("pairwise_cpu.cpp")
HEADER = Path(__file__).with_name("common.h")  # included by every source: part of each library's hash
ABI_VERSION = 2  # nlseg_pairwise_abi() of a library this module can call
BASE_FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-pthread", "-fno-math-errno", "-fno-trapping-math")
# Instruction sets by torch's runtime detection of this CPU (the library is cached per flag set).
ISA_FLAGS = {
    "AVX512": ("-mavx2", "-mfma", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl"),
    "AVX2": ("-mavx2", "-mfma"),
}


class KernelBuildWarning(RuntimeWarning):
    """A CPU kernel could not be built or loaded; the reference implementation runs instead."""


def _pointer_args(count: int) -> list[type]:
    return [ctypes.c_void_p] * count


# (inputs, sizes, constants, threads, OpenMP runtime, outputs) of the two entry points; see pairwise_cpu.cpp.
_SIZES = [ctypes.c_long] * 5  # batch, n, m, e, c
_CONSTANTS = [ctypes.c_int, ctypes.c_int, ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_void_p,
              ctypes.c_void_p]  # mode, quarters, half_p, log_coef, zero_rtol, gain, offset
_THREADS = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]  # threads, GOMP_parallel, omp_get_thread_num
FORWARD_ARGTYPES = _pointer_args(5) + _SIZES + _CONSTANTS + _THREADS + _pointer_args(2)
BACKWARD_ARGTYPES = _pointer_args(9) + _SIZES + _CONSTANTS + _THREADS + _pointer_args(3)
OPENMP_LIBRARY = re.compile(r"/lib(gomp|omp|iomp5)[^/]*\.so[^/]*$")


@dataclass(frozen=True)
class LoadedKernel:
    """The entry points of a loaded library, by dtype, and its padding granularity."""

    forward: dict[torch.dtype, ctypes._CFuncPtr]
    backward: dict[torch.dtype, ctypes._CFuncPtr]
    lanes: int  # C' and C are padded to a multiple of this
    key_multiple: int  # M is padded to a multiple of this
    max_quarters: int  # the largest 2p of the kernel's square-root mode
    openmp: tuple[int, int] | None  # GOMP_parallel, omp_get_thread_num of PyTorch's OpenMP runtime


def compiler() -> str | None:
    """The C++ compiler: ``$CXX`` if set, else ``c++`` or ``g++`` on PATH."""
    if os.environ.get("CXX"):
        return os.environ["CXX"]
    return shutil.which("c++") or shutil.which("g++")


def compile_flags() -> tuple[str, ...]:
    """Optimisation flags plus the vector instructions torch detected on this CPU."""
    return BASE_FLAGS + ISA_FLAGS.get(torch.backends.cpu.get_cpu_capability(), ())


def library_name(source: str, cxx: str, flags: tuple[str, ...], stem: str) -> str:
    """A file name unique to the source (with the header), compiler, flags and platform."""
    key = "\0".join([source, cxx, *flags, platform.machine(), sys.platform])
    return f"{stem}_{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"


def cache_directories(stem: str) -> list[Path]:
    """Where libraries are cached: torch's extensions directory (``$TORCH_EXTENSIONS_DIR``, else
    torch's per-user cache), then the temporary directory if that one cannot be written."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    fallback = Path(tempfile.gettempdir()) / f"{stem}_{uid}"
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        root = Path(os.environ["TORCH_EXTENSIONS_DIR"])
    else:
        try:
            from torch.utils.cpp_extension import get_default_build_root  # imports setuptools: only here
        except ImportError:
            return [fallback]
        root = Path(get_default_build_root())
    return [root / stem, fallback]


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an advisory lock on ``path`` (fcntl.flock: released by the OS if the holder dies).

    Where fcntl is missing (Windows) nothing is locked: concurrent builds then each write a
    temporary file and rename it into place.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_library(cxx: str, flags: tuple[str, ...], target: Path, source: Path) -> None:
    """Compile ``source`` into ``target`` through a temporary file renamed into place.

    Raises RuntimeError with the compiler's first error line, or OSError if ``target``'s
    directory cannot be written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=target.stem + ".", suffix=".partial")
    os.close(fd)
    try:
        try:
            result = subprocess.run([cxx, *flags, str(source), "-o", partial], capture_output=True, text=True)
        except OSError as exc:
            raise RuntimeError(f"cannot run the C++ compiler {cxx!r}: {exc.strerror or exc}") from None
        if result.returncode != 0:
            errors = [line for line in result.stderr.splitlines() if "error" in line] or result.stderr.splitlines()
            raise RuntimeError(f"{cxx} exited with status {result.returncode}: "
                               f"{errors[0].strip() if errors else 'no message'}")
        os.chmod(partial, 0o755)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def openmp_runtime() -> tuple[int, int] | None:
    """Addresses of GOMP_parallel and omp_get_thread_num in the OpenMP runtime PyTorch's parallel
    loops run on (found among the process's mapped libraries; Linux), or None.

    The kernel then runs on PyTorch's own thread team, as PyTorch's kernels do: no threads of its
    own next to OpenMP's, which spin-wait for work after each parallel loop, and
    ``torch.set_num_threads`` governs it. None where PyTorch's backend is not OpenMP or no runtime
    is found; the kernel then starts std::threads.
    """
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if OPENMP_LIBRARY.search(line.rstrip())})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)  # already loaded: the same handle
            parallel, thread_num = lib.GOMP_parallel, lib.omp_get_thread_num
        except (OSError, AttributeError):
            continue
        return ctypes.cast(parallel, ctypes.c_void_p).value, ctypes.cast(thread_num, ctypes.c_void_p).value
    return None


def open_library(path: Path) -> LoadedKernel:
    """Load the pairwise library ``path`` with ctypes and declare its entry points; RuntimeError if
    its ABI differs."""
    lib = ctypes.CDLL(str(path))
    if lib.nlseg_pairwise_abi() != ABI_VERSION:
        raise RuntimeError(f"{path} has ABI {lib.nlseg_pairwise_abi()}, expected {ABI_VERSION}")
    lib.nlseg_pairwise_lanes.restype = lib.nlseg_pairwise_key_multiple.restype = ctypes.c_long
    forward, backward = {}, {}
    for dtype, suffix in ((torch.float32, "f32"), (torch.float64, "f64")):
        forward[dtype] = getattr(lib, f"nlseg_pairwise_forward_{suffix}")
        forward[dtype].argtypes, forward[dtype].restype = FORWARD_ARGTYPES, ctypes.c_int
        backward[dtype] = getattr(lib, f"nlseg_pairwise_backward_{suffix}")
        backward[dtype].argtypes, backward[dtype].restype = BACKWARD_ARGTYPES, ctypes.c_int
    return LoadedKernel(forward, backward, lib.nlseg_pairwise_lanes(), lib.nlseg_pairwise_key_multiple(),
                        lib.nlseg_pairwise_max_quarters(), openmp_runtime())


@dataclass(frozen=True)
class LibrarySpec:
    """One CPU library: its source, what it is called in messages, its cache name, how it is opened
    (``opener``: the loaded entry points, RuntimeError on an ABI mismatch) and what runs without it."""

    source: Path
    title: str
    stem: str
    opener: Callable[[Path], Any]
    fallback: str


PAIRWISE = LibrarySpec(SOURCE, "the CPU pairwise kernel", "nlseg_pairwise_cpu", open_library,
                       "the distance kernels run on the reference implementation (slower, same results)")


class KernelLibrary:
    """Builds (once per machine) and loads (once per process) one CPU library; thread-safe.

    ``spec``: which library (default the pairwise kernel); ``cxx`` overrides :func:`compiler`
    (tests force a failing build with it).
    """

    def __init__(self, cxx: str | None = None, spec: LibrarySpec = PAIRWISE) -> None:
        self._cxx = cxx
        self.spec = spec
        self._lock = threading.Lock()
        self._kernel: Any = None
        self._failure: str | None = None

    @property
    def failed(self) -> bool:
        """True once a build or load has failed in this process (the reference runs instead)."""
        return self._failure is not None

    @property
    def failure(self) -> str | None:
        """Why the kernel is unavailable, or None."""
        return self._failure

    def load(self) -> Any:
        """The loaded entry points, building the library first if no cached one fits; None (one warning)
        on failure."""
        if self._kernel is not None or self._failure is not None:
            return self._kernel
        with self._lock:
            if self._kernel is None and self._failure is None:
                try:
                    self._kernel = self._build_and_open()
                except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as exc:
                    self._failure = str(exc) or type(exc).__name__
                    warnings.warn(f"nlseg: {self.spec.title} is unavailable ({self._failure}); {self.spec.fallback}",
                                  KernelBuildWarning, stacklevel=4)
        return self._kernel

    def _build_and_open(self) -> Any:
        spec = self.spec
        cxx = self._cxx or compiler()
        if cxx is None:
            raise RuntimeError("no C++ compiler found (set CXX, or install g++)")
        flags = compile_flags()
        name = library_name(spec.source.read_text() + HEADER.read_text(), cxx, flags, spec.stem)
        errors = []
        for directory in cache_directories(spec.stem):
            target = directory / name
            try:
                directory.mkdir(parents=True, exist_ok=True)
                with exclusive(directory / f"{target.stem}.lock"):  # one build at a time; the others load it
                    if target.is_file():
                        try:
                            return spec.opener(target)
                        except (OSError, RuntimeError, AttributeError) as exc:  # stale or foreign: rebuild it
                            errors.append(f"{target}: {exc}")
                    start = time.perf_counter()
                    print(f"nlseg: compiling {spec.title} (once; cached in {directory}) ...",
                          file=sys.stderr, flush=True)
                    build_library(cxx, flags, target, spec.source)
                    print(f"nlseg: compiled in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
                    return spec.opener(target)
            except OSError as exc:  # directory not writable: try the next one
                errors.append(f"{directory}: {exc}")
        raise RuntimeError("; ".join(errors))


HEAD_ABI_VERSION = 2  # nlseg_upsampled_ce_abi() of a library this module can call
# logits, target, weight, rows, row_taps, cols, col_taps; B, C, padded C, h, w, H, W; ignore_index, threads,
# GOMP_parallel, omp_get_thread_num; loss, labels, grad (see upsampled_ce.cpp).
HEAD_ARGTYPES = (_pointer_args(7) + [ctypes.c_long] * 7 + [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
                 + _pointer_args(3))


@dataclass(frozen=True)
class LoadedHead:
    """The training-head library's float32 entry point, its channel padding and PyTorch's OpenMP runtime."""

    entry: ctypes._CFuncPtr
    lanes: int  # the logits' channels are padded to a multiple of this
    openmp: tuple[int, int] | None  # GOMP_parallel, omp_get_thread_num


def open_head_library(path: Path) -> LoadedHead:
    """Load the training-head library ``path`` (``upsampled_ce.cpp``); RuntimeError if its ABI differs."""
    lib = ctypes.CDLL(str(path))
    if lib.nlseg_upsampled_ce_abi() != HEAD_ABI_VERSION:
        raise RuntimeError(f"{path} has ABI {lib.nlseg_upsampled_ce_abi()}, expected {HEAD_ABI_VERSION}")
    entry = lib.nlseg_upsampled_ce_f32
    entry.argtypes, entry.restype = HEAD_ARGTYPES, ctypes.c_int
    lib.nlseg_upsampled_ce_lanes.restype = ctypes.c_long
    return LoadedHead(entry, lib.nlseg_upsampled_ce_lanes(), openmp_runtime())


HEAD = LibrarySpec(Path(__file__).with_name("upsampled_ce.cpp"), "the CPU training-head kernel", "nlseg_head_cpu",
                   open_head_library, "the real-time segmenter's training head runs on PyTorch's upsampling and "
                   "cross-entropy (slower, same results)")

LIBRARY = KernelLibrary()
HEAD_LIBRARY = KernelLibrary(spec=HEAD)
