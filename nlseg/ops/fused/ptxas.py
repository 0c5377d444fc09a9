"""Resource report of a compiled kernel's PTX from the ptxas that ships inside Triton's wheel (no GPU needed).

``ptxas -v`` assembles the PTX for one GPU and prints, per entry point, the registers per
thread, the stack frame and the bytes spilled to local memory. Triton's own dynamic shared
memory (:attr:`nlseg.ops.fused.aot.AotKernel.shared_mem`) is not in the PTX's static
declarations, so the report pairs the two. Used by benchmarks/ptxas_report.py and the tests
of the TensorRT plugin's kernels.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PtxasReport:
    """What ptxas reports for one entry point assembled for ``gpu`` (``sm_80``, ``sm_90a``, ...)."""

    gpu: str
    registers: int
    spill_stores: int
    spill_loads: int
    stack_frame: int
    static_shared: int
    ptxas_version: str

    @property
    def spills(self) -> bool:
        return bool(self.spill_stores or self.spill_loads)


def bundled_ptxas(arch: int) -> Path:
    """The ptxas Triton uses for compute capability ``arch`` (its wheel's ``backends/nvidia/bin``)."""
    from triton.backends.nvidia import compiler

    get = getattr(compiler, "get_ptxas", None)
    if get is None:  # Triton 3.2
        return Path(compiler._path_to_binary("ptxas")[0])
    tool = get(arch) if inspect.signature(get).parameters else get()
    return Path(tool.path)


def ptx_gpu(ptx: str) -> str:
    """The ``.target`` of ``ptx`` (``sm_90a`` for Triton's Hopper kernels)."""
    match = re.search(r"^\s*\.target\s+(sm_\w+)", ptx, re.M)
    if match is None:
        raise ValueError("no .target directive in the PTX")
    return match.group(1)


def assemble(ptx: str, entry: str) -> PtxasReport:
    """Assemble ``ptx`` for its own target with ptxas -v; RuntimeError with ptxas's message if it fails."""
    gpu = ptx_gpu(ptx)
    ptxas = bundled_ptxas(int(re.sub(r"\D", "", gpu)))
    with tempfile.TemporaryDirectory(prefix="nlseg-ptxas-") as tmp:
        source = Path(tmp) / "kernel.ptx"
        source.write_text(ptx)
        result = subprocess.run([str(ptxas), "-v", f"--gpu-name={gpu}", str(source), "-o", str(Path(tmp) / "k.cubin")],
                                capture_output=True, text=True)
        version = subprocess.run([str(ptxas), "--version"], capture_output=True, text=True).stdout
    log = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"ptxas failed for {gpu}: {log.strip()[-2000:]}")
    return parse_report(log, entry, gpu, (re.findall(r"release (\S+),", version) or ["?"])[0])


def parse_report(log: str, entry: str, gpu: str, version: str) -> PtxasReport:
    """The figures of ``entry`` in a ``ptxas -v`` log."""
    section = log[log.index(f"Function properties for {entry}"):]
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", section)
    used = re.search(r"Used (\d+) registers", section)
    smem = re.search(r"(\d+) bytes smem", section.split("Compile time")[0])
    if frame is None or used is None:
        raise ValueError(f"no register report for {entry} in the ptxas log")
    return PtxasReport(gpu, int(used.group(1)), int(frame.group(2)), int(frame.group(3)), int(frame.group(1)),
                       int(smem.group(1)) if smem else 0, version)
