"""``nlseg export --trt``: a checkpoint or an nlseg ONNX export → engine; and Triton repositories.

From a checkpoint (or ``--random-init``) the plugin graph is exported first, in float16 when
the precision plan wants the precision in the graph (TensorRT 11, or an fp16 ONNX on 10); an
existing ``.onnx`` export (plugin or portable graph) is built as it is.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import onnx

from nlseg.errors import InputError
from nlseg.onnx.export import ExportOptions, export_onnx
from nlseg.onnx.metadata import ModelMetadata, load_model_proto, metadata_of
from nlseg.onnx.source_model import SourceModel, for_check
from nlseg.tensorrt.build import BuildResult, EngineRequest, build_engine
from nlseg.tensorrt.compat import plan_precision
from nlseg.tensorrt.shapes import profile_shapes
from nlseg.tensorrt.model_repository import DEFAULT_MAX_BATCH, engine_model, onnx_model, write_model


def _exported(source: SourceModel, options: ExportOptions, dataset: str | None) -> tuple[onnx.ModelProto, ModelMetadata]:
    with tempfile.TemporaryDirectory(prefix="nlseg-engine-") as tmp:
        try:
            result = export_onnx(source, Path(tmp) / "model.onnx", options, dataset=dataset)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        return onnx.load(str(result.path)), result.metadata


def export_engine(trt: ModuleType, out: Path, request: EngineRequest, *, source: SourceModel | None = None,
                  onnx_path: Path | None = None, options: ExportOptions = ExportOptions(graph="plugin"),
                  dataset: str | None = None) -> BuildResult:
    """Build ``out`` from ``source`` (exported as a plugin graph with ``options``) or from ``onnx_path``.

    ``options`` sets the export's opset, dynamic axes, simplification and argmax output; the graph
    (plugin) and its precision (float16 where the precision plan wants it in the graph) are the
    engine's, so ``options`` must name the plugin graph and leave ``half`` off (ValueError).
    """
    if (source is None) == (onnx_path is None):
        raise ValueError("pass exactly one of source and onnx_path")
    if options.graph != "plugin" or options.half:
        raise ValueError("an engine's ONNX is the plugin graph at the precision plan's type: pass "
                         "ExportOptions(graph='plugin') with half left off, and half in the EngineRequest")
    if onnx_path is not None:
        model = load_model_proto(onnx_path)
        metadata = metadata_of(model, str(onnx_path))
        plan = plan_precision(trt.__version__, request.half, request.int8, metadata.precision)
    else:
        plan = plan_precision(trt.__version__, request.half, request.int8)
        model, metadata = _exported(source, replace(options, half=plan.onnx_half), dataset)
    shapes = profile_shapes(metadata, request.min_shape, request.opt_shape, request.max_shape)
    return build_engine(trt, model, metadata, out, plan, request, shapes)


def write_triton_repository(root: Path, name: str, source: SourceModel | None, metadata: ModelMetadata,
                            options: ExportOptions, engine: BuildResult | None = None,
                            dataset: str | None = None) -> list[Path]:
    """``root/<name>_onnx`` (portable graph, exported from ``source`` or the recorded origin of ``metadata``)
    and, given an engine, ``root/<name>_trt``. Returns the files written."""
    if metadata.config.task != "segment" and "labels" in metadata.outputs:
        raise InputError("a classifier's labels output has no per-image dims; export without the argmax output",
                         param="triton_repo")
    try:
        served_engine = engine_model(f"{name}_trt", engine.metadata) if engine is not None else None
    except InputError as exc:
        raise InputError(f"{exc.message} (the engine {engine.engine} was written, the repository was not)",
                         param=exc.param) from None
    source = source if source is not None else for_check(metadata, None)
    portable = ExportOptions(graph="portable", opset=options.opset, dynamic=bool(metadata.dynamic_axes),
                             half=metadata.precision == "float16", simplify=options.simplify,
                             with_argmax="labels" in metadata.outputs)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="nlseg-triton-") as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            result = export_onnx(source, path, portable, dataset=dataset or metadata.dataset)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        max_batch = engine.metadata.profile.max[0] if engine is not None else DEFAULT_MAX_BATCH
        written += write_model(root, onnx_model(f"{name}_onnx", result.metadata, max_batch), path)
    if engine is not None and served_engine is not None:
        written += write_model(root, served_engine, engine.engine)
    return written
