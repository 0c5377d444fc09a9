"""The PairwiseKernel plugin judged by NVIDIA's own ``tensorrt.plugin`` code (from the bindings wheel, no GPU).

tests/tensorrt_framework.py loads the framework over a stand-in for its native module and makes
TensorRT's calls: registration (NVIDIA's validators), the parser's ``createPlugin`` with the
fields onnx-tensorrt builds from the node (``kernel`` with its NUL, floats as float32), output
types on placeholder shapes, output shapes on real ones, the autotune combinations, and
``get_launch_params`` / ``get_kernel``, which call our ``aot_impl``. The AOT launches compile
the kernel, so they run in a fresh process without TRITON_INTERPRET and assemble the returned
PTX with the ptxas in Triton's wheel. (No ``from __future__ import annotations``: the framework reads
the annotations of the functions defined here.)
"""

import json
import math

import numpy as np
import onnx
import pytest

from nlseg.tensorrt import rules
from nlseg.tensorrt.compat import triton_pin
from tests.tensorrt_framework import Framework, plugin_dtypes, plugin_node, plugin_shapes
from tests.tensorrt_releases import RELEASES, release_plugin_dir

RANKS = [3, 3, 2, 2, 3, 3, 1]
KERNELS = ["frac", "invfrac", "log"]


@pytest.fixture(params=RELEASES, scope="module")
def release(request) -> str:
    """Each TensorRT release of the matrix (tests/tensorrt_releases.py); skipped where it cannot be fetched."""
    found = release_plugin_dir(request.param)
    if isinstance(found, str):
        pytest.skip(found)
    return request.param


def load(release: str) -> Framework:
    return Framework(release_plugin_dir(release), release)


@pytest.fixture
def framework(release) -> Framework:
    fw = load(release)
    fw.register_nlseg()
    return fw


def test_registration_passes_nvidias_validators(framework):
    framework.register_nlseg()  # again: reuses the definition
    creator = framework.creator()
    assert [(f.name, f.type.name) for f in creator.field_names] == [
        ("kernel", "CHAR"), ("s", "FLOAT32"), ("lam", "FLOAT32"), ("n", "INT32")]
    definition = framework.trtp.op.nlseg.PairwiseKernel
    assert definition.input_tensor_names == ["theta", "phi", "theta_sq", "phi_sq", "values", "x", "log2_scale"]
    assert definition.aot_impl_attr_names == ["kernel", "s", "lam", "n"] and definition.impl_func is None
    assert definition.autotune_func is not None and definition.num_outputs == 1


def test_nvidias_validator_refuses_what_the_old_plugin_declared(framework):
    """The checks are live: an aot_impl without ``tactic``, or without the return annotation, is refused."""
    trtp = framework.trtp

    def no_tactic(theta, phi, theta_sq, phi_sq, values, x, log2_scale, kernel, s, lam, n, outputs):
        pass

    def no_annotation(theta, phi, theta_sq, phi_sq, values, x, log2_scale, kernel, s, lam, n, outputs, tactic):
        pass

    with pytest.raises(ValueError, match="does not match the expected input arg schema"):
        trtp.aot_impl("nlseg::PairwiseKernel")(no_tactic)
    with pytest.raises(ValueError, match="No return annotation"):
        trtp.aot_impl("nlseg::PairwiseKernel")(no_annotation)
    with pytest.raises(ValueError, match="already has a defintion"):
        trtp.register("nlseg::PairwiseKernel")(framework.trtp.op.nlseg.PairwiseKernel.register_func)


def test_a_failed_registration_can_be_retried(release):
    fw = load(release)
    real = fw.trtp.aot_impl

    def failing(plugin_id):
        raise RuntimeError("simulated failure after trtp.register")

    fw.trtp.aot_impl = failing
    with pytest.raises(RuntimeError, match="simulated failure"):
        fw.register_nlseg()
    assert fw.creator() is not None and fw.trtp.op.nlseg.PairwiseKernel.aot_impl_func is None
    fw.trtp.aot_impl = real
    fw.register_nlseg()
    assert fw.trtp.op.nlseg.PairwiseKernel.aot_impl_func is not None
    assert len(fw.trt.get_plugin_registry().creators) == 1


