"""Time and peak memory of the pairwise-update implementations on Nonlocal-Block shapes.

Query grids 90x160 … 720x1280 (N positions; any HxW may be given), keys pooled with pool 3
(M = ⌈H/3⌉·⌈W/3⌉), C' = 32, C = 64, batch 1 (docs/design.md §3). Each case runs in a fresh process
so its peak memory is its own (CUDA: max_memory_allocated; CPU: peak RSS above the process's
RSS before the call). Cases whose formed N×M matrix would not fit, or with more pairs than
--max-pairs, are listed as skipped with the reason. Prints a Markdown table.

Variants: the formed and chunked reference, the associative dot, the fused Triton kernel
(impl="triton"), and torch's scaled_dot_product_attention on the same shapes (one head:
query N×C', key M×C', value M×C) as a yardstick. "SFU bound" is the fraction of the
special-function-unit ceiling, about 4e12 ops/s on H100/H200 (docs/design.md §3), given the
special-function ops per pair (1 rsqrt, 1 log2, or log2 + exp2; softmax: 1 exp2).

    python benchmarks/pairwise.py                       # CPU, the sizes that fit
    python benchmarks/pairwise.py --device cuda --dtype bfloat16
    python benchmarks/pairwise.py --device cuda --only "frac, fused;SDPA flash"
    TRITON_INTERPRET=1 python benchmarks/pairwise.py --grids 12x24 --only "frac, fused"  # CPU interpreter
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from nlseg.ops import KernelParams, pairwise_update
from nlseg.ops.reference import pairwise_reference
from nlseg.runtime.device import describe_device

GRIDS = {"90x160": (90, 160), "180x320": (180, 320), "360x640": (360, 640), "720x1280": (720, 1280)}
POOL, C_EMBED, C_VALUE = 3, 32, 64
SFU_OPS_PER_S = 4e12  # special-function unit ceiling of H100/H200 (docs/design.md §3)


@dataclass(frozen=True)
class Variant:
    """A benchmarked implementation: how to call it and whether it forms the N×M matrix."""

    name: str
    kernel: str
    call: Callable[..., torch.Tensor]
    forms_matrix: bool
    special_ops: float | None = None  # special-function ops per pair, for the SFU-bound column
    only_dtype: str | None = None


def fused(kernel: str, s: float = 0.5, fp32_precision: str | None = None) -> Callable[..., torch.Tensor]:
    """impl="triton"; ``fp32_precision`` picks the float32 dot precision of the fused kernel."""
    if fp32_precision is None:
        return lambda t, p, v, x: pairwise_update(t, p, v, x, kernel, s=s, impl="triton")

    def call(t: torch.Tensor, p: torch.Tensor, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        from nlseg.ops.fused.function import fused_update  # imports triton: only in the case's process

        return fused_update(t, p, v, x, KernelParams(kernel, s=s), fp32_precision=fp32_precision)

    return call


def fused_forward_backward(t: torch.Tensor, p: torch.Tensor, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A training step's share: u and the gradients of all four inputs (frac, impl="triton")."""
    with torch.enable_grad():
        inputs = [a.detach().requires_grad_() for a in (t, p, v, x)]
        u = pairwise_update(*inputs, "frac", impl="triton")
        torch.autograd.grad(u, inputs, torch.ones_like(u))
    return u


