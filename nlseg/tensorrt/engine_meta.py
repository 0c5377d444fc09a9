"""``<stem>.engine.json``: what an engine was built with and for, and what ``nlseg infer`` needs.

An engine runs only under the TensorRT version that built it and on GPUs of the compute
capability it was built for (its tactics and the plugin's PTX target that GPU), so
:func:`check_runtime` refuses anything else with one line instead of a deserialization error.
The model's own metadata (config, classes, palette, input size, normalisation, weights origin)
is the ONNX export's (:class:`nlseg.onnx.metadata.ModelMetadata`), stored as its
``metadata_props`` entries.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from nlseg.contract import ModelInfo
from nlseg.errors import InputError
from nlseg.io import atomic_path
from nlseg.onnx.metadata import ModelMetadata
from nlseg.precision import PRECISIONS
from nlseg.tensorrt.compat import parse_version
from nlseg.tensorrt.shapes import ProfileShapes

ENGINE_META_VERSION = 1


@dataclass(frozen=True)
class TensorInfo:
    """One engine input or output: name, type ('float32', 'float16', 'uint8', …), shape (-1 where dynamic)."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class PluginInfo:
    """The plugin layers in the engine: id parts, how many, which kernels, in which type."""

    name: str
    namespace: str
    version: str
    count: int
    kernels: tuple[str, ...]
    dtype: str
    implementation: str = "aot"


@dataclass(frozen=True)
class EngineMetadata:
    """The contents of ``<stem>.engine.json``."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    precision: str
    strongly_typed: bool
    profile: ProfileShapes
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    plugin: PluginInfo | None
    model: ModelMetadata
    onnx: str
    layers: int
    nlseg_version: str
    lowered_pairwise: int = 0
    plugin_layers: tuple[str, ...] = field(default_factory=tuple)

    def info(self) -> ModelInfo:
        """What a runtime needs from this engine (see :func:`engine_info`)."""
        return engine_info(self.model, self.profile, self.precision)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metadata_version": ENGINE_META_VERSION,
            "tensorrt_version": self.tensorrt_version,
            "gpu": {"name": self.gpu_name, "compute_capability": list(self.compute_capability)},
            "precision": self.precision,
            "strongly_typed": self.strongly_typed,
            "profile": self.profile.to_dict(),
            "inputs": [asdict(t) | {"shape": list(t.shape)} for t in self.inputs],
            "outputs": [asdict(t) | {"shape": list(t.shape)} for t in self.outputs],
            "plugin": None if self.plugin is None else asdict(self.plugin) | {"kernels": list(self.plugin.kernels)},
            "lowered_pairwise": self.lowered_pairwise,
            "layers": self.layers,
            "plugin_layers": list(self.plugin_layers),
            "onnx": self.onnx,
            "nlseg_version": self.nlseg_version,
            "model": self.model.to_props(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EngineMetadata":
        """Inverse of :meth:`to_dict`; KeyError / ValueError / TypeError on damaged data."""
        version = int(data["metadata_version"])
        if version > ENGINE_META_VERSION:
            raise ValueError(f"metadata version {version} is newer than this nlseg reads ({ENGINE_META_VERSION})")

        def tensors(key: str) -> tuple[TensorInfo, ...]:
            return tuple(TensorInfo(str(t["name"]), str(t["dtype"]), tuple(int(d) for d in t["shape"]))
                         for t in data[key])

        plugin = data["plugin"]
        major, minor = (int(v) for v in data["gpu"]["compute_capability"])
        return cls(
            tensorrt_version=str(data["tensorrt_version"]),
            gpu_name=str(data["gpu"]["name"]),
            compute_capability=(major, minor),
            precision=str(data["precision"]),
            strongly_typed=bool(data["strongly_typed"]),
            profile=ProfileShapes.from_dict(data["profile"]),
            inputs=tensors("inputs"),
            outputs=tensors("outputs"),
            plugin=None if plugin is None else PluginInfo(**{**plugin, "kernels": tuple(plugin["kernels"])}),
            model=ModelMetadata.from_props(data["model"]),
            onnx=str(data["onnx"]),
            layers=int(data["layers"]),
            nlseg_version=str(data["nlseg_version"]),
            lowered_pairwise=int(data.get("lowered_pairwise", 0)),
            plugin_layers=tuple(data.get("plugin_layers", ())),
        )


def engine_info(model: ModelMetadata, profile: ProfileShapes, precision: str | None = None) -> ModelInfo:
    """The contract of an engine built from ``model``: the export's own (classes, palette, normalisation
    including a per-pixel mean), with the profile's opt H x W as its size, dynamic when the profile spans
    sizes, and the engine's ``precision`` when known (the INT8 calibrator asks before the build)."""
    return replace(model.info(), input_size=(profile.opt[2], profile.opt[3]), dynamic=profile.min[2:] != profile.max[2:],
                   precision=model.precision if precision is None else PRECISIONS.get(precision, precision))


def metadata_path(engine: str | os.PathLike[str]) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    p = Path(engine)
    return p.with_name(p.name + ".json")


def write_engine_metadata(engine: str | os.PathLike[str], meta: EngineMetadata) -> Path:
    """Write ``<engine>.json`` (atomically); returns its path."""
    path = metadata_path(engine)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(meta.to_dict(), indent=2) + "\n")
    return path


def read_engine_metadata(engine: str | os.PathLike[str]) -> EngineMetadata:
    """The metadata beside ``engine``; InputError naming the file when it is missing or damaged."""
    path = metadata_path(engine)
    if not path.is_file():
        raise InputError(f"{engine}: its metadata {path.name} is missing (nlseg export --trt writes both; "
                         "rebuild the engine with nlseg)")
    try:
        return EngineMetadata.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise InputError(f"{path}: damaged engine metadata ({type(exc).__name__}: {exc})") from None


def check_runtime(meta: EngineMetadata, engine: str | os.PathLike[str], tensorrt_version: str,
                  compute_capability: tuple[int, int], gpu_name: str) -> None:
    """InputError unless this TensorRT and this GPU can run the engine.

    TensorRT deserializes an engine only under the version that built it (all four version
    numbers), and the engine's tactics and plugin PTX target one compute capability.
    """
    built, here = parse_version(meta.tensorrt_version), parse_version(tensorrt_version)
    if built != here:
        raise InputError(f"{engine}: built with TensorRT {meta.tensorrt_version}, this machine has TensorRT "
                         f"{tensorrt_version}; engines run only under the version that built them: rebuild it "
                         "here (nlseg export --trt) or install that TensorRT")
    if tuple(meta.compute_capability) != tuple(compute_capability):
        b, h = meta.compute_capability, compute_capability
        raise InputError(f"{engine}: built for {meta.gpu_name} (compute capability {b[0]}.{b[1]}), this GPU is "
                         f"{gpu_name} ({h[0]}.{h[1]}); rebuild the engine on this GPU (nlseg export --trt)")
