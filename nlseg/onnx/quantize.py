"""INT8 ONNX for the CPU: ONNX Runtime static quantization (QDQ) calibrated on real frames.

``quantize_static`` inserts QuantizeLinear/DequantizeLinear pairs around every quantizable
operator (convolutions, transposed convolutions, the Nonlocal Blocks' MatMuls, …): weights as
int8 per output channel, activations as uint8 (ONNX Runtime's recommended pairing on x86) with
ranges from the calibration frames' activations (percentile 99.999, robust to the few extreme
values a min/max keeps). ONNX Runtime fuses the pairs into integer kernels when it loads the
model. Input and logits stay float32; the metadata records ``nlseg.quantization``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from nlseg.errors import InputError
from nlseg.io import atomic_path
from nlseg.onnx.metadata import INPUT_NAME, ModelMetadata, load_model_proto, metadata_of, write_metadata

METHOD = "onnxruntime-qdq"
CALIBRATION_METHOD = "percentile 99.999"


def quantization_record(method: str, calibration: str, frames: int) -> dict[str, Any]:
    """What ``nlseg.quantization`` holds: the method, number formats and the calibration frames."""
    return {"method": method, "activations": "uint8" if method == METHOD else "int8", "weights": "int8 per channel",
            "calibration": calibration, "frames": frames}


def quantize_onnx(fp32: str | os.PathLike[str], out: str | os.PathLike[str], inputs: list[np.ndarray],
                  calibration: str) -> ModelMetadata:
    """Quantize the float32 portable nlseg export ``fp32`` into ``out`` (QDQ INT8), calibrated on ``inputs``
    ((1, 3, H, W) float32 model inputs); ``calibration`` names where the frames came from."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    source = Path(fp32)
    metadata = metadata_of(load_model_proto(source), str(source))
    if metadata.graph != "portable" or metadata.precision != "float32":
        raise InputError(f"{source}: INT8 quantization takes a float32 portable graph, not a {metadata.precision} "
                         f"{metadata.graph} graph", param="int8")
    if metadata.quantization is not None:
        raise InputError(f"{source}: already quantized ({metadata.quantization['method']})", param="int8")

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {INPUT_NAME: x}

    with tempfile.TemporaryDirectory(prefix="nlseg-int8-") as tmp:
        quantized_path = Path(tmp) / "int8.onnx"
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its percentiles
            quantize_static(str(source), str(quantized_path), Frames(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=CalibrationMethod.Percentile)
        model = onnx.load(str(quantized_path))
    quantized = replace(metadata, quantization={**quantization_record(METHOD, calibration, len(inputs)),
                                                "calibration_method": CALIBRATION_METHOD})
    write_metadata(model, quantized)
    with atomic_path(out) as tmp_out:
        onnx.save(model, str(tmp_out))
    return quantized
