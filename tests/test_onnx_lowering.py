"""The pairwise update lowered to ONNX, per kernel, in both graph forms, against PyTorch and the formulas."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from nlseg.nn.nonlocal_block import PairwiseOperator
from nlseg.onnx.custom_op import DOMAIN, INPUTS, OP_TYPE
from nlseg.onnx.export import trace_module
from nlseg.onnx.lowering import lower_model, lowered_operator
from nlseg.onnx.ort_op import custom_op_available, open_session
from nlseg.ops import KernelParams
from tests.formulas import naive_update

KERNELS = [("dot", 0.5), ("gaussian", 0.5), ("frac", 0.25), ("frac", 0.5), ("frac", 0.75),
           ("invfrac", 0.25), ("invfrac", 0.75), ("log", 0.5)]
NAMES = list(INPUTS)
FORMS = ["portable", pytest.param("plugin", marks=pytest.mark.skipif(
    not custom_op_available(), reason="plugin graphs run in ONNX Runtime through onnxruntime-extensions"))]
AXES = {"theta": {0: "b", 1: "n"}, "phi": {0: "b", 1: "m"}, "values": {0: "b", 1: "m"}, "x": {0: "b", 1: "n"}}


class AllKernels(nn.Module):
    """Every kernel's pairwise update of the same inputs, one output each."""

    def __init__(self, form: str | None) -> None:
        super().__init__()
        ops = [PairwiseOperator(KernelParams(k, s)) for k, s in KERNELS]
        self.ops = nn.ModuleList(ops if form is None else [lowered_operator(op, form) for op in ops])

    def forward(self, theta, phi, values, x):
        return tuple(op(theta, phi, values, x) for op in self.ops)


def inputs(b, n, m, c_embed=4, c=3, seed=0, coincident=0):
    g = torch.Generator().manual_seed(seed)
    theta, phi = torch.randn(b, n, c_embed, generator=g), torch.randn(b, m, c_embed, generator=g)
    if coincident:  # keys that sit exactly on queries: zero distances
        phi[:, :coincident] = theta[:, :coincident]
    return theta, phi, torch.randn(b, m, c, generator=g), torch.randn(b, n, c, generator=g)


def export(form: str, path, opset: int = 17) -> onnx.ModelProto:
    outputs = [f"u{i}" for i in range(len(KERNELS))]
    axes = {**AXES, **{o: {0: "b", 1: "n"} for o in outputs}}
    model = trace_module(AllKernels(form), inputs(2, 9, 5), NAMES, outputs, axes, opset, plugin=form == "plugin")
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """form -> (model, file): one export per graph form, run at every size below."""
    graphs = {}
    for form in ("portable", "plugin"):
        path = tmp_path_factory.mktemp(form) / "ops.onnx"
        graphs[form] = (export(form, path), path)
    return graphs


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("shape,coincident", [((1, 1, 1), 0), ((2, 37, 11), 0), ((3, 64, 9), 0), ((2, 20, 7), 5)])
def test_one_export_matches_pytorch_and_the_formulas_at_every_size(exported, form, shape, coincident):
    session = open_session(exported[form][1])
    args = inputs(*shape, seed=sum(shape), coincident=coincident)
    got = session.run(None, dict(zip(NAMES, (t.numpy() for t in args))))
    with torch.no_grad():
        expected = AllKernels(None)(*args)
    for (kernel, s), out, ref in zip(KERNELS, got, expected):
        assert out.shape == tuple(ref.shape) and out.dtype == np.float32
        assert rel(out, ref.numpy()) <= 1e-4, (form, kernel, s)
        oracle = naive_update(*args, kernel, s=s).numpy()
        assert rel(out, oracle) <= 1e-4, (form, kernel, s)
        assert np.isfinite(out).all()


def test_portable_graph_holds_standard_operators_only(exported):
    model, _ = exported["portable"]
    assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}
    assert {op.domain for op in model.opset_import} <= {"", "ai.onnx"}


def test_plugin_graph_has_one_declared_node_per_update(exported):
    model, _ = exported["plugin"]
    assert len(model.graph.node) == len(KERNELS)
    nodes = [n for n in model.graph.node if n.op_type == OP_TYPE]
    assert len(nodes) == len(KERNELS) and all(n.domain == DOMAIN for n in nodes)
    assert {(op.domain, op.version) for op in model.opset_import if op.domain == DOMAIN} == {(DOMAIN, 1)}
    declared = {v.name: v.type.tensor_type for v in (*model.graph.value_info, *model.graph.output)}
    for node, (kernel, s) in zip(nodes, KERNELS):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs == {"kernel": kernel.encode(), "s": pytest.approx(s), "lam": pytest.approx(0.1), "n": 2,
                         "plugin_namespace": b"nlseg", "plugin_version": b"1"}
        assert list(node.input) == NAMES
        out_type = declared[node.output[0]]
        assert out_type.elem_type == onnx.TensorProto.FLOAT
        assert [d.dim_param or d.dim_value for d in out_type.shape.dim] == ["b", "n", 3]


@pytest.mark.parametrize("opset", [13, 20])
def test_other_opsets(tmp_path, opset):
    path = tmp_path / "ops.onnx"
    export("portable", path, opset)
    args = inputs(2, 15, 6, seed=opset)
    got = open_session(path).run(None, dict(zip(NAMES, (t.numpy() for t in args))))
    with torch.no_grad():
        for out, ref in zip(got, AllKernels(None)(*args)):
            assert rel(out, ref.numpy()) <= 1e-4


def test_lowering_leaves_the_model_alone():
    op = PairwiseOperator(KernelParams("frac"))
    net = nn.Sequential(nn.Identity(), nn.ModuleDict({"p": op}))
    lowered = lower_model(net, "plugin")
    assert net[1]["p"] is op and type(lowered[1]["p"]).__name__ == "PluginPairwise"
    with pytest.raises(ValueError, match="graph form"):
        lower_model(net, "tensorrt")
