"""ptxas's resource report of the TensorRT plugin's kernel for every configuration nlseg builds (no GPU needed).

Compiles the fused forward kernel ahead of time (as the plugin's ``aot_impl`` does, with the
tiles :func:`nlseg.ops.fused.spec.forward_tiles` picks) for C' ∈ {8, 16, 32, 64},
C ∈ {16, 32, 64, 128}, float32 and float16, sm_80 and sm_90, and the distance kernels, then
assembles each PTX with the ptxas bundled in Triton's wheel and prints one Markdown table:
tiles, registers per thread, spilled bytes, stack, Triton's dynamic shared memory, and whether
it is within TensorRT's 48 KiB launch limit without spills. Exits 1 if any configuration is not.

    python benchmarks/ptxas_report.py [--kernels frac,invfrac,log] [--jobs 2] [--json FILE]

Runs without TRITON_INTERPRET (it is removed for the workers). Takes a few minutes on 2 cores
(each configuration is one Triton compilation and one ptxas run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

C_EMBED = (8, 16, 32, 64)
C_VALUE = (16, 32, 64, 128)
DTYPES = ("float32", "float16")
TARGETS = ("sm_80", "sm_90")
KERNEL_PARAMS = {"frac": (0.5, 0.1, 2), "invfrac": (0.25, 0.1, 2), "log": (0.5, 0.1, 2)}


def configurations(kernels: list[str]) -> list[tuple[str, str, str, int, int]]:
    return [(k, d, t, ce, cv) for k in kernels for d in DTYPES for t in TARGETS for ce in C_EMBED for cv in C_VALUE]


def measure(config: tuple[str, str, str, int, int]) -> dict:
    """Compile one configuration and assemble its PTX (in a worker process)."""
    import torch

    from nlseg.ops.fused.aot import compile_pairwise_forward
    from nlseg.ops.fused.ptxas import assemble
    from nlseg.ops.fused.spec import SHARED_MEMORY_LIMIT, forward_tiles

    kernel, dtype, target, c_embed, c_value = config
    s, lam, n = KERNEL_PARAMS[kernel]
    torch_dtype = getattr(torch, dtype)
    start = time.perf_counter()
    k = compile_pairwise_forward(kernel, target=target, dtype=torch_dtype, c_embed=c_embed, c_value=c_value, s=s,
                                 lam=lam, n=n)
    report = assemble(k.ptx, k.name)
    tiles = forward_tiles(torch_dtype, c_embed, c_value)
    return dict(kernel=kernel, dtype=dtype, target=target, c_embed=c_embed, c_value=c_value,
                tiles=[tiles.block_rows, tiles.block_cols, tiles.num_warps, tiles.num_stages], gpu=report.gpu,
                registers=report.registers, spill_stores=report.spill_stores, spill_loads=report.spill_loads,
                stack=report.stack_frame, shared=k.shared_mem + report.static_shared, params=k.ptx_params,
                scratch=[k.global_scratch_bytes, k.profile_scratch_bytes], ptxas=report.ptxas_version,
                ok=k.shared_mem + report.static_shared <= SHARED_MEMORY_LIMIT and not report.spills,
                seconds=round(time.perf_counter() - start, 1))


def table(rows: list[dict]) -> str:
    lines = ["| kernel | dtype | GPU | C' | C | tiles (rows×cols, warps, stages) | registers | spills (st/ld B) "
             "| stack B | shared B | ≤ 48 KiB, no spills |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        rows_, cols, warps, stages = r["tiles"]
        lines.append(f"| {r['kernel']} | {r['dtype']} | {r['gpu']} | {r['c_embed']} | {r['c_value']} | "
                     f"{rows_}×{cols}, {warps}, {stages} | {r['registers']} | {r['spill_stores']}/{r['spill_loads']} "
                     f"| {r['stack']} | {r['shared']:,} | {'yes' if r['ok'] else 'NO'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernels", default="frac,invfrac,log", help="comma-separated subset of frac,invfrac,log")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compilations")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    kernels = [k for k in args.kernels.split(",") if k]
    unknown = sorted(set(kernels) - set(KERNEL_PARAMS))
    if unknown or not kernels:
        parser.error(f"--kernels: expected a subset of {','.join(KERNEL_PARAMS)}, got {args.kernels!r}")
    if args.jobs < 1:
        parser.error(f"--jobs: need at least 1, got {args.jobs}")
    os.environ.pop("TRITON_INTERPRET", None)
    import triton

    from nlseg.runtime.device import cpu_model

    configs = configurations(kernels)
    start = time.perf_counter()
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(measure, c) for c in configs]
        for i, future in enumerate(as_completed(futures), 1):
            rows.append(future.result())
            elapsed = time.perf_counter() - start
            print(f"\r{i}/{len(configs)} configurations, {i / elapsed:.2f}/s, ETA {(len(configs) - i) * elapsed / i:.0f} s",
                  end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    key = {k: i for i, k in enumerate(kernels)}
    rows.sort(key=lambda r: (key[r["kernel"]], r["dtype"], r["target"], r["c_embed"], r["c_value"]))
    bad = [r for r in rows if not r["ok"]]
    ptxas = ", ".join(sorted({f"{r['gpu']}: ptxas {r['ptxas']}" for r in rows}))
    print(f"# ptxas report: {len(rows)} configurations, Triton {triton.__version__} ({ptxas}), "
          f"{cpu_model()} ({platform.machine()}), {time.perf_counter() - start:.0f} s\n")
    print(table(rows))
    print(f"\n{len(rows) - len(bad)} of {len(rows)} within 48 KiB of shared memory without spills; "
          f"max registers {max(r['registers'] for r in rows)}, max shared {max(r['shared'] for r in rows):,} B; "
          f"kernel parameters {sorted({r['params'] for r in rows})}, scratch bytes "
          f"{sorted({tuple(r['scratch']) for r in rows})}")
    if args.json:
        args.json.write_text(json.dumps({"triton": triton.__version__, "rows": rows}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
