"""``nlseg export --format openvino``: a model to an OpenVINO IR (.xml + .bin) with nlseg's metadata, optionally INT8."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from nlseg.contract.calibration import DEFAULT_FRAMES, calibration_frames, calibration_inputs, describe_source
from nlseg.errors import InputError
from nlseg.onnx.export import ExportOptions, export_onnx
from nlseg.onnx.metadata import ModelMetadata
from nlseg.onnx.quantize import quantization_record
from nlseg.onnx.source_model import SourceModel
from nlseg.openvino.ir import import_openvino, read_model, write_ir


@dataclass(frozen=True)
class IrExport:
    """What an OpenVINO export wrote: the .xml (its .bin beside it), its metadata and OpenVINO's version."""

    path: Path
    metadata: ModelMetadata
    openvino_version: str


def export_ir(source: SourceModel, out: Path, options: ExportOptions, *, dataset: str | None = None,
              int8: bool = False, calib_data: str | os.PathLike | None = None,
              calib_frames: int = DEFAULT_FRAMES) -> IrExport:
    """``source`` as the portable ONNX graph, converted by OpenVINO and saved as an IR at ``out``; with ``int8``
    quantized by NNCF on ``calib_frames`` frames of ``calib_data`` (default: the bundled clip)."""
    if options.graph != "portable":
        raise InputError("OpenVINO cannot run nlseg::PairwiseKernel nodes; OpenVINO models are portable graphs",
                         param="plugin")
    if options.half:
        raise InputError("an OpenVINO model keeps float32 weights; its compute precision is chosen when it is "
                         "loaded (bf16: nlseg infer --half, load(precision='bf16'))", param="half")
    ov = import_openvino("format 'openvino'")
    with tempfile.TemporaryDirectory(prefix="nlseg-openvino-") as tmp:
        onnx_path = export_onnx(source, Path(tmp) / "model.onnx", options, dataset=dataset).path
        model, metadata = read_model(ov.Core(), onnx_path)
    if int8:
        from nlseg.openvino.quantize import METHOD, quantize_model

        inputs = calibration_inputs(calibration_frames(calib_data, calib_frames), metadata.input_size, metadata.info())
        model = quantize_model(model, inputs)
        metadata = replace(metadata, quantization=quantization_record(METHOD, describe_source(calib_data), len(inputs)))
    return IrExport(write_ir(ov, model, metadata, out), metadata, ov.get_version())
