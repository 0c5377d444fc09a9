"""What an exported model carries in ONNX ``metadata_props``, and :func:`read_metadata`.

Keys (all values strings; lists and dicts as JSON):

| key | value |
|---|---|
| ``nlseg.metadata_version`` | ``"1"`` |
| ``nlseg.version`` | nlseg version that exported the model |
| ``nlseg.model_config`` | :class:`ModelConfig` as JSON (``ModelConfig.to_dict``) |
| ``nlseg.dataset`` | dataset preset name, or ``""`` when unknown |
| ``nlseg.task`` | ``classify`` or ``segment`` |
| ``nlseg.class_names`` | JSON list of class names, in output-channel order |
| ``nlseg.palette`` | JSON list of ``[r, g, b]``, one per class |
| ``nlseg.input_size`` | JSON ``[height, width]`` the model was trained / exported for |
| ``nlseg.mean``, ``nlseg.std`` | JSON lists, per input channel: input = (pixels / 255 − mean) / std |
| ``nlseg.mean_image`` | optional JSON ``{"shape": [C, H, W], "values": [...]}``: a per-pixel mean (thesis §4.4) that replaces ``mean``, resized bilinearly to the input size |
| ``nlseg.graph`` | ``portable`` or ``plugin`` |
| ``nlseg.precision`` | ``float32`` or ``float16`` (of the input and the logits) |
| ``nlseg.dynamic_axes`` | JSON list among ``batch``, ``height``, ``width`` |
| ``nlseg.outputs`` | JSON list: ``["logits"]`` or ``["logits", "labels"]`` |
| ``nlseg.weights`` | JSON ``{"source", "path", "seed", "sha256"}`` (:class:`WeightsOrigin`) |
| ``nlseg.quantization`` | optional JSON ``{"method", "activations", "weights", "calibration", "frames"}``: an INT8 model (``onnxruntime-qdq`` static quantization or ``nncf`` for OpenVINO) and the frames it was calibrated on; input and logits keep ``nlseg.precision`` |

An OpenVINO IR (``nlseg export --format openvino``) carries the same entries in its ``rt_info``
under ``nlseg`` (:mod:`nlseg.openvino.ir`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from nlseg.contract import ModelInfo, Normalization
from nlseg.contract.limits import total_stride
from nlseg.errors import InputError
from nlseg.nn.config import ModelConfig

PREFIX = "nlseg."
METADATA_VERSION = 1
INPUT_NAME = "image"
WEIGHT_SOURCES: tuple[str, ...] = ("checkpoint", "random-init")


@dataclass(frozen=True)
class WeightsOrigin:
    """Where the exported weights came from: a checkpoint file, or ``build_model`` under a seed.

    ``sha256`` is :func:`nlseg.onnx.source_model.state_digest` of the exported state dict, so a
    parity check can prove it compares against the very same weights.
    """

    source: str
    sha256: str
    path: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class ModelMetadata:
    """The metadata of an nlseg ONNX export (see the module docstring for the stored form)."""

    config: ModelConfig
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    graph: str
    precision: str
    dynamic_axes: tuple[str, ...]
    outputs: tuple[str, ...]
    weights: WeightsOrigin
    dataset: str | None = None
    nlseg_version: str = ""
    mean_image: np.ndarray | None = None
    quantization: dict[str, Any] | None = None

    def info(self) -> ModelInfo:
        """What a runtime needs from this export (the contract every backend shares)."""
        return ModelInfo(
            input_size=self.input_size,
            class_names=self.class_names,
            palette=self.palette,
            normalization=Normalization(tuple(self.mean), tuple(self.std), self.mean_image),
            task=self.config.task,
            precision=self.precision,
            dynamic="height" in self.dynamic_axes and "width" in self.dynamic_axes,
            min_side=total_stride(self.config),
        )

    def to_props(self) -> dict[str, str]:
        """The ``metadata_props`` entries (key → string)."""
        values: dict[str, Any] = {
            "metadata_version": str(METADATA_VERSION),
            "version": self.nlseg_version,
            "model_config": self.config.to_dict(),
            "dataset": self.dataset or "",
            "task": self.config.task,
            "class_names": list(self.class_names),
            "palette": [list(c) for c in self.palette],
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "graph": self.graph,
            "precision": self.precision,
            "dynamic_axes": list(self.dynamic_axes),
            "outputs": list(self.outputs),
            "weights": {"source": self.weights.source, "path": self.weights.path,
                        "seed": self.weights.seed, "sha256": self.weights.sha256},
        }
        if self.mean_image is not None:
            values["mean_image"] = {"shape": list(self.mean_image.shape),
                                    "values": [round(float(v), 6) for v in self.mean_image.reshape(-1)]}
        if self.quantization is not None:
            values["quantization"] = self.quantization
        return {PREFIX + k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> "ModelMetadata":
        """Inverse of :meth:`to_props`; ValueError naming the first missing or malformed key."""
        def get(key: str) -> str:
            if PREFIX + key not in props:
                raise ValueError(f"no '{PREFIX}{key}' entry")
            return props[PREFIX + key]

        def load(key: str) -> Any:
            try:
                return json.loads(get(key))
            except json.JSONDecodeError:
                raise ValueError(f"'{PREFIX}{key}' is not JSON") from None

        version = int(get("metadata_version"))
        if version > METADATA_VERSION:
            raise ValueError(f"metadata version {version} is newer than this nlseg reads ({METADATA_VERSION})")
        weights = load("weights")
        if weights.get("source") not in WEIGHT_SOURCES:
            raise ValueError(f"'{PREFIX}weights' names an unknown source {weights.get('source')!r}")
        return cls(
            config=ModelConfig.from_dict(load("model_config")),
            class_names=tuple(str(name) for name in load("class_names")),
            palette=tuple((int(r), int(g), int(b)) for r, g, b in load("palette")),
            input_size=(int(load("input_size")[0]), int(load("input_size")[1])),
            mean=tuple(float(v) for v in load("mean")),
            std=tuple(float(v) for v in load("std")),
            graph=get("graph"),
            precision=get("precision"),
            dynamic_axes=tuple(load("dynamic_axes")),
            outputs=tuple(load("outputs")),
            weights=WeightsOrigin(source=weights["source"], sha256=weights["sha256"],
                                  path=weights.get("path"), seed=weights.get("seed")),
            dataset=get("dataset") or None,
            nlseg_version=get("version"),
            mean_image=_mean_image(load("mean_image")) if PREFIX + "mean_image" in props else None,
            quantization=load("quantization") if PREFIX + "quantization" in props else None,
        )


def _mean_image(stored: dict[str, Any]) -> np.ndarray:
    """The stored per-pixel mean as a float32 (C, H, W) array."""
    return np.asarray(stored["values"], np.float32).reshape(stored["shape"])


def write_metadata(model: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Replace the nlseg entries of ``model.metadata_props`` with ``metadata``."""
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in [*kept, *metadata.to_props().items()]:
        model.metadata_props.add(key=key, value=value)


def load_model_proto(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """The ONNX model at ``path``; InputError naming the file when it is missing or not ONNX."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: ONNX model not found")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise InputError(f"{p}: not a readable ONNX model ({type(exc).__name__})") from None
    if not model.graph.node:
        raise InputError(f"{p}: not an ONNX model (no graph nodes)")
    return model


def metadata_of(model: onnx.ModelProto, source: str = "model") -> ModelMetadata:
    """The nlseg metadata of a loaded model; InputError naming ``source`` when it has none."""
    props = {p.key: p.value for p in model.metadata_props}
    try:
        return ModelMetadata.from_props(props)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise InputError(f"{source}: not an nlseg export or its metadata is damaged ({exc})") from None


def read_metadata(path: str | os.PathLike[str]) -> ModelMetadata:
    """The nlseg metadata of the ONNX model at ``path`` (InputError naming the file otherwise)."""
    return metadata_of(load_model_proto(path), str(path))
