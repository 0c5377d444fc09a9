"""Triton Inference Server model repositories: an ONNX model (``onnxruntime_onnx``) and an engine (``tensorrt_plan``).

Layout (``nlseg export --triton-repo DIR``)::

    DIR/<name>_onnx/config.pbtxt     DIR/<name>_onnx/1/model.onnx     (portable graph: standard operators)
    DIR/<name>_trt/config.pbtxt      DIR/<name>_trt/1/model.plan      (only when an engine was built)

The ONNX model is always the portable graph: Triton's onnxruntime backend cannot run the
``nlseg::PairwiseKernel`` node (nlseg runs it through a Python operator of
onnxruntime-extensions). The engine needs no plugin library in the server: its PairwiseKernel
kernels are compiled ahead of time into the plan. Batching: ``max_batch_size`` > 0 (Triton's
own batch dimension, left out of ``dims``) with ``dynamic_batching`` where the model's batch
axis is dynamic; ``max_batch_size: 0`` and full dims otherwise. With ``max_batch_size`` > 0 the server sends any
batch from 1 to ``max_batch_size`` (a lone request is a batch of 1), so an engine's profile must
accept batch 1: :func:`engine_model` refuses a ``--min-shape`` batch above 1 there.
``config.pbtxt`` is written in protobuf text format from :class:`TritonModel` (the tests parse
it with the ``model_config.proto`` that ``tritonclient`` ships); deploy/triton/ holds the same
configs for the demo model (tests keep them in sync).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from nlseg.errors import InputError
from nlseg.io import atomic_path
from nlseg.onnx.metadata import INPUT_NAME, ModelMetadata
from nlseg.precision import DTYPES
from nlseg.tensorrt.engine_meta import EngineMetadata, TensorInfo

ONNX_PLATFORM = "onnxruntime_onnx"
TENSORRT_PLATFORM = "tensorrt_plan"
DATA_TYPES = {name: d.triton_server for name, d in DTYPES.items()}
DEFAULT_MAX_BATCH = 8
MAX_QUEUE_DELAY_US = 100


@dataclass(frozen=True)
class TritonTensor:
    """One model input or output as config.pbtxt declares it (``dims`` without the batch axis when batching)."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    image: bool = False  # an NCHW image input: format FORMAT_NCHW


@dataclass(frozen=True)
class TritonModel:
    """One model directory of the repository: its config and the file it serves."""

    name: str
    platform: str
    max_batch_size: int
    inputs: tuple[TritonTensor, ...]
    outputs: tuple[TritonTensor, ...]
    filename: str
    instance_count: int = 1
    kind: str = "KIND_GPU"

    @property
    def dynamic_batching(self) -> bool:
        """Batch requests on the server: only where the model takes more than one image per call."""
        return self.max_batch_size > 1

    def config_text(self) -> str:
        """config.pbtxt in protobuf text format (Triton's ``inference.ModelConfig``)."""
        lines = [f'name: "{self.name}"', f'platform: "{self.platform}"', f"max_batch_size: {self.max_batch_size}"]
        for key, tensors in (("input", self.inputs), ("output", self.outputs)):
            lines.append(f"{key} [")
            for i, t in enumerate(tensors):
                lines += ["  {", f'    name: "{t.name}"', f"    data_type: {t.data_type}"]
                if t.image:
                    lines.append("    format: FORMAT_NCHW")
                lines += [f"    dims: [ {', '.join(map(str, t.dims))} ]", "  }" + ("," if i < len(tensors) - 1 else "")]
            lines.append("]")
        if self.dynamic_batching:
            lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}", "}"]
        lines += ["instance_group [", "  {", f"    count: {self.instance_count}", f"    kind: {self.kind}", "  }", "]",
                  f'default_model_filename: "{self.filename}"']
        return "\n".join(lines) + "\n"


def _output_dims(metadata: ModelMetadata, name: str, height: int, width: int) -> tuple[int, ...]:
    spatial = metadata.config.task == "segment"
    classes = metadata.config.num_classes
    if name == "labels" and not spatial:
        raise InputError("a classifier's labels output has no dims per image; export it without the argmax "
                         "output", param="triton_repo")
    if name == "labels":
        return (height, width)
    return (classes, height, width) if spatial else (classes,)


def onnx_model(name: str, metadata: ModelMetadata, max_batch: int = DEFAULT_MAX_BATCH) -> TritonModel:
    """The ``onnxruntime_onnx`` model of a portable export with ``metadata``."""
    batching = "batch" in metadata.dynamic_axes
    h = -1 if "height" in metadata.dynamic_axes else metadata.input_size[0]
    w = -1 if "width" in metadata.dynamic_axes else metadata.input_size[1]
    lead = () if batching else (1,)
    image = TritonTensor(INPUT_NAME, DATA_TYPES[metadata.precision], (*lead, metadata.config.in_channels, h, w), True)
    outputs = tuple(TritonTensor(out, DATA_TYPES["uint8" if out == "labels" else metadata.precision],
                                 (*lead, *_output_dims(metadata, out, h, w))) for out in metadata.outputs)
    return TritonModel(name, ONNX_PLATFORM, max_batch if batching else 0, (image,), outputs, "model.onnx")


def engine_model(name: str, meta: EngineMetadata) -> TritonModel:
    """The ``tensorrt_plan`` model of an engine: types and dims from the engine, batch range from its profile.

    InputError naming ``min_shape`` when the engine is batched but its profile refuses batch 1.
    """
    batching = all(t.shape[0] == -1 for t in (*meta.inputs, *meta.outputs))
    max_batch = meta.profile.max[0] if batching else 0
    if max_batch > 0 and meta.profile.min[0] > 1:
        raise InputError(f"Triton sends batches of 1 to {max_batch} to a batched model, but the engine's "
                         f"profile starts at batch {meta.profile.min[0]}; build it with a min shape of batch 1",
                         param="min_shape")

    def tensor(t: TensorInfo, image: bool = False) -> TritonTensor:
        return TritonTensor(t.name, DATA_TYPES[t.dtype], t.shape[1:] if batching else t.shape, image)

    return TritonModel(name, TENSORRT_PLATFORM, max_batch, tuple(tensor(t, t.name == INPUT_NAME) for t in meta.inputs),
                       tuple(tensor(t) for t in meta.outputs), "model.plan")


def write_model(root: Path, model: TritonModel, source: Path) -> list[Path]:
    """``root/<name>/config.pbtxt`` and ``root/<name>/1/<filename>`` (a copy of ``source``), each written atomically."""
    directory = root / model.name
    config = directory / "config.pbtxt"
    served = directory / "1" / model.filename
    with atomic_path(served) as tmp:
        shutil.copyfile(source, tmp)
    with atomic_path(config) as tmp:
        tmp.write_text(model.config_text())
    return [config, served]


def serve_command(root: Path) -> str:
    """How to start a server on the repository (the NGC container of the TensorRT release that built the engine)."""
    return (f"docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v {root.resolve()}:/models "
            "nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models")
