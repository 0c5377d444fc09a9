"""What the plugin refuses to hand TensorRT: kernels it could not launch as an AOT plugin (compiled on the CPU).

``plugin_kernel`` checks each compiled kernel against TensorRT's launch: no Triton scratch
memory (global or profile), exactly the plugin's 10 arguments followed by the trailing scratch
pointers of the Triton release pinned for that TensorRT (0 for 10.9-10.15, 2 from 10.16), and
at most 48 KiB of dynamic shared memory. Runs in a fresh process without TRITON_INTERPRET
(conftest.py sets it for this one). The kernels TensorRT does get are tested through NVIDIA's
framework in test_tensorrt_framework.py.
"""

from __future__ import annotations

import json

import pytest

from nlseg.tensorrt import compat

pytest.importorskip("triton", reason="the plugin's kernel is the fused Triton kernel (pip install 'nlseg[dev]')")

from tests.test_triton_compiled import run_uninterpreted  # noqa: E402

SCRIPT = r"""
import json
import torch, triton
from nlseg.ops.fused import spec
from nlseg.tensorrt.plugin import plugin_kernel
from nlseg.ops.omega import KernelParams

attrs = KernelParams("frac", 0.5, 0.1, 2)
report = {"triton": triton.__version__}
k = plugin_kernel(attrs, "sm_80", "float16", 8, 16, 2)
report["params"], report["scratch"] = k.ptx_params, [k.global_scratch_bytes, k.profile_scratch_bytes]
report["cached"] = plugin_kernel(attrs, "sm_80", "float16", 8, 16, 2) is k
for name, args in (("pre_10_16", (attrs, "sm_80", "float16", 8, 16, 0)),
                   ("post_10_16", (attrs, "sm_80", "float16", 8, 16, 2))):
    try:
        plugin_kernel(*args)
        report[name] = "accepted"
    except RuntimeError as e:
        report[name] = str(e)
spec.FORWARD_TILES[torch.float16] = (spec.Tiles(128, 64, 8, 4),)  # 4 stages of 64 x (64 + 128) halves: ~100 KB
try:
    plugin_kernel(attrs, "sm_80", "float16", 64, 128, 2)
    report["too_big"] = "accepted"
except RuntimeError as e:
    report["too_big"] = str(e)
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def report() -> dict:
    result = run_uninterpreted(["-c", SCRIPT], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_no_scratch_memory_and_the_parameter_count_matches_this_tensorrt(report):
    assert report["scratch"] == [0, 0]
    assert report["cached"], "aot_impl runs once per type combination; the compilation must be reused"
    trailing = report["params"] - 10
    assert trailing in (0, 2), "7 inputs, N, M, the output, then Triton's scratch pointers"
    assert compat.triton_scratch_params(report["triton"]) in (None, trailing), "compat.TRITON_SCRATCH_PARAMS is wrong"
    verdicts = {0: report["pre_10_16"], 2: report["post_10_16"]}
    assert verdicts[trailing] == "accepted"
    refused = verdicts[2 - trailing]
    assert f"has {report['params']} parameters, TensorRT passes 10 + {2 - trailing}" in refused
    assert "Triton release pinned for this TensorRT" in refused


def test_more_than_48_kib_of_shared_memory_is_refused(report):
    assert "bytes of shared memory per block, more than the 49152 a TensorRT AOT plugin launch gets" in report["too_big"]
