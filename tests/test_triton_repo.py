"""Triton Inference Server model repositories: config.pbtxt parses as Triton's own ModelConfig and names the
right platform, tensors, types, dims, batching and instances; deploy/ templates match the writer.

The schema is Triton's ``model_config.proto`` as ``tritonclient`` ships it compiled
(``tritonclient/grpc/model_config_pb2.py``, loaded from its file: ``tritonclient.grpc`` itself
needs grpcio), and configs are parsed with protobuf's ``text_format``: a misspelt field, a wrong
enum name or a malformed value fails the parse.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format

from nlseg.tensorrt.model_repository import engine_model, onnx_model, write_model
from nlseg.tensorrt.shapes import ProfileShapes
from tests.tensorrt_fixtures import engine_metadata, model_metadata
from tests.test_onnx_cli import cli

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def _model_config_class():
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    module_spec = importlib.util.spec_from_file_location("_tritonclient_model_config_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.ModelConfig


def parse_config(text: str):
    """``text`` as Triton's ``inference.ModelConfig``; google.protobuf.text_format.ParseError if it is not one."""
    model_config = _model_config_class()
    if model_config is None:
        pytest.skip("needs Triton's model_config.proto from tritonclient (pip install -e '.[dev]')")
    return text_format.Parse(text, model_config())
TINY = ["--random-init", "--blocks", "1-1-1", "--channels", "8-8-8", "--nonlocal", "frac"]


def tensors(config, key: str) -> dict[str, tuple[str, list[int]]]:
    enum = type(config).DESCRIPTOR.fields_by_name["input"].message_type.fields_by_name["data_type"].enum_type
    return {t.name: (enum.values_by_number[t.data_type].name, list(t.dims)) for t in getattr(config, key)}


def kind(config) -> list[tuple[int, str]]:
    enum = type(config).DESCRIPTOR.fields_by_name["instance_group"].message_type.fields_by_name["kind"].enum_type
    return [(g.count, enum.values_by_number[g.kind].name) for g in config.instance_group]


def test_onnx_repository_from_export(capsys, tmp_path):
    """nlseg export --plugin --triton-repo: the repository's ONNX model is the portable graph."""
    root = tmp_path / "models"
    code, out, err = cli(capsys, "export", *TINY, "--plugin", "--out", tmp_path / "seg.onnx", "--triton-repo", root)
    assert code == 0, err
    assert "wrote Triton model repository" in out and "tritonserver --model-repository=/models" in out
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "seg_onnx/1/model.onnx", "seg_onnx/config.pbtxt"]
    config = parse_config((root / "seg_onnx" / "config.pbtxt").read_text())
    assert (config.name, config.platform, config.max_batch_size) == ("seg_onnx", "onnxruntime_onnx", 8)
    assert tensors(config, "input") == {"image": ("TYPE_FP32", [3, -1, -1])}
    assert tensors(config, "output") == {"logits": ("TYPE_FP32", [19, -1, -1])}
    assert config.HasField("dynamic_batching") and config.dynamic_batching.max_queue_delay_microseconds == 100
    assert kind(config) == [(1, "KIND_GPU")] and config.default_model_filename == "model.onnx"
    served = root / "seg_onnx" / "1" / "model.onnx"
    assert not any(n.domain == "nlseg" for n in onnx.load(str(served)).graph.node), "Triton runs standard operators"
    session = ort.InferenceSession(str(served), providers=["CPUExecutionProvider"])  # no custom-op library
    logits = session.run(None, {"image": np.zeros((2, 3, 20, 36), np.float32)})[0]
    assert logits.shape == (2, 19, 20, 36)


def test_half_precision_labels_and_fixed_sizes(capsys, tmp_path):
    root = tmp_path / "models"
    code, _, err = cli(capsys, "export", *TINY, "--half", "--with-argmax", "--no-dynamic", "--size", "30x40",
                       "--out", tmp_path / "fixed.onnx", "--triton-repo", root)
    assert code == 0, err
    config = parse_config((root / "fixed_onnx" / "config.pbtxt").read_text())
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert tensors(config, "input") == {"image": ("TYPE_FP16", [1, 3, 30, 40])}
    assert tensors(config, "output") == {"logits": ("TYPE_FP16", [1, 19, 30, 40]),
                                         "labels": ("TYPE_UINT8", [1, 30, 40])}


