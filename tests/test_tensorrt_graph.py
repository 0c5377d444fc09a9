"""The graph TensorRT parses (nlseg.tensorrt.graph), checked in ONNX Runtime on the CPU.

The plugin's 7-input node cannot run in ONNX Runtime as it is, so these tests rename it to a
test operator that launches the fused forward kernel, under Triton's interpreter
(TRITON_INTERPRET=1, conftest.py), with exactly the arguments TensorRT passes the AOT kernel:
the graph's conditioned embeddings, squared norms and scale exponents, then N and M, with the
tiles the AOT kernel is compiled with. Each plugin node's output u, i.e. the spliced
preprocessing and the kernel together, is then checked against the independent float64
formula of tests/formulas.py applied to that node's own inputs θ, φ, v, x, for every kernel.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from nlseg.nn.config import ModelConfig
from nlseg.onnx.custom_op import DOMAIN, OP_TYPE
from nlseg.onnx.export import ExportOptions, export_onnx
from nlseg.onnx.ort_op import custom_op_available, open_session
from nlseg.onnx.source_model import random_init
from nlseg.tensorrt.graph import PREFIX, PluginInputs, _traced, fused_nodes, tensor_types, tensorrt_graph
from nlseg.tensorrt.rules import PLUGIN_INPUTS

triton = pytest.importorskip("triton", reason="the plugin's kernel is the fused Triton kernel (pip install 'nlseg[dev]')")
if not custom_op_available():
    pytest.skip("the plugin graph runs in ONNX Runtime through onnxruntime-extensions", allow_module_level=True)

from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op  # noqa: E402

from nlseg.ops.fused import function  # noqa: E402
from nlseg.ops.fused.kernels import pairwise_forward_kernel  # noqa: E402
from nlseg.ops.fused.spec import forward_tiles, fused_spec  # noqa: E402
from nlseg.ops.omega import KernelParams  # noqa: E402
from tests.formulas import naive_update  # noqa: E402

if not function.interpreting():
    pytest.skip("the kernel runs on CPU tensors here: TRITON_INTERPRET=1 must be set", allow_module_level=True)

TEST_DOMAIN = "nlseg_test"
IMAGE = (2, 3, 12, 20)


def launch_like_tensorrt(arrays: list[np.ndarray], dtype: torch.dtype, kernel: str, s: float, lam: float,
                         n: int) -> np.ndarray:
    """The AOT kernel's launch: (θ', φ', ‖θ'‖², ‖φ'‖², v, x, l, N, M, out), constants as compile_pairwise_forward sets them."""
    t = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
    t = [x.to(dtype) if i in (0, 1, 4, 5) else x for i, x in enumerate(t)]
    b, n_q, c_embed = t[0].shape
    m, c_value = t[1].shape[1], t[4].shape[2]
    tiles = forward_tiles(dtype, c_embed, c_value)
    out = torch.empty(b, n_q, c_value, dtype=dtype)
    plan = function.precision_plan(dtype, function.DEFAULT_FP32_PRECISION, backward=False, interpret=True)
    pairwise_forward_kernel[(triton.cdiv(n_q, tiles.block_rows), b)](
        *t, n_q, m, out, None, **function.shape_constexprs(c_embed, c_value, tiles),
        **function.spec_constexprs(fused_spec(KernelParams(kernel, s, lam, n), torch.float32)), **plan.constexprs(),
        **function.launch_options(tiles))
    return out.float().numpy()


def _register_test_ops() -> None:
    attrs = {"kernel": PyCustomOpDef.dt_string, "s": PyCustomOpDef.dt_float, "lam": PyCustomOpDef.dt_float,
             "n": PyCustomOpDef.dt_int64}
    for suffix, dtype in (("32", torch.float32), ("16", torch.float16)):
        # ONNX Runtime's Python operators take no float16: the fp16 op gets float32 copies of float16 values
        # (exact) and returns its float16 result as float32; test_graph wraps it in casts.
        def run(*arrays, kernel, s, lam, n, dtype=dtype):
            return launch_like_tensorrt(list(arrays), dtype, kernel, float(s), float(lam), int(n))

        onnx_op(op_type=f"{TEST_DOMAIN}::Aot{suffix}", inputs=[PyCustomOpDef.dt_float] * 7,
                outputs=[PyCustomOpDef.dt_float], attrs=attrs)(run)


