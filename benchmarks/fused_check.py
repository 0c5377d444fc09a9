"""One-call GPU check of the fused Triton kernel (issue 6): correctness, AOT PTX, tiles, benchmark.

Run from the repository root on a CUDA machine, without TRITON_INTERPRET (about 6-8 minutes
on an H100/H200, most of it the benchmark's one process per case):

    PYTHONPATH=. python3 benchmarks/fused_check.py 2>&1 | tee fused_check.log

1. correctness on CUDA against the float64 reference: forward and the four input gradients,
   for frac/invfrac (s = 0.25, 0.5, 0.75) and log in float32 and bfloat16 (three of them in
   float16 and float64), with coincident embeddings; Nonlocal-Block-sized cases (90x160);
2. the ahead-of-time PTX (sm_80, sm_90) and, on an sm_90 device, that PTX loaded through
   the CUDA driver and launched in TensorRT's argument order (inputs, N, M, output, then
   Triton's two scratch pointers as null), compared with the reference;
3. a sweep of forward and backward tile shapes (bfloat16 frac at 180x320);
4. benchmarks/pairwise.py in float32, bfloat16 and float16 and the issue's targets.

``--sections 1`` runs only the correctness section (tests/test_triton_compiled.py does).
Exits 1 when a correctness check fails.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import torch

from nlseg.ops.omega import KernelParams
from nlseg.ops.reference import pairwise_reference

# (forward, gradient) relative-error limits, max |error| / max |reference|.
TOLERANCES = {torch.float64: (1e-10, 1e-9), torch.float32: (1e-4, 1e-3), torch.float16: (5e-3, 2e-2),
              torch.bfloat16: (3e-2, 6e-2)}
KERNEL_S = [("frac", 0.5), ("frac", 0.25), ("frac", 0.75), ("invfrac", 0.5), ("invfrac", 0.25), ("log", 0.5)]


def rel_err(a: torch.Tensor | None, b: torch.Tensor | None) -> float:
    if a is None or b is None:
        return 0.0 if a is None and b is None or (a if b is None else b).abs().max() == 0 else float("inf")
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-300)).item()


def random_inputs(b: int, n_q: int, m: int, c_embed: int, c: int, seed: int, coincide: int = 0) -> list[torch.Tensor]:
    g = torch.Generator(device="cuda").manual_seed(seed)
    theta = torch.randn(b, n_q, c_embed, device="cuda", dtype=torch.float64, generator=g)
    # Row norms over a 4x range; u stays well inside float16's normal range (it underflows, for
    # the reference too, when the distances are 10x larger: d^-3 ~ 1e-3 times λ c / M).
    theta = theta * (1 + 3 * torch.rand(b, n_q, 1, device="cuda", dtype=torch.float64, generator=g))
    phi = torch.randn(b, m, c_embed, device="cuda", dtype=torch.float64, generator=g)
    phi[:, :coincide] = theta[:, : 3 * coincide : 3]  # θ_i = φ_j exactly for these pairs
    values = torch.randn(b, m, c, device="cuda", dtype=torch.float64, generator=g)
    x = torch.randn(b, n_q, c, device="cuda", dtype=torch.float64, generator=g)
    return [theta, phi, values, x]


def check_case(kernel: str, s: float, dtype: torch.dtype, shape: tuple[int, ...], seed: int,
               fp32_precision: str = "tf32x3") -> tuple[float, float, bool]:
    """(forward error, worst gradient error, passed) of impl='triton' against the reference."""
    from nlseg.ops.fused.function import fused_update

    base = random_inputs(*shape, seed=seed, coincide=min(20, shape[2] // 2))
    mine = [t.to(dtype).requires_grad_() for t in base]
    weight = torch.randn(shape[0], shape[1], shape[4], device="cuda", dtype=torch.float64)
    u = fused_update(*mine, KernelParams(kernel, s=s), fp32_precision=fp32_precision)
    (u.double() * weight).sum().backward()
    ref = [t.detach().double().requires_grad_() for t in mine]
    u_ref = pairwise_reference(*ref, KernelParams(kernel, s=s))
    (u_ref * weight).sum().backward()
    fwd = rel_err(u, u_ref)
    grad = max(rel_err(a.grad, b.grad) for a, b in zip(mine, ref))
    fwd_tol, grad_tol = TOLERANCES[dtype]
    finite = bool(torch.isfinite(u).all()) and all(t.grad is None or bool(torch.isfinite(t.grad).all()) for t in mine)
    return fwd, grad, finite and fwd < fwd_tol and grad < grad_tol


def section_correctness() -> bool:
    print("## 1. Correctness on CUDA against the float64 reference\n")
    print("| kernel | s | dtype | shape (B,N,M,C',C) | forward err | gradient err | |")
    print("|---|---:|---|---|---:|---:|---|")
    ok = True
    cases = [(k, s, d, (2, 1000, 333, 32, 64), "tf32x3") for k, s in KERNEL_S for d in (torch.float32, torch.bfloat16)]
    cases += [(k, s, d, (2, 1000, 333, 32, 64), "tf32x3") for k, s in (("frac", 0.5), ("invfrac", 0.25), ("log", 0.5))
              for d in (torch.float16, torch.float64)]
    cases += [("frac", 0.5, torch.float32, (2, 1000, 333, 32, 64), "ieee")]
    cases += [(k, 0.5, d, (1, 14400, 1620, 32, 64), "tf32x3") for k in ("frac", "log")
              for d in (torch.float32, torch.bfloat16, torch.float16)]
    cases += [("frac", 0.5, torch.float32, (3, 37, 23, 20, 17), "tf32x3"),
              ("log", 0.5, torch.bfloat16, (3, 37, 23, 20, 17), "tf32x3")]
    for i, (kernel, s, dtype, shape, precision) in enumerate(cases):
        try:
            fwd, grad, passed = check_case(kernel, s, dtype, shape, seed=i, fp32_precision=precision)
            status = "ok" if passed else "FAIL"
            row = f"{fwd:.1e} | {grad:.1e} | {status}"
        except Exception as e:  # report every case, then fail
            passed, row = False, f" | | FAIL: {type(e).__name__}: {str(e)[:300]}"
        ok &= passed
        name = dtype_name(dtype) + ("" if precision == "tf32x3" or dtype != torch.float32 else f" ({precision})")
        print(f"| {kernel} | {s} | {name} | {shape} | {row} |", flush=True)
    print(f"\ncorrectness: {'PASSED' if ok else 'FAILED'}\n")
    return ok


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def section_aot() -> bool:
    """AOT PTX for sm_80/sm_90; on sm_90, launch it through the driver as TensorRT would."""
    from nlseg.ops.fused.aot import compile_pairwise_forward

    print("## 2. Ahead-of-time PTX (tensorrt.plugin aot_impl)\n")
    ok = True
    for target in ("sm_80", "sm_90"):
        for kernel, dtype in (("frac", torch.float16), ("log", torch.bfloat16)):
            t0 = time.perf_counter()
            k = compile_pairwise_forward(kernel, target=target, dtype=dtype)
            version = re.search(r"^\.version (\S+)", k.ptx, re.M)
            arch = re.search(r"^\.target (\S+)", k.ptx, re.M)
            print(f"- {target} {kernel} {dtype_name(dtype)}: {k.name}, PTX {version and version.group(1)} "
                  f"{arch and arch.group(1)}, {len(k.ptx):,} chars, {k.threads_per_block} threads, "
                  f"{k.shared_mem:,} B shared, {k.ptx_params} params, scratch {k.global_scratch_bytes}+{k.profile_scratch_bytes} B, "
                  f"{time.perf_counter() - t0:.1f} s")
    major, minor = torch.cuda.get_device_capability()
    if (major, minor) != (9, 0):
        print(f"\n(device is sm_{major}{minor}: the PTX launch check needs sm_90)\n")
        return ok
    try:
        ok &= launch_aot_ptx()
    except ImportError as e:
        print(f"\nPTX launch check skipped: {e}\n")
    return ok


def launch_aot_ptx() -> bool:
    """Load the sm_90 PTX with CuPy (the CUDA driver JIT, as TensorRT does) and launch it."""
    import cupy
    import numpy as np

    from nlseg.ops.fused.aot import compile_pairwise_forward
    from nlseg.ops.fused.function import prepare_inputs, squared_norms

    ok = True
    for kernel, dtype in (("frac", torch.float16), ("log", torch.bfloat16), ("invfrac", torch.float32)):
        k = compile_pairwise_forward(kernel, target="sm_90", dtype=dtype)
        theta, phi, values, x = (t.to(dtype) for t in random_inputs(2, 3001, 777, 32, 64, seed=7, coincide=10))
        p = prepare_inputs(theta, phi, values, x)
        q_sq, k_sq = squared_norms(p.theta, torch.float32), squared_norms(p.phi, torch.float32)
        out = torch.empty_like(p.x)
        with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
            f.write(k.ptx)
        function = cupy.RawModule(path=f.name).get_function(k.name)
        os.unlink(f.name)
        function.max_dynamic_shared_size_bytes = k.shared_mem
        pointers = [t.data_ptr() for t in (p.theta, p.phi, q_sq, k_sq, p.values, p.x, p.log2_scale)]
        args = [np.uint64(ptr) for ptr in pointers] + [np.int32(theta.shape[1]), np.int32(phi.shape[1])]
        args += [np.uint64(out.data_ptr())] + [np.uint64(0)] * (k.ptx_params - 10)
        torch.cuda.synchronize()
        function(k.grid(theta.shape[0], theta.shape[1])[:2], (k.threads_per_block,), tuple(args),
                 shared_mem=k.shared_mem)
        cupy.cuda.runtime.deviceSynchronize()
        expected = pairwise_reference(*(t.double() for t in (theta, phi, values, x)), KernelParams(kernel))
        err = rel_err(out, expected)
        passed = err < TOLERANCES[dtype][0]
        ok &= passed
        print(f"- PTX launched through the driver: {kernel} {dtype_name(dtype)}, error {err:.1e} "
              f"{'ok' if passed else 'FAIL'}")
    print()
    return ok


def section_tiles() -> None:
    """Forward and backward time of bf16 frac at 180x320 for a few tile shapes."""
    import triton

    from nlseg.ops.fused.function import fused_backward, fused_forward, prepare_inputs
    from nlseg.ops.fused.spec import BACKWARD_TILES, Tiles, forward_tiles, fused_spec

    print("## 3. Tile sweep, bfloat16 frac, 180x320 (N 57,600, M 6,420)\n")
    theta, phi, values, x = (t.to(torch.bfloat16) for t in random_inputs(1, 57600, 6420, 32, 64, seed=3))
    p = prepare_inputs(theta, phi, values, x)
    spec = fused_spec(KernelParams("frac", 0.5, 0.1, 2), torch.float32)
    grad = torch.randn_like(p.x)
    print("| pass | rows × cols, warps, stages | ms | pairs/s | |")
    print("|---|---|---:|---:|---|")
    forward = [Tiles(128, 64, 8, 3), Tiles(128, 64, 8, 2), Tiles(128, 64, 4, 3), Tiles(64, 64, 4, 3),
               Tiles(128, 128, 8, 3), Tiles(64, 128, 4, 3), Tiles(128, 32, 4, 3), Tiles(256, 64, 8, 2)]
    backward = [Tiles(64, 64, 4, 2), Tiles(64, 64, 4, 3), Tiles(128, 64, 8, 2), Tiles(64, 32, 4, 2)]
    _, row_sums = fused_forward(p.theta, p.phi, p.values, p.x, p.log2_scale, spec, row_sums=True)
    for name, configs, default, run in (
        ("forward", forward, forward_tiles(torch.bfloat16, 32, 64),
         lambda t: fused_forward(p.theta, p.phi, p.values, p.x, p.log2_scale, spec, tiles=t)),
        ("backward", backward, BACKWARD_TILES[torch.bfloat16],
         lambda t: fused_backward(grad, p.theta, p.phi, p.values, p.x, p.log2_scale, row_sums, spec, tiles=t)),
    ):
        for tiles in configs:
            label = f"{tiles.block_rows} × {tiles.block_cols}, {tiles.num_warps}, {tiles.num_stages}"
            try:
                ms = triton.testing.do_bench(lambda: run(tiles), warmup=25, rep=100)
                print(f"| {name} | {label} | {ms:.3f} | {57600 * 6420 / ms * 1e3:.2e} | "
                      f"{'default' if tiles == default else ''} |", flush=True)
            except Exception as e:  # a shape that does not fit (registers, shared memory) is reported
                print(f"| {name} | {label} | | | failed: {type(e).__name__}: {str(e)[:120]} |", flush=True)
    print()


BENCHMARK_RUNS = [  # (dtype, grids, --only), most important first: 50 cases of 3-5 s (one process each)
    ("bfloat16", "90x160,180x320,360x640,720x1280",
     "frac, fused;frac s=0.25, fused;invfrac, fused;log, fused;SDPA flash"),
    ("float32", "90x160,180x320", "frac, N×M formed;frac, reference"),
    ("float32", "90x160,180x320,360x640,720x1280", "frac, fused;SDPA, torch"),
    ("float16", "180x320,720x1280", "frac, fused;SDPA flash"),
]


def section_benchmark() -> None:
    print("## 4. benchmarks/pairwise.py\n")
    rows: dict[tuple[str, str, str], tuple[float, float]] = {}
    for dtype, grids, only in BENCHMARK_RUNS:
        cmd = [sys.executable, "benchmarks/pairwise.py", "--device", "cuda", "--dtype", dtype, "--grids", grids,
               "--only", only, "--repeats", "10"]
        print(f"`{' '.join(cmd[1:])}`\n", flush=True)
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        print(out, flush=True)
        rows.update({(dtype, *key): value for key, value in parse_table(out).items()})
    targets(rows)


def parse_table(markdown: str) -> dict[tuple[str, str], tuple[float, float]]:
    """(variant, grid) → (ms, pairs/s) of the timed rows of a benchmarks/pairwise.py table."""
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and cells[4][:1].isdigit():
            rows[(cells[0], cells[1])] = (float(cells[4].replace(",", "")), float(cells[5]))
    return rows


def targets(rows: dict[tuple[str, str, str], tuple[float, float]]) -> None:
    """The issue's targets at 180x320, and whether 360x640 and 720x1280 ran."""
    print("## Targets (issue 6)\n")
    formed = rows.get(("float32", "frac, N×M formed", "180x320"))
    for dtype in ("bfloat16", "float16", "float32"):
        fused = rows.get((dtype, "frac, fused", "180x320"))
        flash = rows.get((dtype, "SDPA flash", "180x320")) or rows.get((dtype, "SDPA, torch's backend", "180x320"))
        if fused and formed:
            print(f"- {dtype}: fused frac {fused[0]:.3f} ms at 180x320 = {formed[0] / fused[0]:.1f}x faster than "
                  f"the formed float32 matrix ({formed[0]:.2f} ms; target >= 25x)")
        if fused and flash:
            print(f"- {dtype}: fused frac runs {fused[1] / flash[1]:.0%} of SDPA's pairs/s at 180x320 (target >= 40%)")
        for grid in ("360x640", "720x1280"):
            ran = rows.get((dtype, "frac, fused", grid))
            if ran:
                print(f"- {dtype}: fused frac at {grid}: {ran[0]:.2f} ms")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="1,2,3,4", help="comma-separated subset of 1,2,3,4")
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise SystemExit("unset TRITON_INTERPRET: this checks the compiled kernels")
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    import triton

    print(f"# fused kernel check: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"triton {triton.__version__}\n", flush=True)
    sections = set(args.sections.split(","))
    ok = True
    if "1" in sections:
        ok &= section_correctness()
    if "2" in sections:
        ok &= section_aot()
    if "3" in sections:
        section_tiles()
    if "4" in sections:
        section_benchmark()
    print("ALL CHECKS PASSED" if ok else "SOME CHECKS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