def test_engine_model_takes_types_and_batch_range_from_the_engine(tmp_path):
    meta = engine_metadata(io_dtype="float16", max_batch=4, outputs=("logits", "labels"))
    plan = tmp_path / "m.engine"
    plan.write_bytes(b"serialized engine bytes")
    files = write_model(tmp_path / "repo", engine_model("m_trt", meta), plan)
    assert [p.relative_to(tmp_path / "repo").as_posix() for p in files] == ["m_trt/config.pbtxt", "m_trt/1/model.plan"]
    assert files[1].read_bytes() == plan.read_bytes()
    config = parse_config(files[0].read_text())
    assert (config.platform, config.max_batch_size, config.default_model_filename) == ("tensorrt_plan", 4, "model.plan")
    assert tensors(config, "input") == {"image": ("TYPE_FP16", [3, -1, -1])}
    assert tensors(config, "output") == {"logits": ("TYPE_FP16", [19, -1, -1]), "labels": ("TYPE_UINT8", [-1, -1])}
    assert config.HasField("dynamic_batching") and kind(config) == [(1, "KIND_GPU")]


def test_engine_without_a_batch_range_is_not_batched():
    single = parse_config(engine_model("one", engine_metadata(max_batch=1)).config_text())
    assert single.max_batch_size == 1 and not single.HasField("dynamic_batching")
    fixed = parse_config(engine_model("fixed", engine_metadata(batch_axis=1)).config_text())
    assert fixed.max_batch_size == 0 and tensors(fixed, "input") == {"image": ("TYPE_FP32", [1, 3, -1, -1])}


def test_the_real_schema_refuses_what_triton_would():
    """The parse is Triton's schema, not a permissive one: a misspelt field and a wrong enum are errors."""
    good = engine_model("m", engine_metadata()).config_text()
    assert type(parse_config(good)).DESCRIPTOR.full_name == "inference.ModelConfig"
    assert "optimization" in type(parse_config(good)).DESCRIPTOR.fields_by_name, "the full schema, not a subset"
    with pytest.raises(text_format.ParseError, match="max_batch"):
        parse_config(good.replace("max_batch_size", "max_batch"))
    with pytest.raises(text_format.ParseError, match="KIND_TPU"):
        parse_config(good.replace("KIND_GPU", "KIND_TPU"))


def test_a_batched_engine_must_accept_batch_1():
    meta = engine_metadata(max_batch=8)
    refused = replace(meta, profile=ProfileShapes((2, 3, 90, 160), (4, 3, 90, 160), (8, 3, 360, 640)))
    with pytest.raises(ValueError, match=r"^min_shape: Triton sends batches of 1 to 8 .* starts at batch 2"):
        engine_model("m", refused)
    unbatched = engine_metadata(batch_axis=2)
    fixed = replace(unbatched, profile=ProfileShapes((2, 3, 90, 160), (2, 3, 90, 160), (2, 3, 90, 160)))
    assert engine_model("m", fixed).max_batch_size == 0, "a fixed batch is served as it is"


def test_classifier_labels_are_refused():
    meta = model_metadata(outputs=("logits", "labels"))
    classifier = type(meta)(**{**meta.__dict__, "config": type(meta.config)(task="classify")})
    with pytest.raises(ValueError, match="^triton_repo: .* without the argmax output"):
        onnx_model("c", classifier)


@pytest.mark.parametrize("name,make", [
    ("nlseg_onnx", lambda: onnx_model("nlseg_onnx", model_metadata())),
    ("nlseg_trt", lambda: engine_model("nlseg_trt", engine_metadata())),
])
def test_deploy_templates_are_what_the_writer_writes(name, make):
    template = (ROOT / "deploy" / "triton" / name / "config.pbtxt").read_text()
    assert template == make().config_text()
    parse_config(template)
