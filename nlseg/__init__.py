"""nlseg: Nonlocal Hamiltonian networks for classification and driving-scene segmentation.

The Python API (imported on first use)::

    import nlseg
    seg = nlseg.load()                      # the bundled weights; or "ckpt.pt", "model.onnx", "model.engine"
    labels = seg.predict("street.jpg")      # uint8 train ids at the image's own size
    probs = seg.predict_proba("street.jpg")  # (classes, H, W) float16 softmax probabilities
    nlseg.train("camvid", data_dir="data/camvid", out="runs/camvid")   # what `nlseg train` runs
    net = nlseg.create_model("bdd100k", nonlocal_kernel="frac")   # a plain nn.Module
"""

from __future__ import annotations

import os as _os
from typing import Any

# nlseg reports unreadable media itself, in one line; keep FFmpeg and OpenCV from printing their own.
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

__version__ = "0.1.0"

# name -> module that defines it; loaded lazily so that `import nlseg` stays light and cycle-free.
_API = {
    "load": "nlseg.api.segmenter",
    "Segmenter": "nlseg.api.segmenter",
    "export_model": "nlseg.api.export",
    "train": "nlseg.train",  # the training package, callable as nlseg.api.training.train (nlseg/train/__init__.py)
    "evaluate": "nlseg.api.training",
    "profile_backend": "nlseg.api.profile",
    "create_model": "nlseg.nn.config",
    "ModelConfig": "nlseg.nn.config",
    "ModelInfo": "nlseg.contract",
    "pairwise_update": "nlseg.ops.pairwise",
    "InputError": "nlseg.errors",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'nlseg' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_API[name])
    value = module if module.__name__ == f"nlseg.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
