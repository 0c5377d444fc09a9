"""The compiled (not interpreted) fused kernels: AOT PTX without a GPU, and CUDA when there is one.

Each test runs a fresh Python process without TRITON_INTERPRET, which the rest of the test
session sets (conftest.py) and which decides, once per process, how the kernels are built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton", reason="the fused kernel needs the triton package (pip install 'nlseg[dev]')")

ROOT = Path(__file__).resolve().parents[1]

COMPILE_SCRIPT = r"""
import json, re, sys
import torch
from nlseg.ops.fused import aot
from nlseg.ops.fused.function import precision_plan, shape_constexprs, spec_constexprs
from nlseg.ops.fused.kernels import pairwise_backward_cols_kernel, pairwise_backward_rows_kernel
from nlseg.ops.fused.spec import BACKWARD_TILES, fused_spec
from nlseg.ops.omega import KernelParams

report = {}
for target in ("sm_80", "sm_90"):
    k = aot.compile_pairwise_forward("frac", target=target, dtype=torch.float16, c_embed=32, c_value=64)
    entry = re.search(r"\.entry\s+(\w+)\s*\(", k.ptx)
    arch = re.search(r"^\.target\s+(\S+)", k.ptx, re.M)
    report[target] = dict(name=k.name, entry=entry and entry.group(1), target=arch and arch.group(1),
                          threads=k.threads_per_block, num_warps=k.num_warps, shared=k.shared_mem,
                          scratch=[k.global_scratch_bytes, k.profile_scratch_bytes], params=k.ptx_params, grid=k.grid(3, 1000),
                          block_rows=k.block_rows, arguments=k.arguments)
log = aot.compile_pairwise_forward("log", target="sm_90", dtype=torch.bfloat16, c_embed=20, c_value=3)
frac = aot.compile_pairwise_forward("frac", target="sm_90", dtype=torch.bfloat16)
report["log_ptx_has_lg2"] = "lg2.approx.f32" in log.ptx
report["frac_ptx_has_rsqrt"] = "rsqrt.approx" in frac.ptx
# The backward kernels compile for the GPU too (the interpreter does not check tensor-core constraints).
tiles = BACKWARD_TILES[torch.bfloat16]
frac_spec = fused_spec(KernelParams("frac", 0.25, 0.1, 2), torch.float32)
constexprs = dict(**shape_constexprs(32, 64, tiles), **spec_constexprs(frac_spec),
                  **precision_plan(torch.bfloat16, "tf32x3", backward=True, interpret=False).constexprs())
common = dict(Q="*bf16", K="*bf16", Q_SQ="*fp32", K_SQ="*fp32", V="*bf16", G="*bf16", D="*fp32",
              LOG2_SCALE="*fp32", N="i32", M="i32")
rows = aot.compile_to_ptx(pairwise_backward_rows_kernel, dict(common, DQ="*fp32"), constexprs, tiles, "sm_90")
cols = aot.compile_to_ptx(pairwise_backward_cols_kernel, dict(common, DK="*fp32", DV="*fp32"), constexprs, tiles,
                          "sm_90")
report["backward"] = [rows.metadata.name, cols.metadata.name]
try:
    aot.gpu_target("volta")
except ValueError as e:
    report["bad_target"] = str(e)
# CPU tensors without the interpreter: a clear error, not a crash inside Triton.
from nlseg.ops import pairwise_update
try:
    pairwise_update(*(torch.randn(1, 5, 3) for _ in range(4)), "frac", impl="triton")
except RuntimeError as e:
    report["cpu_error"] = str(e)
print(json.dumps(report))
"""


def run_uninterpreted(args: list[str], timeout: int) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def compiled() -> dict:
    result = run_uninterpreted(["-c", COMPILE_SCRIPT], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("target,arch", [("sm_80", "sm_80"), ("sm_90", "sm_90a")])
def test_aot_ptx_names_the_kernel(compiled, target, arch):
    """What tensorrt.plugin's aot_impl returns: kernel name, PTX, launch grid and shared memory."""
    k = compiled[target]
    assert k["name"] == k["entry"] == "pairwise_forward_kernel"
    assert k["target"] == arch
    assert k["threads"] == 32 * k["num_warps"] and 0 < k["shared"] <= 48 * 1024 and k["scratch"] == [0, 0]
    assert k["grid"] == [-(-1000 // k["block_rows"]), 3, 1]
    assert k["arguments"][:7] == ["theta", "phi", "theta_sq", "phi_sq", "values", "x", "log2_scale"]
    assert k["arguments"][7:] == ["N", "M", "out"]  # TensorRT's order: inputs, extra ints, outputs
    assert k["params"] in (10, 12)  # the 10 arguments (+ the global and profile scratch pointers of Triton 3.5+)


def test_aot_uses_one_special_function_op_per_pair(compiled):
    assert compiled["log_ptx_has_lg2"] and compiled["frac_ptx_has_rsqrt"]


def test_backward_kernels_compile_for_hopper(compiled):
    assert compiled["backward"] == ["pairwise_backward_rows_kernel", "pairwise_backward_cols_kernel"]


def test_bad_target_is_rejected(compiled):
    assert "sm_80" in compiled["bad_target"]


def test_cpu_tensors_without_the_interpreter_get_a_clear_error(compiled):
    assert "TRITON_INTERPRET=1" in compiled["cpu_error"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_correctness_and_aot_launch():
    result = run_uninterpreted(["benchmarks/fused_check.py", "--sections", "1,2"], timeout=540)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
