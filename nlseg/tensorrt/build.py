"""ONNX (plugin graph) → TensorRT engine, with ``<stem>.engine.json`` and the parsed ``<stem>.trt.onnx``.

Steps: :func:`~nlseg.tensorrt.compat.plan_precision` decides how the precision is obtained
(strongly typed from the graph, or TensorRT 10 builder flags); :func:`~nlseg.tensorrt.graph.tensorrt_graph`
rewrites the PairwiseKernel nodes; the plugin is registered; TensorRT's ONNX parser builds the
network; the builder config gets the optimization profile, workspace limit, timing cache,
precision flags (and the float32 pinning of the plugin's preprocessing under weak typing) and
an INT8 calibrator; the serialized engine is written, deserialized once to record its I/O and
layers (engine inspector), and described in the JSON.

Set ``NLSEG_TRT_LOG`` to ``verbose``, ``info``, ``warning`` (default) or ``error`` for TensorRT's log.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import onnx

import nlseg
from nlseg.errors import InputError
from nlseg.io import atomic_path
from nlseg.onnx.metadata import INPUT_NAME, ModelMetadata
from nlseg.precision import from_tensorrt
from nlseg.tensorrt.compat import PrecisionPlan, check_triton, triton_pin
from nlseg.tensorrt.engine_meta import EngineMetadata, PluginInfo, TensorInfo, engine_info, write_engine_metadata
from nlseg.tensorrt.graph import fused_nodes, pinned_layer, tensor_types, tensorrt_graph
from nlseg.tensorrt.rules import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
from nlseg.tensorrt.shapes import ProfileShapes

LOG_LEVELS = ("error", "warning", "info", "verbose")


@dataclass(frozen=True)
class EngineRequest:
    """The engine options, one type for :func:`nlseg.export_model` (format 'engine'), ``nlseg export --trt``
    and :func:`build_engine`: half or int8 precision (with calibration images), the profile's min / opt /
    max shapes (None: from the model, :func:`~nlseg.tensorrt.shapes.profile_shapes`), the workspace
    limit (MiB; InputError below 1) and a timing cache file."""

    half: bool = False
    int8: bool = False
    calib_data: Path | None = None
    min_shape: tuple[int, ...] | None = None
    opt_shape: tuple[int, ...] | None = None
    max_shape: tuple[int, ...] | None = None
    workspace_mb: int | None = None
    timing_cache: Path | None = None

    def __post_init__(self) -> None:
        if self.workspace_mb is not None and self.workspace_mb < 1:
            raise InputError(f"need at least 1 MiB, got {self.workspace_mb}", param="workspace")
        if self.calib_data is not None and not self.int8:
            raise InputError("calibration data is for int8 engines", param="calib_data")


@dataclass(frozen=True)
class BuildResult:
    """The files written and the engine's metadata."""

    engine: Path
    metadata_file: Path
    onnx_file: Path
    metadata: EngineMetadata
    seconds: float


def trt_logger(trt: ModuleType) -> Any:
    """A TensorRT logger at ``NLSEG_TRT_LOG``'s severity (default warning)."""
    level = os.environ.get("NLSEG_TRT_LOG", "warning").lower()
    if level not in LOG_LEVELS:
        raise InputError(f"NLSEG_TRT_LOG: expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return trt.Logger(getattr(trt.Logger, level.upper()))


def dtype_name(dtype: Any) -> str:
    """'float32' for ``trt.float32`` and so on."""
    return from_tensorrt(dtype.name)


def network_flags(trt: ModuleType, plan: PrecisionPlan) -> int:
    """``create_network`` flags: STRONGLY_TYPED on TensorRT 10 (11 is always strongly typed and ignores it)."""
    if plan.strongly_typed and int(trt.__version__.split(".")[0]) < 11:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def pin_preprocessing(trt: ModuleType, network: Any, types: dict[str, int], plugin_dtype: str) -> int:
    """Under weak typing, give the spliced layers the graph's types: float32 preprocessing, the plugin in
    ``plugin_dtype`` (BuilderFlag.OBEY_PRECISION_CONSTRAINTS makes TensorRT keep them). Returns the count."""
    trt_types = {onnx.TensorProto.FLOAT: trt.float32, onnx.TensorProto.FLOAT16: trt.float16}
    plugin_type = trt.float16 if plugin_dtype == "float16" else trt.float32
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if not pinned_layer(layer.name):
            continue
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        wanted = [trt_types.get(types.get(t.name, -1)) for t in outputs]
        if not outputs or any(w is None for w in wanted):
            continue  # shape arithmetic and integer layers: not float math
        for j, dtype in enumerate(wanted):
            layer.set_output_type(j, dtype)
        layer.precision = plugin_type if layer.type == trt.LayerType.PLUGIN_V3 else trt.float32
        pinned += 1
    return pinned


def _parse(parser: Any, model: onnx.ModelProto, label: str) -> None:
    if not parser.parse(model.SerializeToString()):
        errors = [_describe(parser.get_error(i)) for i in range(parser.num_errors)]
        raise InputError(f"{label}: TensorRT's ONNX parser refused the graph ({errors[0] if errors else 'no detail'})")


def _describe(error: Any) -> str:
    """A parser error as one line: its description and the node it concerns."""
    desc = error.desc() if hasattr(error, "desc") else str(error)
    node = error.node_name() if hasattr(error, "node_name") else ""
    return " ".join(f"{node}: {desc}".split()) if node else " ".join(str(desc).split())


def _timing_cache(config: Any, path: Path | None) -> None:
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):  # another GPU or TensorRT version: start afresh
        print(f"warning: --timing-cache: {path} is from another GPU or TensorRT version; starting a new one",
              file=sys.stderr)
        config.set_timing_cache(config.create_timing_cache(b""), False)


