"""The Python API: ``load`` a model into a :class:`Segmenter`, ``export_model``, ``profile_backend``."""

from nlseg.api.export import Exported, export_model
from nlseg.api.profile import profile_backend
from nlseg.api.segmenter import InferResult, Segmenter, load

__all__ = ["Exported", "InferResult", "Segmenter", "export_model", "load", "profile_backend"]
