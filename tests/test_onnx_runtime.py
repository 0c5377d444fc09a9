"""Running exported graphs: the PairwiseKernel op in ONNX Runtime, --simplify's two paths."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
import torch

import nlseg.onnx.ort_op as ort_op
from nlseg.errors import InputError
from nlseg.nn.config import ModelConfig
from nlseg.onnx.export import ExportOptions, export_onnx
from nlseg.onnx.ort_op import custom_op_available, open_session, pairwise_kernel
from nlseg.onnx.simplify import SIMPLIFIERS, simplify_model
from nlseg.onnx.source_model import random_init
from nlseg.ops import pairwise_update

CONFIG = ModelConfig.from_preset("bdd100k", blocks=(1, 1, 1), channels=(8, 8, 8), nonlocal_kernel="invfrac", s=0.3)


@pytest.fixture(scope="module")
def source():
    return random_init(CONFIG, seed=1)


@pytest.fixture(scope="module")
def exported(source, tmp_path_factory):
    """graph form -> exported file."""
    folder = tmp_path_factory.mktemp("exports")
    for graph in ("portable", "plugin"):
        export_onnx(source, folder / f"{graph}.onnx", ExportOptions(graph=graph))
    return {graph: folder / f"{graph}.onnx" for graph in ("portable", "plugin")}


def test_op_implementation_is_pairwise_update():
    g = torch.Generator().manual_seed(0)
    theta, phi, values, x = (torch.randn(2, n, c, generator=g) for n, c in ((13, 4), (5, 4), (5, 3), (13, 3)))
    got = pairwise_kernel(*(t.numpy() for t in (theta, phi, values, x)), kernel="log", s=0.5, lam=0.2, n=2)
    np.testing.assert_array_equal(got, pairwise_update(theta, phi, values, x, "log", lam=0.2).numpy())


def test_sessions_do_not_spin_idle_threads(exported):
    """Spinning intra-op threads starve nlseg infer's decode/preprocess/encode threads (benchmarks/RESULTS.md)."""
    options = open_session(exported["portable"]).get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_plugin_graph_without_onnxruntime_extensions_says_what_is_missing(exported, monkeypatch):
    plugin_file = exported["plugin"]
    monkeypatch.setattr(ort_op, "_registered_library", None)
    monkeypatch.setitem(sys.modules, "onnxruntime_extensions", None)  # import fails as if not installed
    with pytest.raises(InputError) as info:
        open_session(plugin_file)
    message = str(info.value)
    assert str(plugin_file) in message and "pip install onnxruntime-extensions" in message and "--plugin" in message


@pytest.mark.parametrize("method", SIMPLIFIERS)
@pytest.mark.parametrize("graph", ["portable", pytest.param("plugin", marks=pytest.mark.skipif(
    not custom_op_available(), reason="plugin graphs run in ONNX Runtime through onnxruntime-extensions"))])
def test_both_simplifiers_shrink_the_graph_and_keep_its_results(source, exported, tmp_path, method, graph):
    if method == "onnxsim":
        pytest.importorskip("onnxsim")
    model = onnx.load(str(exported[graph]))
    library = ort_op.custom_op_library() if graph == "plugin" and method == "onnxsim" else None
    simplified, report = simplify_model(model, method, library)
    assert report.method == method and report.nodes_after == len(simplified.graph.node) < report.nodes_before
    onnx.checker.check_model(simplified, full_check=True)
    assert [i.type for i in simplified.graph.input] == [i.type for i in model.graph.input]  # still dynamic
    small = tmp_path / "s.onnx"
    onnx.save(simplified, str(small))
    x = torch.rand(2, 3, 19, 33, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = source.model(x).numpy()
    got = open_session(small).run(None, {"image": x.numpy()})[0]
    assert np.abs(got - expected).max() <= 1e-4


def test_unknown_simplifier():
    with pytest.raises(ValueError, match="unknown simplifier"):
        simplify_model(onnx.ModelProto(), "magic")
