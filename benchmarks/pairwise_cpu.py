"""Forward + backward of the distance kernels on the CPU: the chunked reference against the C++ kernel.

Query grids HxW, keys max-pooled by 3 (M = ⌈H/3⌉·⌈W/3⌉), C' = 32, C = 64, batch 1; 90x160 is the
BDD100K size of the thesis (N = 14,400, M = 1,620). ``reference`` is ``impl="reference"`` (the
chunked oracle with activation checkpointing, the CPU default before the C++ kernel), ``cpu``
is ``impl="cpu"`` (nlseg/ops/cpu). Per case the two run interleaved (reference, cpu, reference,
cpu, ...) in one process, so a busy machine slows both alike; the table gives median
milliseconds of forward + backward (the gradients of θ, φ, v and x) and of the forward alone
(no autograd), their ratios (and, less sensitive to other jobs, the ratio of the fastest runs), and the peak memory of one forward + backward, measured in a fresh
process per variant (growth of the resident set's high-water mark, VmHWM). ``--threads`` runs
the table once per thread count (default: PyTorch's, one per core). The last line says how much
CPU other processes took during the run (from /proc/stat), i.e. whether the machine was busy.
The kernel's one-time build is timed into an empty cache first.

    python benchmarks/pairwise_cpu.py                          # 90x160, 60x80, 30x40; frac, invfrac, log
    python benchmarks/pairwise_cpu.py --grids 90x160 --kernels frac --s 0.25 --threads 2,1 --repeats 5
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from nlseg.ops import pairwise_update
from nlseg.ops.cpu.build import KernelLibrary
from nlseg.runtime.device import cpu_model

POOL, C_EMBED, C_VALUE = 3, 32, 64
VARIANTS = ("reference", "cpu")


def parse_grid(name: str) -> tuple[int, int]:
    h, _, w = name.partition("x")
    if not (h.isdigit() and w.isdigit()):
        raise SystemExit(f"--grids: {name!r} is not HxW")
    return int(h), int(w)


def sizes(grid: tuple[int, int]) -> tuple[int, int]:
    """(N, M) of a query grid with keys pooled by POOL (ceil mode)."""
    h, w = grid
    return h * w, -(-h // POOL) * -(-w // POOL)


def make_inputs(n_q: int, m: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, n_q, C_EMBED, generator=g), torch.randn(1, m, C_EMBED, generator=g),
            torch.randn(1, m, C_VALUE, generator=g), torch.randn(1, n_q, C_VALUE, generator=g))


def forward_backward(impl: str, kernel: str, s: float, inputs: tuple[torch.Tensor, ...]) -> None:
    """u and the gradients of all four inputs: a training step's share of one pairwise update."""
    leaves = [t.detach().requires_grad_() for t in inputs]
    u = pairwise_update(*leaves, kernel, s=s, impl=impl)
    torch.autograd.grad(u, leaves, torch.ones_like(u), allow_unused=True)


def forward_only(impl: str, kernel: str, s: float, inputs: tuple[torch.Tensor, ...]) -> None:
    with torch.no_grad():
        pairwise_update(*inputs, kernel, s=s, impl=impl)


