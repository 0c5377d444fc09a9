"""What a model expects, and the one way to prepare images for it.

:class:`ModelInfo` (task, classes, palette, input size, normalisation, precision) is read from a
checkpoint (:func:`info_from_checkpoint`), an ONNX export's metadata
(:meth:`nlseg.onnx.metadata.ModelMetadata.info`) or an engine's metadata
(:meth:`nlseg.tensorrt.engine_meta.EngineMetadata.info`), one function each;
:func:`read_image` decodes every image file nlseg reads (EXIF orientation applied, in training
and inference alike); :func:`preprocess` and :func:`normalise` turn images into model input for every backend, the
trainer, the INT8 calibrator and ``nlseg check``. Nothing here imports from ``onnx/``,
``tensorrt/`` or ``runtime/``: they all stand on it.
"""

from nlseg.contract.info import ModelInfo, Normalization, class_labels, info_from_checkpoint
from nlseg.contract.preprocess import normalise, preprocess, read_image, to_bgr8

__all__ = ["ModelInfo", "Normalization", "class_labels", "info_from_checkpoint", "normalise", "preprocess", "read_image", "to_bgr8"]