def test_a_foreign_definition_is_refused(release):
    fw = load(release)
    trtp = fw.trtp

    def other(theta: trtp.TensorDesc, kernel: str) -> trtp.TensorDesc:
        return theta.like()

    trtp.register("nlseg::PairwiseKernel")(other)
    with pytest.raises(RuntimeError, match="already defined in tensorrt.plugin by other code"):
        fw.register_nlseg()


@pytest.mark.parametrize("kernel", KERNELS)
def test_the_parser_delivers_the_attributes_as_onnx_tensorrt_copies_them(framework, kernel):
    plugin = framework.create_plugin(plugin_node(kernel, s=0.25 if kernel == "invfrac" else 0.5, lam=0.1))
    assert type(plugin).__name__ == "_TemplateAOTPlugin", "aot=1 asks for the AOT implementation"
    assert plugin.attrs["kernel"] == f"{kernel}\0"
    assert [(plugin.attrs[k].dtype.name, plugin.attrs[k].shape) for k in ("s", "lam", "n")] == [
        ("float32", (1,)), ("float32", (1,)), ("int32", (1,))]
    params = rules.plugin_attributes(**plugin.attrs)
    assert params.kernel == kernel and params.n == 2 and params.lam == float(np.float32(0.1)) != 0.1


@pytest.mark.parametrize("dtype,expected", [("float32", "FLOAT"), ("float16", "HALF")])
@pytest.mark.parametrize("kernel", KERNELS)
def test_output_type_on_placeholder_shapes(framework, kernel, dtype, expected):
    plugin = framework.create_plugin(plugin_node(kernel))
    assert framework.output_types(plugin, plugin_dtypes(dtype), RANKS) == [expected]


@pytest.mark.parametrize("kernel", KERNELS)
def test_output_shape_on_real_shapes(framework, kernel):
    plugin = framework.create_plugin(plugin_node(kernel))
    (static,) = framework.output_shapes(plugin, plugin_dtypes("float16"), plugin_shapes(2, 7, 5, 32, 64))
    assert static == (2, 7, 64)
    (dynamic,) = framework.output_shapes(plugin, plugin_dtypes("float32"), plugin_shapes(c_embed=8, c_value=16))
    sizes = {"B": 3, "N": 1000, "M": 333}
    assert [d if isinstance(d, int) else d.evaluate(sizes) for d in dynamic] == [3, 1000, 16]


@pytest.mark.parametrize("shapes,message", [
    (plugin_shapes(c_embed=8, c_value="C"), "must be known when the engine is built"),
    ([*plugin_shapes(2, 7, 5)[:5], (2, 9, 64), (2,)], "queries N sizes disagree"),
    ([(2, 7), *plugin_shapes(2, 7, 5)[1:]], "theta must have rank 3"),
])
def test_contract_violations_reach_tensorrt_as_one_message(framework, shapes, message):
    plugin = framework.create_plugin(plugin_node())
    with pytest.raises(ValueError, match=message):
        framework.output_shapes(plugin, plugin_dtypes("float32"), shapes)


def test_a_kernel_the_plugin_does_not_compute_is_refused_at_the_first_call(framework):
    plugin = framework.create_plugin(plugin_node("gaussian"))
    with pytest.raises(ValueError, match="computes frac, invfrac, log, not 'gaussian'"):
        framework.output_types(plugin, plugin_dtypes("float32"), RANKS)


