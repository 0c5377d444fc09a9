"""The plugin's ahead-of-time kernels, compiled on the CPU for sm_80 and sm_90 (float32 and float16).

What ``aot_impl`` returns for each configuration: PTX with the kernel's entry point, TensorRT's
argument list (7 input pointers, N and M as int32, the output; Triton's 2 scratch pointers,
which TensorRT leaves null, unused), and a launch that matches the kernel's own grid. The
compilation runs in a fresh process without TRITON_INTERPRET (conftest.py sets it for this one).
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("triton", reason="the plugin's kernel is the fused Triton kernel (pip install 'nlseg[dev]')")

from tests.test_triton_compiled import run_uninterpreted  # noqa: E402

CONFIGS = [  # kernel, target, dtype, C', C
    ("frac", "sm_80", "float32", 4, 8),
    ("frac", "sm_80", "float16", 4, 8),
    ("frac", "sm_90", "float32", 4, 8),
    ("frac", "sm_90", "float16", 32, 64),
    ("log", "sm_90", "float16", 56, 112),
    ("invfrac", "sm_80", "float32", 16, 32),
]

SCRIPT = r"""
import json, re, sys
from nlseg.ops.fused.function import interpreting
from nlseg.tensorrt import rules
from nlseg.tensorrt.plugin import check_ptx_loadable, plugin_kernel, ptx_isa

configs = json.loads(sys.argv[1])
report = {"interpreting": interpreting(), "kernels": []}
for kernel, target, dtype, c_embed, c_value in configs:
    k = plugin_kernel(kernel, target, dtype, c_embed, c_value, 0.5, 0.1, 2)
    check_ptx_loadable(k.ptx)  # no driver here: returns without a verdict
    entry = re.search(r"\.entry\s+(\w+)\s*\(([^)]*)\)", k.ptx)
    params = re.findall(r"\.param\s+\.(\w+)", entry.group(2))
    launch = rules.launch_params(k.block_rows, k.threads_per_block, k.shared_mem, 3, 1000, lambda a, b: -(-a // b))
    report["kernels"].append(dict(
        name=k.name, entry=entry.group(1), target=re.search(r"^\.target\s+(\S+)", k.ptx, re.M).group(1),
        isa=list(ptx_isa(k.ptx)), params=params, arguments=list(k.arguments),
        grid=list(k.grid(3, 1000)), launch=[launch.grid_x, launch.grid_y, launch.block_x, launch.shared_mem],
        threads=k.threads_per_block, shared=k.shared_mem, scratch=k.scratch_bytes,
        f16=bool(re.search(r"\.f16\b", k.ptx)), cached=plugin_kernel(kernel, target, dtype, c_embed, c_value,
                                                                      0.5, 0.1, 2) is k))
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def compiled() -> dict:
    result = run_uninterpreted(["-c", SCRIPT, json.dumps(CONFIGS)], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["interpreting"] is False
    return dict(zip(map(tuple, CONFIGS), report["kernels"]))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_aot_kernel_for_the_plugin(compiled, config):
    kernel, target, dtype, c_embed, c_value = config
    k = compiled[config]
    assert k["name"] == k["entry"] == "pairwise_forward_kernel"
    assert k["target"] == ("sm_90a" if target == "sm_90" else target)
    assert k["arguments"] == ["theta", "phi", "theta_sq", "phi_sq", "values", "x", "log2_scale", "N", "M", "out"]
    # TensorRT passes 7 pointers, 2 int32, 1 pointer; Triton >= 3.3 appends 2 scratch pointers it leaves null.
    assert k["params"][:10] == ["u64"] * 7 + ["u32"] * 2 + ["u64"] and k["params"][10:] in ([], ["u64", "u64"])
    assert k["scratch"] == 0
    assert k["launch"] == [k["grid"][0], k["grid"][1], k["threads"], k["shared"]] and k["grid"][2] == 1
    assert k["shared"] > 0 and k["threads"] in (128, 256)
    assert k["isa"][0] >= 7
    assert k["f16"] == (dtype == "float16")
    assert k["cached"], "aot_impl runs once per format combination; the compilation must be reused"
