"""``export_model``: a checkpoint (or an untrained architecture) to ONNX (float or INT8), an OpenVINO IR (float
or INT8) or a TensorRT engine, or an ONNX export to an engine, with an optional Triton Inference Server
repository; what ``nlseg export`` runs."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import onnx

from nlseg.contract.calibration import DEFAULT_FRAMES, calibration_frames, calibration_inputs, describe_source
from nlseg.contract.limits import check_size, total_stride
from nlseg.errors import InputError
from nlseg.io import writable_file
from nlseg.nn.config import REFERENCE_SEGMENTERS
from nlseg.onnx.export import DEFAULT_OPSET, ExportOptions, ExportResult, export_onnx
from nlseg.onnx.source_model import SourceModel, from_checkpoint
from nlseg.tensorrt.build import BuildResult

if TYPE_CHECKING:
    from nlseg.openvino.export import IrExport

FORMATS: tuple[str, ...] = ("onnx", "openvino", "engine")
SUFFIXES: dict[str, tuple[str, ...]] = {"onnx": (".onnx",), "openvino": (".xml",), "engine": (".engine", ".plan")}
DEFAULT_NAMES = {"onnx": "model.onnx", "openvino": "model.xml", "engine": "model.engine"}


@dataclass(frozen=True)
class Exported:
    """What an export wrote: the model file, the ONNX export's or the engine build's details, and the
    Triton model repository files (if asked)."""

    path: Path
    onnx: ExportResult | None = None
    engine: BuildResult | None = None
    repository: list[Path] = field(default_factory=list)
    openvino: "IrExport | None" = None


def export_model(
    source: SourceModel | str | os.PathLike,
    out: str | os.PathLike | None = None,
    format: str = "onnx",
    *,
    opset: int = DEFAULT_OPSET,
    dynamic: bool | None = None,
    half: bool = False,
    simplify: bool = False,
    with_argmax: bool = False,
    plugin: bool = False,
    input_size: tuple[int, int] | None = None,
    int8: bool = False,
    calib_data: str | os.PathLike | None = None,
    calib_frames: int | None = None,
    min_shape: tuple[int, ...] | None = None,
    opt_shape: tuple[int, ...] | None = None,
    max_shape: tuple[int, ...] | None = None,
    workspace: int | None = None,
    timing_cache: str | os.PathLike | None = None,
    triton_repo: str | os.PathLike | None = None,
    dataset: str | None = None,
) -> Exported:
    """Export ``source`` to ``out`` (default ``model.onnx`` / ``model.xml`` / ``model.engine``) in ``format``
    ('onnx', 'openvino' or 'engine').

    ``source``: a loaded :class:`SourceModel` (e.g. ``random_init``), a checkpoint path, or, for an
    engine, an nlseg ONNX export. ONNX options: ``opset``, ``dynamic``, ``half``, ``simplify``,
    ``with_argmax``, ``plugin`` (one nlseg::PairwiseKernel node per pairwise update), ``input_size``.
    ``int8`` for 'onnx' (ONNX Runtime static QDQ quantization) and 'openvino' (NNCF): calibrated on
    ``calib_frames`` (default 32) frames of ``calib_data``, a video or a folder of images (default: the
    bundled clip). 'openvino' writes an IR (.xml and .bin) of the portable graph, float32 weights.
    Engine options (TensorRT ≥ 10.9 and a GPU): ``half``, ``int8`` + ``calib_data``, ``min_shape`` /
    ``opt_shape`` / ``max_shape`` (B, C, H, W), ``workspace`` (MiB), ``timing_cache``. ``triton_repo``:
    also write a Triton Inference Server model repository there. InputError naming the bad parameter.
    """
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}", param="format")
    engine_only = {"int8": int8, "calib_data": calib_data, "min_shape": min_shape, "opt_shape": opt_shape,
                   "max_shape": max_shape, "workspace": workspace, "timing_cache": timing_cache}
    if format != "engine":
        given = [name for name, value in engine_only.items() if value not in (None, False)
                 and name not in ("int8", "calib_data")]
        if given:
            raise InputError("applies to TensorRT engines only (format 'engine'; nlseg export --trt)", param=given[0])
        if calib_data is not None and not int8:
            raise InputError("calibration data is for INT8 models (int8)", param="calib_data")
    if calib_frames is not None and (format == "engine" or not int8):
        raise InputError("sets how many frames calibrate an INT8 ONNX or OpenVINO model (int8)", param="calib_frames")
    target = writable_file(out if out is not None else DEFAULT_NAMES[format], SUFFIXES[format])
    onnx_input = not isinstance(source, SourceModel) and Path(source).suffix.lower() == ".onnx"
    if onnx_input and format != "engine":
        raise InputError(f"{source}: already an ONNX export; build it into an engine (format 'engine')")
    if format == "engine":
        from nlseg.tensorrt.export import EngineRequest

        if onnx_input:  # its graph is built as it is: what would shape another export is refused, not ignored
            repository = triton_repo is not None  # whose portable graph takes the opset and simplification
            export_only = {"opset": opset != DEFAULT_OPSET and not repository, "dynamic": dynamic is not None,
                           "simplify": simplify and not repository, "with_argmax": with_argmax, "plugin": plugin,
                           "input_size": input_size is not None, "dataset": dataset is not None}
            given = [name for name, value in export_only.items() if value]
            if given:
                raise InputError(f"shapes the ONNX export of a checkpoint, but {source} is already one (its graph is "
                                 "built as it is)", param=given[0])
        request = EngineRequest(half=half, int8=int8, calib_data=None if calib_data is None else Path(calib_data),
                                min_shape=min_shape, opt_shape=opt_shape, max_shape=max_shape, workspace_mb=workspace,
                                timing_cache=None if timing_cache is None else Path(timing_cache))
        graph = ExportOptions("plugin", opset, dynamic, False, simplify, with_argmax)  # half: the engine's (request)
        return _engine(source, target, onnx_input, graph, input_size, request, triton_repo, dataset)
    model = _sized(_exportable(source if isinstance(source, SourceModel) else from_checkpoint(source)), input_size)
    options = ExportOptions("plugin" if plugin else "portable", opset, dynamic, half, simplify, with_argmax)
    frames = calib_frames if calib_frames is not None else DEFAULT_FRAMES
    if format == "openvino":
        from nlseg.openvino.export import export_ir

        if triton_repo is not None:
            raise InputError("Triton model repositories hold ONNX models and engines, not OpenVINO IR",
                             param="triton_repo")
        ir = export_ir(model, target, options, dataset=dataset, int8=int8, calib_data=calib_data, calib_frames=frames)
        return Exported(ir.path, openvino=ir)
    if int8:
        result = _onnx_int8(model, target, options, dataset, calib_data, frames)
    else:
        result = export_onnx(model, target, options, dataset=dataset)
    repository = _repository(triton_repo, target.stem, model, result.metadata, options, None, dataset)
    return Exported(result.path, onnx=result, repository=repository)


def _onnx_int8(model: SourceModel, target: Path, options: ExportOptions, dataset: str | None,
               calib_data: str | os.PathLike | None, frames: int) -> ExportResult:
    """The float32 portable export of ``model``, quantized by ONNX Runtime (QDQ) into ``target``."""
    from nlseg.onnx.quantize import quantize_onnx

    if options.half:
        raise InputError("INT8 quantization starts from the float32 graph", param="half")
    if options.graph == "plugin":
        raise InputError("INT8 quantization takes the portable graph (nlseg::PairwiseKernel cannot be quantized)",
                         param="plugin")
    with tempfile.TemporaryDirectory(prefix="nlseg-int8-") as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", options, dataset=dataset)
        inputs = calibration_inputs(calibration_frames(calib_data, frames), fp32.metadata.input_size,
                                    fp32.metadata.info())
        metadata = quantize_onnx(fp32.path, target, inputs, describe_source(calib_data))
    counts = Counter(n.op_type for n in onnx.load(str(target)).graph.node)
    return ExportResult(target, metadata, dict(counts), fp32.simplified)


def _exportable(source: SourceModel) -> SourceModel:
    """``source``, unless it is a reference segmenter (ENet: max unpooling, which the ONNX export lacks)."""
    if source.config.arch in REFERENCE_SEGMENTERS:
        raise InputError(f"{source.config.arch} is a reference segmenter for accuracy comparisons; it runs in PyTorch "
                         "(nlseg eval, nlseg infer) and is not exported")
    return source


def _sized(source: SourceModel, input_size: tuple[int, int] | None) -> SourceModel:
    """``source`` with ``input_size`` recorded as its input size (segmenters; a classifier's is fixed)."""
    if input_size is None:
        return source
    size = tuple(int(v) for v in input_size)
    if len(size) != 2 or min(size) <= 0:
        raise InputError(f"expected (height, width), got {input_size}", param="input_size")
    if source.config.task == "classify" and size != tuple(source.config.image_size):
        h, w = source.config.image_size
        raise InputError(f"the classifier's dense head is fixed to {h}x{w}", param="input_size")
    check_size(size, total_stride(source.config), "input_size")  # type: ignore[arg-type]
    return replace(source, config=replace(source.config, image_size=size))


def _engine(source: SourceModel | str | os.PathLike, out: Path, onnx_input: bool, options: ExportOptions,
            input_size: tuple[int, int] | None, request, triton_repo: str | os.PathLike | None,
            dataset: str | None) -> Exported:
    from nlseg.tensorrt.compat import import_tensorrt
    from nlseg.tensorrt.export import export_engine

    trt = import_tensorrt("format 'engine'")
    min_batch = (request.min_shape or request.opt_shape or (1,))[0]
    if triton_repo is not None and min_batch > 1:  # the batch axis is dynamic, or the profile would be refused
        raise InputError(f"the Triton repository's batched model gets batches from 1 up, but the engine's profile "
                         f"would start at batch {min_batch}; give a min shape with batch 1", param="min_shape")
    if onnx_input:
        built = export_engine(trt, out, request, onnx_path=Path(source))  # type: ignore[arg-type]
        model = None
    else:
        model = _sized(_exportable(source if isinstance(source, SourceModel) else from_checkpoint(source)), input_size)
        built = export_engine(trt, out, request, source=model, options=options, dataset=dataset)
    repository = _repository(triton_repo, out.stem, model, built.metadata.model, options, built, dataset)
    return Exported(built.engine, engine=built, repository=repository)


def _repository(root: str | os.PathLike | None, name: str, source: SourceModel | None, metadata, options: ExportOptions,
                engine: BuildResult | None, dataset: str | None) -> list[Path]:
    if root is None:
        return []
    from nlseg.tensorrt.export import write_triton_repository

    return write_triton_repository(Path(root), name, source, metadata, options, engine, dataset)