def test_autotune_offers_float32_and_float16_with_float32_norms(framework):
    plugin = framework.create_plugin(plugin_node())
    framework.output_shapes(plugin, plugin_dtypes("float32"), plugin_shapes(2, 7, 5))
    with framework.installed():
        linear = framework.trt.TensorFormat.LINEAR
        from tests.tensorrt_framework import DynamicTensorDesc, TensorDesc

        in_out = [DynamicTensorDesc(TensorDesc(framework.dtype(d), linear, ()), ()) for d in plugin_dtypes("float32")]
        in_out.append(DynamicTensorDesc(TensorDesc(framework.dtype("float32"), linear, ()), ()))
        offered = plugin.get_supported_format_combinations(in_out, 7)
    combos = [[d.type.name for d in offered[i:i + 8]] for i in range(0, len(offered), 8)]
    assert combos == [["FLOAT"] * 8, ["HALF", "HALF", "FLOAT", "FLOAT", "HALF", "HALF", "FLOAT", "HALF"]]


# ---------------------------------------------------------------- the AOT kernel, through the framework

AOT_CONFIGS = [  # kernel, dtype, target, C', C: each kernel and dtype once, both targets, the tightest configurations
    ("frac", "float32", "sm_90", 64, 16),  # the most shared memory of benchmarks/ptxas_report.py
    ("frac", "float16", "sm_80", 64, 128),  # the most registers of the 16-bit kernels
    ("invfrac", "float32", "sm_80", 64, 64),  # spilled with 32-row tiles
    ("invfrac", "float16", "sm_90", 32, 64),
    ("log", "float32", "sm_90", 64, 128),
    ("log", "float16", "sm_80", 8, 16),
]
SIZES = {"B": 3, "N": 1000, "M": 333}

AOT_SCRIPT = r"""
import json, sys
from pathlib import Path
import nlseg.tensorrt.plugin as plugin
from nlseg.ops.fused.ptxas import assemble
from nlseg.ops.omega import KernelParams
from tests.tensorrt_framework import Framework, plugin_dtypes, plugin_node, plugin_shapes

releases, configs, sizes = (json.loads(a) for a in sys.argv[1:4])
out = {}
for version, directory in releases.items():
    fw = Framework(Path(directory), version)
    fw.register_nlseg()
    for kernel, dtype, target, c_embed, c_value in configs:
        plugin.device_target = lambda: target  # the GPU TensorRT would build for
        s = 0.25 if kernel == "invfrac" else 0.5
        node = plugin_node(kernel, s=s)
        compiled = plugin._compiled(KernelParams(kernel, s, 0.1, 2), target, dtype, c_embed, c_value)
        entry = dict(params=compiled.ptx_params)
        try:
            with fw.installed():
                launch = fw.launch(fw.create_plugin(node), plugin_dtypes(dtype),
                                   plugin_shapes(c_embed=c_embed, c_value=c_value), dtype, sizes)
        except Exception as exc:  # what TensorRT would get from aot_impl
            entry["refused"] = f"{type(exc).__name__}: {exc}"
        else:
            report = assemble(launch.ptx, launch.name)
            entry.update(name=launch.name, grid=launch.grid, block=launch.block, shared=launch.shared_mem,
                         extra=launch.extra_args, extra_types=launch.extra_arg_types, tactics=launch.tactics,
                         gpu=report.gpu, registers=report.registers, spills=report.spills,
                         static_shared=report.static_shared, entry_found=f".entry {launch.name}(" in launch.ptx,
                         f16=".f16" in launch.ptx)
        out["/".join([version, kernel, dtype, target, str(c_embed), str(c_value)])] = entry
print(json.dumps(out))
"""


def _key(version: str, config: tuple) -> str:
    return "/".join([version, *map(str, config)])