def sdpa(t: torch.Tensor, p: torch.Tensor, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """softmax(θφᵀ/√C') v with one head, the backend torch picks (C' ≠ C rules out flash)."""
    return F.scaled_dot_product_attention(t.unsqueeze(1), p.unsqueeze(1), v.unsqueeze(1)).squeeze(1)


def sdpa_flash(t: torch.Tensor, p: torch.Tensor, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Flash attention: θ, φ zero-padded to C channels (flash needs one head size; padding included)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    pad = (0, v.shape[-1] - t.shape[-1])
    q, k = F.pad(t, pad).unsqueeze(1), F.pad(p, pad).unsqueeze(1)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        return F.scaled_dot_product_attention(q, k, v.unsqueeze(1), scale=t.shape[-1] ** -0.5).squeeze(1)


VARIANTS = [
    Variant("dot, N×M formed", "dot",
            lambda t, p, v, x: pairwise_reference(t, p, v, x, KernelParams("dot"), max_chunk_elements=None), True),
    Variant("dot, associative", "dot", lambda t, p, v, x: pairwise_update(t, p, v, x, "dot", impl="associative"), False),
    Variant("frac, N×M formed", "frac",
            lambda t, p, v, x: pairwise_reference(t, p, v, x, KernelParams("frac"), max_chunk_elements=None), True),
    Variant("frac, reference (chunked)", "frac",
            lambda t, p, v, x: pairwise_update(t, p, v, x, "frac", impl="reference"), False),
    Variant("invfrac, reference (chunked)", "invfrac",
            lambda t, p, v, x: pairwise_update(t, p, v, x, "invfrac", impl="reference"), False),
    Variant("log, reference (chunked)", "log",
            lambda t, p, v, x: pairwise_update(t, p, v, x, "log", impl="reference"), False),
    Variant("frac, fused", "frac", fused("frac"), False, 1),
    Variant("frac, fused, ieee fp32 dots", "frac", fused("frac", fp32_precision="ieee"), False, 1, "float32"),
    Variant("frac s=0.25, fused", "frac", fused("frac", s=0.25), False, 2),
    Variant("invfrac, fused", "invfrac", fused("invfrac"), False, 1),
    Variant("log, fused", "log", fused("log"), False, 1),
    Variant("frac, fused fwd+bwd", "frac", fused_forward_backward, False, 3),
    Variant("SDPA flash", "sdpa", sdpa_flash, False, 1),
    Variant("SDPA, torch's backend", "sdpa", sdpa, False, 1),
]


def parse_grid(name: str) -> tuple[int, int]:
    """A named grid of GRIDS or any ``HxW``."""
    if name in GRIDS:
        return GRIDS[name]
    h, _, w = name.partition("x")
    if not (h.isdigit() and w.isdigit()):
        raise SystemExit(f"grid {name!r} is neither one of {', '.join(GRIDS)} nor HxW")
    return int(h), int(w)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--grids", default=",".join(GRIDS), help="comma-separated: " + ", ".join(GRIDS) + " or HxW")
    parser.add_argument("--only", default=None,
                        help="';'-separated prefixes: run only the variants whose name starts with one")
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

    print(f"# pairwise update, {args.device} ({describe_device(args.device)}), {args.dtype}, batch 1, "
          f"pool {POOL}, C'={C_EMBED}, C={C_VALUE}, torch {torch.__version__}\n")
    print("| variant | grid | N | M | ms | pairs/s | SFU bound | peak MB | note |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    ctx = mp.get_context("spawn")
    wanted = [w.strip() for w in args.only.split(";")] if args.only else None
    for grid_name in args.grids.split(","):
        grid = parse_grid(grid_name)
        n_q, m = shapes(grid)
        pairs = n_q * m
        for index, variant in enumerate(VARIANTS):
            if wanted and not variant.name.startswith(tuple(wanted)):
                continue
            row = f"| {variant.name} | {grid_name} | {n_q:,} | {m:,} |"
            if variant.only_dtype and variant.only_dtype != args.dtype:
                continue
            matrix_bytes = 4 * pairs * (3 if variant.kernel != "dot" else 1)
            if variant.forms_matrix and matrix_bytes > budget:
                print(f"{row} | | | | skipped: the N×M matrix needs {matrix_bytes / 2**30:,.0f} GiB |")
                continue
            if variant.kernel != "dot" or variant.forms_matrix:
                if pairs > max_pairs:
                    print(f"{row} | | | | skipped: {pairs:.1e} pairs > --max-pairs {max_pairs:.0e} |")
                    continue
            queue: mp.Queue = ctx.Queue()
            proc = ctx.Process(target=run_case, args=(index, grid, args.device, args.dtype, repeats, queue))
            proc.start()
            proc.join()
            if proc.exitcode != 0 or queue.empty():
                print(f"{row} | | | | failed (exit {proc.exitcode}) |")
                continue
            ms, peak = queue.get()
            rate = pairs / (ms / 1e3)
            bound = f"{rate * variant.special_ops / SFU_OPS_PER_S:.0%}" if cuda and variant.special_ops else ""
            print(f"{row} {ms:,.3f} | {rate:.2e} | {bound} | {peak / 2**20:,.0f} | |", flush=True)


if __name__ == "__main__":
    main()