def _io(trt: ModuleType, engine: Any) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    inputs, outputs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        info = TensorInfo(name, dtype_name(engine.get_tensor_dtype(name)), tuple(engine.get_tensor_shape(name)))
        (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(info)
    return tuple(inputs), tuple(outputs)


def _layer_names(trt: ModuleType, engine: Any) -> list[str]:
    """Layer names from the engine inspector (their format changed in TensorRT 11; both are read)."""
    info = json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
    return [layer if isinstance(layer, str) else str(layer.get("Name", "")) for layer in info.get("Layers", [])]


def build_engine(trt: ModuleType, model: onnx.ModelProto, metadata: ModelMetadata, out: Path, plan: PrecisionPlan,
                 request: EngineRequest, shapes: ProfileShapes) -> BuildResult:
    """Build ``model`` (an nlseg plugin or portable graph) into ``out`` with the profile ``shapes`` (``request``'s,
    resolved for ``metadata``) and write its JSON and TensorRT graph."""
    import torch

    if fused_nodes(model):  # first: a (TensorRT, Triton) pair that cannot work is refused on any machine
        if importlib.util.find_spec("triton") is None:
            raise InputError("the PairwiseKernel plugin's kernel is compiled with Triton, which is not "
                             f"installed: pip install triton=={triton_pin(trt.__version__).triton}")
        import triton

        check_triton(trt.__version__, triton.__version__, "building the engine")
    if not torch.cuda.is_available():
        raise InputError("building a TensorRT engine needs a CUDA GPU, and PyTorch sees none here")
    start = time.perf_counter()
    graph = tensorrt_graph(model, plan.plugin_dtype)
    if graph.plugin_nodes:
        from nlseg.tensorrt.plugin import register_plugin

        register_plugin()
    onnx_file = out.with_suffix(".trt.onnx")
    with atomic_path(onnx_file) as tmp:
        onnx.save(graph.model, str(tmp))

    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, plan))
    parser = trt.OnnxParser(network, logger)
    _parse(parser, graph.model, str(onnx_file))

    config = builder.create_builder_config()
    if request.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_mb << 20)
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if not plan.tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 engines compute in fp32, as the parity tests demand
    if plan.pin_preprocessing:
        pin_preprocessing(trt, network, tensor_types(graph.model), plan.plugin_dtype)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, shapes.min, shapes.opt, shapes.max)
    config.add_optimization_profile(profile)
    if request.timing_cache is not None:
        _timing_cache(config, request.timing_cache)
    calibrator = _add_calibrator(trt, builder, config, metadata, shapes, request, out) if plan.calibrate else None

    serialized = builder.build_serialized_network(network, config)
    del calibrator  # TensorRT holds no reference of its own: it had to live through the build
    if serialized is None:
        raise InputError(f"{out}: TensorRT could not build the engine (its messages above say why; "
                         "NLSEG_TRT_LOG=verbose shows more)")
    with atomic_path(out) as tmp:
        tmp.write_bytes(bytes(serialized))
    if request.timing_cache is not None:
        with atomic_path(request.timing_cache) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))

    runtime = trt.Runtime(logger)  # must outlive the engine it deserializes
    engine = runtime.deserialize_cuda_engine(bytes(serialized))
    inputs, outputs = _io(trt, engine)
    names = _layer_names(trt, engine)
    plugin = PluginInfo(PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION, len(graph.plugin_nodes),
                        tuple(sorted(set(graph.plugin_kernels))), plan.plugin_dtype) if graph.plugin_nodes else None
    major, minor = torch.cuda.get_device_capability()
    meta = EngineMetadata(
        tensorrt_version=trt.__version__, gpu_name=torch.cuda.get_device_name(), compute_capability=(major, minor),
        precision=plan.precision, strongly_typed=plan.strongly_typed, profile=shapes, inputs=inputs,
        outputs=outputs, plugin=plugin, model=metadata, onnx=onnx_file.name, layers=len(names),
        nlseg_version=nlseg.__version__, lowered_pairwise=len(graph.lowered_nodes),
        plugin_layers=tuple(n for n in names if PLUGIN_NAME in n),
    )
    meta_file = write_engine_metadata(out, meta)
    return BuildResult(out, meta_file, onnx_file, meta, time.perf_counter() - start)


def _add_calibrator(trt: ModuleType, builder: Any, config: Any, metadata: ModelMetadata, shapes: ProfileShapes,
                    request: EngineRequest, out: Path) -> Any:
    """Attach an entropy calibrator over ``--calib-data`` at the opt shape (TensorRT 10)."""
    from nlseg.tensorrt.calibration import calibration_batches, calibration_images, make_calibrator

    if request.calib_data is None:
        raise InputError("needs calibration data (calib_data), a folder of representative images", param="int8")
    images = calibration_images(request.calib_data)
    if len(images) < shapes.opt[0]:
        raise InputError(f"{len(images)} images do not fill one batch of {shapes.opt[0]} "
                         "(the opt shape's batch)", param="calib_data")
    batches = calibration_batches(images, shapes.opt, engine_info(metadata, shapes))
    calibration = builder.create_optimization_profile()
    calibration.set_shape(INPUT_NAME, shapes.opt, shapes.opt, shapes.opt)
    config.set_calibration_profile(calibration)
    calibrator = make_calibrator(trt, batches, shapes.opt, INPUT_NAME, out.with_suffix(".calib.cache"))
    config.int8_calibrator = calibrator
    return calibrator