@pytest.fixture(scope="module")
def aot_launches() -> dict:
    """Every configuration through the framework of every release that can be fetched, in one fresh process."""
    pytest.importorskip("triton", reason="the plugin's kernel is the fused Triton kernel (pip install 'nlseg[dev]')")
    from tests.test_triton_compiled import run_uninterpreted

    found = {v: release_plugin_dir(v) for v in RELEASES}
    releases = {v: str(d) for v, d in found.items() if not isinstance(d, str)}
    if not releases:
        pytest.skip(next(iter(found.values())))
    args = [json.dumps(releases), json.dumps(AOT_CONFIGS), json.dumps(SIZES)]
    result = run_uninterpreted(["-c", AOT_SCRIPT, *args], timeout=540)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("config", AOT_CONFIGS, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("version", RELEASES)
def test_aot_impl_gives_tensorrt_a_kernel_it_can_launch(aot_launches, version, config):
    """The kernel and launch TensorRT gets, or, where this Triton's kernel has another parameter list than that
    release passes (10.9-10.15: 10; 10.16 on: 10 + 2 scratch pointers), aot_impl's refusal."""
    if _key(version, config) not in aot_launches:
        pytest.skip(release_plugin_dir(version))
    kernel, dtype, target, c_embed, c_value = config
    launch = aot_launches[_key(version, config)]
    passed = 10 + triton_pin(version).scratch_params
    if launch["params"] != passed:
        assert launch["refused"].startswith("RuntimeError: ")
        assert f"the kernel has {launch['params']} parameters, TensorRT passes 10 + {passed - 10}" in launch["refused"]
        return
    assert "refused" not in launch, launch.get("refused")
    from nlseg.ops.fused.spec import forward_tiles

    import torch

    tiles = forward_tiles(getattr(torch, dtype), c_embed, c_value)
    assert launch["name"] == "pairwise_forward_kernel" and launch["entry_found"]
    assert launch["gpu"] == ("sm_90a" if target == "sm_90" else target), "ptxas assembled it for the target"
    assert launch["grid"] == [math.ceil(SIZES["N"] / tiles.block_rows), SIZES["B"], 1]
    assert launch["block"] == [32 * tiles.num_warps, 1, 1]
    assert 0 < launch["shared"] <= 48 * 1024 and launch["static_shared"] == 0
    assert launch["extra"] == [SIZES["N"], SIZES["M"]] and launch["extra_types"] == ["INT32", "INT32"]
    assert launch["tactics"] == [] and not launch["spills"] and launch["registers"] <= 255
    assert launch["f16"] == (dtype == "float16")


# ---------------------------------------------------------------- every node of an exported plugin graph


def _input_shapes(model: onnx.ModelProto, node: onnx.NodeProto) -> list[tuple]:
    """The node's input shapes from ONNX shape inference with data propagation (which, like TensorRT's, folds
    the shape arithmetic of Reshape): ints where fixed, names where dynamic."""
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    infos = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    shapes = []
    for name in node.input:
        dims = infos[name].type.tensor_type.shape.dim
        shapes.append(tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or f"{name}:{i}")
                            for i, d in enumerate(dims)))
    return shapes


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_every_exported_plugin_node_gets_its_output_type_and_shape(framework, tmp_path, dtype):
    """nlseg export --plugin, the rewrite TensorRT parses, then each node through the framework as the parser
    and builder would drive it (kernels frac and log in one network, batch/height/width dynamic)."""
    from nlseg.nn.config import ModelConfig
    from nlseg.onnx.export import ExportOptions, export_onnx
    from nlseg.onnx.source_model import random_init
    from nlseg.tensorrt.graph import tensor_types, tensorrt_graph

    names = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}
    for kernel in ("frac", "log"):
        config = ModelConfig.from_preset("bdd100k", blocks=(1, 1, 1), channels=(8, 8, 8), nonlocal_kernel=kernel)
        path = tmp_path / f"{kernel}.onnx"
        export_onnx(random_init(config, seed=1), path, ExportOptions(graph="plugin"))
        graph = tensorrt_graph(onnx.load(str(path)), dtype)
        types = tensor_types(graph.model)
        nodes = [n for n in graph.model.graph.node if n.op_type == "PairwiseKernel"]
        assert len(nodes) == 6
        for node in nodes:
            plugin = framework.create_plugin(node)
            dtypes = [names[types[i]] for i in node.input]
            shapes = _input_shapes(graph.model, node)
            assert dtypes == plugin_dtypes(dtype)
            assert framework.output_types(plugin, dtypes, [len(s) for s in shapes]) == [
                "HALF" if dtype == "float16" else "FLOAT"]
            (out,) = framework.output_shapes(plugin, dtypes, shapes)
            assert isinstance(out[2], int) and out[2] == shapes[5][2], "C is a build-time constant"