def interleaved_ms(calls: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
    """Sorted ms of each call's timed repeats, the calls alternating repeat by repeat (after one warm-up each)."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: sorted(t) for name, t in times.items()}


def status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def peak_case(impl: str, kernel: str, s: float, n_q: int, m: int, threads: int, queue: mp.Queue) -> None:
    """Child process: growth of the peak RSS (bytes) during one forward + backward.

    The high-water mark is reset first (/proc/self/clear_refs); ru_maxrss would not do: it keeps
    the RSS the process had before exec, i.e. the benchmark parent's.
    """
    torch.set_num_threads(threads)
    forward_backward(impl, kernel, s, make_inputs(32, 16))  # loads the kernel, warms the allocator
    inputs = make_inputs(n_q, m)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status_bytes("VmRSS")
    forward_backward(impl, kernel, s, inputs)
    queue.put(max(status_bytes("VmHWM") - base, 0))


def peak_mb(impl: str, kernel: str, s: float, n_q: int, m: int, threads: int) -> str:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=peak_case, args=(impl, kernel, s, n_q, m, threads, queue))
    proc.start()
    proc.join()
    return f"{queue.get() / 2**20:,.0f}" if proc.exitcode == 0 and not queue.empty() else "failed"


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds all processes have used, CPU seconds this process and its children have used)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    own = sum(getattr(resource.getrusage(who), attr) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for attr in ("ru_utime", "ru_stime"))
    return busy / os.sysconf("SC_CLK_TCK"), own


def build_seconds() -> float:
    """Seconds to compile and load the C++ kernel into an empty cache (what a fresh machine pays once)."""
    previous = os.environ.get("TORCH_EXTENSIONS_DIR")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCH_EXTENSIONS_DIR"] = cache
        try:
            start = time.perf_counter()
            library = KernelLibrary()
            if library.load() is None:
                raise SystemExit(f"the CPU kernel cannot be built here: {library.failure}")
            return time.perf_counter() - start
        finally:
            if previous is None:
                del os.environ["TORCH_EXTENSIONS_DIR"]
            else:
                os.environ["TORCH_EXTENSIONS_DIR"] = previous


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", default="90x160,60x80,30x40", help="comma-separated HxW query grids")
    parser.add_argument("--kernels", default="frac,invfrac,log", help="comma-separated: frac, invfrac, log")
    parser.add_argument("--s", type=float, default=0.5, help="exponent s of frac and invfrac (default 0.5)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per variant and case (default 3)")
    parser.add_argument("--threads", default=str(torch.get_num_threads()),
                        help="comma-separated thread counts, one table each (default: PyTorch's, %(default)s)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    args = parser.parse_args()
    kernels = [k.strip() for k in args.kernels.split(",")]
    unknown = [k for k in kernels if k not in ("frac", "invfrac", "log")]
    if unknown:
        raise SystemExit(f"--kernels: unknown kernel {unknown[0]!r}; expected frac, invfrac or log")
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    grids = [(name, parse_grid(name)) for name in args.grids.split(",")]
    try:
        thread_counts = [int(t) for t in args.threads.split(",")]
    except ValueError:
        raise SystemExit(f"--threads: {args.threads!r} is not a comma-separated list of integers") from None
    if min(thread_counts) < 1:
        raise SystemExit("--threads: thread counts must be at least 1")

    build = build_seconds()
    start_wall, (start_all, start_own) = time.perf_counter(), cpu_seconds()
    print(f"# distance kernels on the CPU: {cpu_model()}, torch {torch.__version__}, float32, batch 1, "
          f"pool {POOL}, C'={C_EMBED}, C={C_VALUE}, s={args.s} (frac, invfrac)\n")
    print(f"C++ kernel build into an empty cache: {build:.1f} s (once per machine; cached after)\n")
    print("| kernel | grid | N | M | threads | fwd+bwd reference ms | fwd+bwd cpu ms | ratio | ratio of minima "
          "| fwd reference ms | fwd cpu ms | ratio | peak MB reference | peak MB cpu |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for grid_name, grid in grids:
            n_q, m = sizes(grid)
            inputs = make_inputs(n_q, m)
            for kernel in kernels:
                both = interleaved_ms({impl: (lambda impl=impl: forward_backward(impl, kernel, args.s, inputs))
                                       for impl in VARIANTS}, args.repeats)
                fwd = interleaved_ms({impl: (lambda impl=impl: forward_only(impl, kernel, args.s, inputs))
                                      for impl in VARIANTS}, args.repeats)
                peaks = (["", ""] if args.no_memory
                         else [peak_mb(impl, kernel, args.s, n_q, m, threads) for impl in VARIANTS])
                ref, cpu = statistics.median(both["reference"]), statistics.median(both["cpu"])
                ref_fwd, cpu_fwd = statistics.median(fwd["reference"]), statistics.median(fwd["cpu"])
                print(f"| {kernel} | {grid_name} | {n_q:,} | {m:,} | {threads} | {ref:,.0f} | {cpu:,.0f} "
                      f"| {ref / cpu:.1f}x | {both['reference'][0] / both['cpu'][0]:.1f}x | {ref_fwd:,.0f} "
                      f"| {cpu_fwd:,.0f} | {ref_fwd / cpu_fwd:.1f}x | {peaks[0]} | {peaks[1]} |", flush=True)
    end_all, end_own = cpu_seconds()
    cores = os.cpu_count() or 1
    others = max((end_all - start_all) - (end_own - start_own), 0.0) / (time.perf_counter() - start_wall)
    verdict = ("busy: other jobs slowed both variants, absolute times are inflated and ratios noisy" if others > 0.25
               else "quiet")
    print(f"\nother processes used {others:.2f} of the {cores} cores on average during the run ({verdict})")

if __name__ == "__main__":
    main()