_register_test_ops()


def runnable(model: onnx.ModelProto) -> onnx.ModelProto:
    """The TensorRT graph with each plugin node as the test operator (float16 data cast around it)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    types = tensor_types(model)
    nodes = []
    for node in out.graph.node:
        if not (node.domain == DOMAIN and node.op_type == OP_TYPE):
            nodes.append(node)
            continue
        half = types[node.input[0]] == onnx.TensorProto.FLOAT16
        node.domain, node.op_type = TEST_DOMAIN, "Aot16" if half else "Aot32"
        for a in [a for a in node.attribute if a.name in ("aot", "plugin_namespace", "plugin_version")]:
            node.attribute.remove(a)
        if half:
            for i in (0, 1, 4, 5):
                nodes.append(onnx.helper.make_node("Cast", [node.input[i]], [f"{node.input[i]}.f32"], to=1))
                node.input[i] = f"{node.input[i]}.f32"
            result = node.output[0]
            node.output[0] = f"{result}.f32"
            nodes += [node, onnx.helper.make_node("Cast", [node.output[0]], [result], to=10)]
        else:
            nodes.append(node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.opset_import.add(domain=TEST_DOMAIN, version=1)
    return out


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.register_custom_ops_library(get_library_path())
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": x})[0]


def export(tmp_path_factory, kernel: str, half: bool = False, layout: str = "thesis"):
    config = ModelConfig.from_preset("bdd100k", layout=layout, blocks=(1, 1, 1), channels=(8, 8, 8),
                                     nonlocal_kernel=kernel)
    path = tmp_path_factory.mktemp("graph") / f"{kernel}{'16' if half else ''}.onnx"
    export_onnx(random_init(config, seed=1), path, ExportOptions(graph="plugin", half=half))
    return path


@pytest.fixture(scope="module")
def frac(tmp_path_factory):
    return export(tmp_path_factory, "frac")


def image(dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(IMAGE).astype(dtype)


def test_plugin_graph_nodes_are_named_for_the_parser(frac):
    """The exported graph: one nlseg::PairwiseKernel v1 node per pairwise update, with its attributes."""
    nodes = [n for n in onnx.load(str(frac)).graph.node if n.op_type == OP_TYPE]
    assert len(nodes) == 6
    for node in nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert node.domain == "nlseg" and len(node.input) == 4
        assert attrs["plugin_namespace"] == b"nlseg" and attrs["plugin_version"] == b"1"
        assert attrs["kernel"] == b"frac" and attrs["n"] == 2
        assert attrs["s"] == pytest.approx(0.5) and attrs["lam"] == pytest.approx(0.1)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_tensorrt_graph_feeds_the_plugin_its_kernels_inputs(frac, dtype):
    model = onnx.load(str(frac))
    graph = tensorrt_graph(model, dtype)
    assert graph.plugin_nodes == tuple(f"{PREFIX}{i}/{OP_TYPE}" for i in range(6))
    assert graph.plugin_kernels == ("frac",) * 6 and graph.lowered_nodes == ()
    assert fused_nodes(model) == ["frac"] * 6
    types = tensor_types(graph.model)
    data = onnx.TensorProto.FLOAT16 if dtype == "float16" else onnx.TensorProto.FLOAT
    for node in (n for n in graph.model.graph.node if n.op_type == OP_TYPE):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert node.domain == "nlseg" and node.name in graph.plugin_nodes
        assert attrs["plugin_namespace"] == b"nlseg" and attrs["plugin_version"] == b"1" and attrs["aot"] == 1
        assert attrs["kernel"] == b"frac" and len(node.input) == len(PLUGIN_INPUTS)
        assert [types[i] for i in node.input] == [data, data, 1, 1, data, data, 1]
    assert sum(n.op_type == OP_TYPE for n in model.graph.node) == 6 and all(
        len(n.input) == 4 for n in model.graph.node if n.op_type == OP_TYPE), "the input model is left as it was"
    assert [o.name for o in graph.model.graph.output] == ["logits"]


def pairwise_nodes(model: onnx.ModelProto) -> list[tuple[list[str], str, dict]]:
    """(inputs θ, φ, v, x; output u; attributes) of each PairwiseKernel node of an exported plugin graph."""
    out = []
    for node in (n for n in model.graph.node if n.domain == DOMAIN and n.op_type == OP_TYPE):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        out.append((list(node.input), node.output[0], attrs))
    return out


def exposed(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """``model`` with ``names`` (float32 tensors) added to its outputs."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    present = {o.name for o in out.graph.output}
    out.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                            for n in dict.fromkeys(names) if n not in present)
    return out


