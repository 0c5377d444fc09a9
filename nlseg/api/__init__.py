"""The Python API: ``load`` a model into a :class:`Segmenter`; ``export_model``, ``profile_backend``;
``train`` and ``evaluate`` (what ``nlseg train`` and ``nlseg eval`` run)."""

from nlseg.api.export import Exported, export_model
from nlseg.api.profile import profile_backend
from nlseg.api.segmenter import InferResult, Segmenter, load
from nlseg.api.training import evaluate, train

__all__ = ["Exported", "InferResult", "Segmenter", "evaluate", "export_model", "load", "profile_backend", "train"]
