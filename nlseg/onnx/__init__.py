"""ONNX export of nlseg models: portable and PairwiseKernel-plugin graphs, metadata, parity checks.

- :func:`export_onnx` (``nlseg export --format onnx``), options in :class:`ExportOptions`;
- :func:`read_metadata` → :class:`ModelMetadata`, what ``nlseg infer`` / ``profile`` need;
- :func:`open_session`: an ONNX Runtime session that also runs ``nlseg::PairwiseKernel`` nodes;
- :func:`check_onnx` (``nlseg check``): parity against PyTorch.
"""

from nlseg.onnx.export import ExportOptions, ExportResult, export_onnx
from nlseg.onnx.metadata import ModelMetadata, WeightsOrigin, read_metadata
from nlseg.onnx.ort_op import open_session
from nlseg.onnx.parity import ParityReport, Tolerances, check_onnx

__all__ = [
    "ExportOptions", "ExportResult", "export_onnx", "ModelMetadata", "WeightsOrigin", "read_metadata",
    "open_session", "ParityReport", "Tolerances", "check_onnx",
]