@pytest.mark.parametrize("kernel,half,tol", [("frac", False, 1e-4), ("invfrac", False, 1e-4), ("log", False, 1e-4),
                                             ("frac", True, 1e-2), ("invfrac", True, 1e-2), ("log", True, 1e-2)])
def test_each_plugin_node_computes_the_formula(tmp_path_factory, kernel, half, tol):
    """Per node: u from the rewritten graph (conditioning layers + the kernel as TensorRT launches it) against
    tests/formulas.py in float64 on that node's θ, φ, v, x; relative to max |u|."""
    path = export(tmp_path_factory, kernel, half=half)
    model = onnx.load(str(path))
    nodes = pairwise_nodes(model)
    graph = tensorrt_graph(model, "float16" if half else "float32")
    assert graph.plugin_kernels == (kernel,) * len(nodes)
    names = [name for inputs, output, _ in nodes for name in (*inputs, output)]
    options = ort.SessionOptions()
    options.register_custom_ops_library(get_library_path())
    session = ort.InferenceSession(exposed(runnable(graph.model), names).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    values = dict(zip(names, session.run(names, {"image": image(np.float16 if half else np.float32)})))
    for inputs, output, attrs in nodes:
        theta, phi, v, x = (torch.from_numpy(values[n]) for n in inputs)
        expected = naive_update(theta, phi, v, x, kernel, s=attrs["s"], lam=attrs["lam"], n=attrs["n"])
        got = torch.from_numpy(values[output]).double()
        assert got.shape == expected.shape and torch.isfinite(got).all()
        assert ((got - expected).abs().max() / expected.abs().max()).item() < tol, output


@pytest.mark.parametrize("shape", [(3, 11, 6, 5, 2), (1, 40, 40, 4, 8)])
def test_preprocessing_subgraph_is_prepare_inputs_at_any_size(shape):
    """Traced once at other sizes, the subgraph still computes prepare_inputs + squared_norms."""
    b, n_q, m, c_embed, c = shape
    g = torch.Generator().manual_seed(sum(shape))
    inputs = [torch.randn(b, n_q, c_embed, generator=g) * 3 + 1, torch.randn(b, m, c_embed, generator=g) * 3 + 1,
              torch.randn(b, m, c, generator=g), torch.randn(b, n_q, c, generator=g)]
    inputs[1][:, 0] = inputs[0][:, 2]  # a coincident pair
    for dtype in ("float32", "float16"):
        session = ort.InferenceSession(_traced("inputs", (dtype,), 17), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]  # theta, phi, values, x (renamed: outputs reuse the names)
        got = session.run(None, dict(zip(names, (t.numpy() for t in inputs))))
        want = PluginInputs(getattr(torch, dtype))(*inputs)
        for name, a, w in zip(PLUGIN_INPUTS, got, want):
            assert a.dtype == w.numpy().dtype, name
            np.testing.assert_allclose(a.astype(np.float64), w.double().numpy(), rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("kernel", ["dot", "gaussian"])
def test_similarity_kernels_become_standard_operators(tmp_path_factory, kernel):
    path = export(tmp_path_factory, kernel)
    assert fused_nodes(onnx.load(str(path))) == []
    graph = tensorrt_graph(onnx.load(str(path)), "float16")
    assert graph.plugin_nodes == () and len(graph.lowered_nodes) == 6
    assert not any(n.domain == DOMAIN for n in graph.model.graph.node)
    x = image()
    expected = open_session(path).run(["logits"], {"image": x})[0]
    plain = ort.InferenceSession(graph.model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = plain.run(["logits"], {"image": x})[0]
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
