"""Shape folding of exported graphs: the class axis declared, plumbing folded, results unchanged."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nlseg.assets import default_weights
from nlseg.nn.config import ModelConfig
from nlseg.onnx.export import ExportOptions, export_onnx, traced_graph
from nlseg.onnx.fold import census, fold_shapes
from nlseg.onnx.ort_op import custom_op_available, open_session
from nlseg.onnx.parity import check_onnx
from nlseg.onnx.source_model import from_checkpoint, random_init

RUNS_PLUGIN = pytest.mark.skipif(not custom_op_available(),
                                 reason="plugin graphs run in ONNX Runtime through onnxruntime-extensions")


def declared(model: onnx.ModelProto, name: str) -> tuple[int, list[object]]:
    """(element type, dims: int where static, the axis name where dynamic) of output ``name``."""
    out = next(o for o in model.graph.output if o.name == name).type.tensor_type
    return out.elem_type, [d.dim_value if d.HasField("dim_value") else d.dim_param for d in out.shape.dim]


@pytest.fixture(scope="module")
def default_source():
    try:
        return from_checkpoint(default_weights())
    except Exception as error:  # noqa: BLE001 - a checkout or install without assets/
        pytest.skip(f"the bundled default weights are not here: {error}")


@pytest.fixture(scope="module")
def default_exports(default_source, tmp_path_factory):
    """The default weights exported as ``nlseg export`` and ``nlseg export --plugin --with-argmax`` do."""
    folder = tmp_path_factory.mktemp("default")
    export_onnx(default_source, folder / "portable.onnx")
    export_onnx(default_source, folder / "plugin.onnx", ExportOptions(graph="plugin", with_argmax=True))
    return {"portable": folder / "portable.onnx", "plugin": folder / "plugin.onnx"}


def test_default_export_declares_its_class_count(default_source, default_exports):
    classes = default_source.config.num_classes
    assert classes == 19  # the default weights predict the 19 BDD100K / Cityscapes train ids
    model = onnx.load(str(default_exports["portable"]))
    assert declared(model, "logits") == (TensorProto.FLOAT, ["batch", classes, "height", "width"])


def test_plugin_export_with_labels_declares_both_outputs(default_source, default_exports):
    model = onnx.load(str(default_exports["plugin"]))
    assert declared(model, "logits") == (TensorProto.FLOAT, ["batch", default_source.config.num_classes,
                                                             "height", "width"])
    assert declared(model, "labels") == (TensorProto.UINT8, ["batch", "height", "width"])
    assert any(n.domain == "nlseg" and n.op_type == "PairwiseKernel" for n in model.graph.node)


@pytest.mark.parametrize("graph", ["portable", "plugin"])
def test_default_export_has_no_more_plumbing_than_compute(default_source, default_exports, graph):
    folded = census(onnx.load(str(default_exports[graph])))
    traced = census(traced_graph(default_source, ExportOptions(graph=graph, with_argmax=graph == "plugin")))
    assert folded.plumbing <= folded.compute
    assert folded.total < traced.total and folded.plumbing < traced.plumbing


@pytest.mark.parametrize("shape", [(1, 3, 90, 160), (2, 3, 47, 83)])
def test_default_export_keeps_parity_with_torch_at_any_size(default_exports, shape):
    report = check_onnx(default_exports["portable"], shape=shape)
    assert report.passed, report.to_dict()


@RUNS_PLUGIN
def test_plugin_graph_runs_in_onnxruntime_with_the_custom_op(default_exports):
    report = check_onnx(default_exports["plugin"], shape=(1, 3, 45, 80))
    assert report.passed and report.argmax_agreement == 1.0, report.to_dict()
    session = open_session(default_exports["plugin"])
    logits, labels = session.run(None, {"image": np.zeros((2, 3, 31, 57), np.float32)})
    assert logits.shape == (2, 19, 31, 57) and labels.shape == (2, 31, 57) and labels.dtype == np.uint8


def test_opset_13_folds_without_shape_slicing(tmp_path):
    """Before opset 15 Shape has no start/end: partial shapes become Shape + Slice, and still run.

    Opset 13's Reshape is opaque to ONNX shape inference, so the class axis is declared from the model."""
    config = ModelConfig.from_preset("bdd100k", layout="realtime", blocks=(1, 1, 1), channels=(8, 8, 8),
                                     nonlocal_kernel="frac")
    source = random_init(config, seed=0)
    out = tmp_path / "m13.onnx"
    export_onnx(source, out, ExportOptions(opset=13))
    model = onnx.load(str(out))
    assert not any(a.name in ("start", "end") for n in model.graph.node if n.op_type == "Shape" for a in n.attribute)
    assert declared(model, "logits")[1] == ["batch", 19, "height", "width"]
    assert census(model).plumbing <= census(model).compute
    for shape in ((1, 3, 40, 72), (2, 3, 33, 61)):
        assert check_onnx(out, shape=shape).passed


@pytest.mark.parametrize("graph", ["portable", "plugin"])
@pytest.mark.parametrize("variant", [{"decoder": "refine"}, {"output_stride": 8}])
def test_realtime_variants_export_and_match_pytorch(graph, variant, tmp_path):
    """The real-time layout's refine decoder (depthwise + pointwise convs) and an output stride (dilated
    convolutions and transposed convolutions) through both graph forms."""
    if graph == "plugin" and not custom_op_available():
        pytest.skip("plugin graphs run in ONNX Runtime through onnxruntime-extensions")
    config = ModelConfig.from_preset("bdd100k", layout="realtime", blocks=(1, 1, 1), channels=(8, 8, 8),
                                     nonlocal_kernel="dot", **variant)
    out = tmp_path / f"variant-{graph}.onnx"
    export_onnx(random_init(config, seed=2), out, ExportOptions(graph=graph))
    for shape in ((1, 3, 40, 72), (2, 3, 33, 61)):
        assert check_onnx(out, shape=shape).passed


def _flatten_graph() -> onnx.ModelProto:
    """x (B, 4, H, W) flattened to (B, 4, H·W) through the exporter's Shape/Gather/Unsqueeze/Concat chain."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["b"], axis=0),
        helper.make_node("Gather", ["s", "i1"], ["c"], axis=0),
        helper.make_node("Unsqueeze", ["b", "ax"], ["b1"]),
        helper.make_node("Unsqueeze", ["c", "ax"], ["c1"]),
        helper.make_node("Concat", ["b1", "c1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("Shape", ["x"], ["s2"]),
        helper.make_node("Reshape", ["flat", "s2"], ["y"]),
    ]
    ints = {"i0": np.array(0), "i1": np.array(1), "ax": np.array([0]), "minus1": np.array([-1])}
    graph = helper.make_graph(
        nodes, "flatten", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 4, "H", "W"])],
        [numpy_helper.from_array(v.astype(np.int64), k) for k, v in ints.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_flatten_becomes_a_constant_reshape_target(tmp_path):
    folded = fold_shapes(_flatten_graph())
    ops = [n.op_type for n in folded.graph.node]
    assert ops == ["Reshape", "Shape", "Reshape"]  # the unflatten reads Shape(x) once, nothing else
    inits = {i.name: numpy_helper.to_array(i).tolist() for i in folded.graph.initializer}
    assert inits[folded.graph.node[0].input[1]] == [0, 4, -1]
    path = tmp_path / "f.onnx"
    onnx.save(folded, str(path))
    x = np.random.default_rng(0).random((2, 4, 5, 7), dtype=np.float32)
    np.testing.assert_array_equal(open_session(path).run(None, {"x": x})[0], x)
