"""One engine-options type (EngineRequest) from the API to the builder; options an engine cannot honour are refused."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from nlseg.errors import InputError
from nlseg.onnx.export import ExportOptions
from nlseg.tensorrt.build import EngineRequest


def test_the_request_refuses_what_no_engine_can_have():
    with pytest.raises(InputError, match="^workspace: need at least 1 MiB, got 0"):
        EngineRequest(workspace_mb=0)
    with pytest.raises(InputError, match="^calib_data: calibration data is for int8 engines"):
        EngineRequest(calib_data=Path("frames"))
    assert EngineRequest(int8=True, calib_data=Path("frames")).calib_data == Path("frames")


@pytest.fixture(scope="module")
def plugin_onnx(tmp_path_factory) -> Path:
    from nlseg.nn.config import ModelConfig
    from nlseg.onnx.export import export_onnx
    from nlseg.onnx.source_model import random_init

    path = tmp_path_factory.mktemp("options") / "frac.onnx"
    config = ModelConfig.from_preset("bdd100k", blocks=(1, 1, 1), channels=(8, 8, 8), nonlocal_kernel="frac")
    export_onnx(random_init(config, seed=0), path, ExportOptions(graph="plugin"))
    return path


@pytest.mark.parametrize("option,value", [("simplify", True), ("with_argmax", True), ("opset", 18), ("dynamic", False),
                                          ("plugin", True), ("input_size", (90, 160))])
def test_export_options_are_refused_for_an_engine_of_an_onnx_export(plugin_onnx, tmp_path, option, value):
    """The ONNX is built as it is: an option that would shape another export is an error, not ignored."""
    from nlseg.api.export import export_model

    with pytest.raises(InputError, match=f"^{option}: shapes the ONNX export of a checkpoint, but .*frac.onnx is "
                                         "already one"):
        export_model(plugin_onnx, tmp_path / "m.engine", "engine", **{option: value})
    assert list(tmp_path.iterdir()) == []


def test_the_engines_graph_and_precision_are_not_the_callers_to_override(plugin_onnx, tmp_path):
    from nlseg.tensorrt.export import export_engine

    trt = SimpleNamespace(__version__="10.16.1.11")
    for options in (ExportOptions(graph="portable"), ExportOptions(graph="plugin", half=True)):
        with pytest.raises(ValueError, match="an engine's ONNX is the plugin graph"):
            export_engine(trt, tmp_path / "m.engine", EngineRequest(half=True), onnx_path=plugin_onnx, options=options)
