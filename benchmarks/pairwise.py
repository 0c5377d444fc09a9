"""Time and peak memory of the pairwise-update implementations on Nonlocal-Block shapes.

Query grids 90x160 … 720x1280 (N positions), keys pooled with pool 3 (M = ⌈H/3⌉·⌈W/3⌉),
C' = 32, C = 64, batch 1 (DESIGN §3). Each case runs in a fresh process so its peak memory
is its own (CUDA: max_memory_allocated; CPU: peak RSS above the process's RSS before the
call). Cases whose formed N×M matrix would not fit, or with more pairs than --max-pairs,
are listed as skipped with the reason. Prints a Markdown table.

    python benchmarks/pairwise.py                       # CPU, the sizes that fit
    python benchmarks/pairwise.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from nlseg.ops import pairwise_update
from nlseg.ops.reference import pairwise_reference

GRIDS = {"90x160": (90, 160), "180x320": (180, 320), "360x640": (360, 640), "720x1280": (720, 1280)}
POOL, C_EMBED, C_VALUE = 3, 32, 64


@dataclass(frozen=True)
class Variant:
    """A benchmarked implementation: how to call it and whether it forms the N×M matrix."""

    name: str
    kernel: str
    call: Callable[..., torch.Tensor]
    forms_matrix: bool


VARIANTS = [
    Variant("dot, N×M formed", "dot",
            lambda t, p, v, x: pairwise_reference(t, p, v, x, "dot", max_chunk_elements=None), True),
    Variant("dot, associative", "dot", lambda t, p, v, x: pairwise_update(t, p, v, x, "dot", impl="associative"), False),
    Variant("frac, N×M formed", "frac",
            lambda t, p, v, x: pairwise_reference(t, p, v, x, "frac", max_chunk_elements=None), True),
    Variant("frac, reference (chunked)", "frac",
            lambda t, p, v, x: pairwise_update(t, p, v, x, "frac", impl="reference"), False),
    Variant("invfrac, reference (chunked)", "invfrac",
            lambda t, p, v, x: pairwise_update(t, p, v, x, "invfrac", impl="reference"), False),
    Variant("log, reference (chunked)", "log",
            lambda t, p, v, x: pairwise_update(t, p, v, x, "log", impl="reference"), False),
]


def shapes(grid: tuple[int, int]) -> tuple[int, int]:
    h, w = grid
    return h * w, -(-h // POOL) * -(-w // POOL)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def run_case(variant_index: int, grid: tuple[int, int], device: str, dtype_name: str, repeats: int, queue: mp.Queue) -> None:
    """Child process: time one (variant, grid) case and report (median ms, peak bytes)."""
    variant = VARIANTS[variant_index]
    dtype = getattr(torch, dtype_name)
    n_q, m = shapes(grid)
    g = torch.Generator(device=device).manual_seed(0)
    theta = torch.randn(1, n_q, C_EMBED, device=device, dtype=dtype, generator=g)
    phi = torch.randn(1, m, C_EMBED, device=device, dtype=dtype, generator=g)
    values = torch.randn(1, m, C_VALUE, device=device, dtype=dtype, generator=g)
    x = torch.randn(1, n_q, C_VALUE, device=device, dtype=dtype, generator=g)
    cuda = device.startswith("cuda")
    with torch.no_grad():
        if cuda:
            variant.call(theta, phi, values, x)  # warm-up
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            base = rss_bytes()
        times = []
        for _ in range(repeats):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                variant.call(theta, phi, values, x)
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                variant.call(theta, phi, values, x)
                times.append((time.perf_counter() - t0) * 1e3)
        if cuda:
            peak = torch.cuda.max_memory_allocated() - base
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    queue.put((statistics.median(times), max(peak, 0)))


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--grids", default=",".join(GRIDS), help="comma-separated subset of " + ", ".join(GRIDS))
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per case (default 3 CPU, 20 CUDA)")
    parser.add_argument("--max-pairs", type=float, default=None,
                        help="skip cases with more N·M pairs (default 2e9 on CPU, 1e12 on CUDA)")
    parser.add_argument("--max-memory-gb", type=float, default=None,
                        help="skip formed-matrix cases needing more (default: 60%% of free device memory)")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    repeats = args.repeats or (20 if cuda else 3)
    max_pairs = args.max_pairs or (1e12 if cuda else 2e9)
    if args.max_memory_gb is not None:
        budget = args.max_memory_gb * 2**30
    elif cuda:
        budget = 0.6 * torch.cuda.mem_get_info(args.device)[0]
    else:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))
        budget = 0.6 * available

    print(f"# pairwise update, {args.device} ({machine(args.device)}), {args.dtype}, batch 1, "
          f"pool {POOL}, C'={C_EMBED}, C={C_VALUE}, torch {torch.__version__}\n")
    print("| variant | grid | N | M | ms | pairs/s | peak MB | note |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    ctx = mp.get_context("spawn")
    for grid_name in args.grids.split(","):
        grid = GRIDS[grid_name]
        n_q, m = shapes(grid)
        pairs = n_q * m
        for index, variant in enumerate(VARIANTS):
            row = f"| {variant.name} | {grid_name} | {n_q:,} | {m:,} |"
            matrix_bytes = 4 * pairs * (3 if variant.kernel != "dot" else 1)
            if variant.forms_matrix and matrix_bytes > budget:
                print(f"{row} | | | skipped: the N×M matrix needs {matrix_bytes / 2**30:,.0f} GiB |")
                continue
            if variant.kernel != "dot" or variant.forms_matrix:
                if pairs > max_pairs:
                    print(f"{row} | | | skipped: {pairs:.1e} pairs > --max-pairs {max_pairs:.0e} |")
                    continue
            queue: mp.Queue = ctx.Queue()
            proc = ctx.Process(target=run_case, args=(index, grid, args.device, args.dtype, repeats, queue))
            proc.start()
            proc.join()
            if proc.exitcode != 0 or queue.empty():
                print(f"{row} | | | failed (exit {proc.exitcode}) |")
                continue
            ms, peak = queue.get()
            print(f"{row} {ms:,.2f} | {pairs / (ms / 1e3):.2e} | {peak / 2**20:,.0f} | |", flush=True)


if __name__ == "__main__":
    main()
