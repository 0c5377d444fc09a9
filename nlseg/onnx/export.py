"""``export_onnx``: a PyTorch model to an ONNX file, portable or with PairwiseKernel nodes.

Exporter: the TorchScript-based ``torch.onnx.export(dynamo=False)``. It traces the model
once; tensor sizes read in Python (``x.shape``, the key count M in 1/M) stay symbolic in the
graph, so one export runs at every batch, height and width; ceil-mode max pooling is ONNX
MaxPool's ``ceil_mode``; custom ops come from ``autograd.Function.symbolic`` (torch ≥ 2.4); a
small model exports in about a second. Its one gap, ``aten::exp2`` of the power-of-two
conditioning, is lowered to ``Pow(2, x)`` (:func:`nlseg.onnx.lowering.register_symbolics`).
The size arithmetic it writes around every ``x.shape`` is folded after tracing
(:func:`nlseg.onnx.fold.fold_shapes`), which also declares the static class axis of ``logits``.
The dynamo exporter (torch.export) was tried and rejected: it specialised the pairwise code's
Python shape arithmetic (``range`` over row chunks) without a guard, so an export traced at
30x40 failed at 90x160; it needs torch ≥ 2.8 for custom nodes and takes ~15 s per export.
"""

from __future__ import annotations

import inspect
import io
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

import nlseg
from nlseg.contract import info_from_checkpoint
from nlseg.errors import InputError
from nlseg.io import atomic_path
from nlseg.onnx.custom_op import DOMAIN, INPUTS, OP_TYPE, OPSET_VERSION
from nlseg.onnx.fold import fold_shapes
from nlseg.onnx.lowering import GRAPH_FORMS, lower_model, register_symbolics
from nlseg.onnx.metadata import INPUT_NAME, ModelMetadata, write_metadata
from nlseg.onnx.ort_op import custom_op_library
from nlseg.onnx.simplify import SimplifyReport, available_simplifier, simplify_model
from nlseg.onnx.source_model import SourceModel

MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 13, 20, 17
TRACE_SIZE = (45, 77)


@dataclass(frozen=True)
class ExportOptions:
    """How to export: graph form, opset, dynamic axes (None: on for segmenters), fp16, extras."""

    graph: str = "portable"
    opset: int = DEFAULT_OPSET
    dynamic: bool | None = None
    half: bool = False
    simplify: bool = False
    with_argmax: bool = False


@dataclass(frozen=True)
class ExportResult:
    """The written file, its metadata, operator counts and what ``--simplify`` did."""

    path: Path
    metadata: ModelMetadata
    op_counts: dict[str, int]
    simplified: SimplifyReport | None


class _WithLabels(nn.Module):
    """Logits and their argmax over the class axis as uint8 labels."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        return logits, logits.argmax(dim=1).to(torch.uint8)


def check_options(source: SourceModel, options: ExportOptions) -> None:
    """ValueError naming the option that cannot apply to this model."""
    if options.graph not in GRAPH_FORMS:
        raise ValueError(f"graph: unknown form {options.graph!r}; expected one of {', '.join(GRAPH_FORMS)}")
    if not MIN_OPSET <= options.opset <= MAX_OPSET:
        raise InputError(f"choose {MIN_OPSET} to {MAX_OPSET}, got {options.opset}", param="opset")
    if options.with_argmax and source.config.num_classes > 256:
        raise InputError(f"uint8 labels hold 256 classes, the model has {source.config.num_classes}",
                         param="with_argmax")


def dynamic_axes_for(task: str, dynamic: bool | None) -> tuple[str, ...]:
    """Names of the dynamic input axes: batch, height, width for segmenters (default on), batch for classifiers."""
    if dynamic is None:
        dynamic = task == "segment"
    if not dynamic:
        return ()
    return ("batch", "height", "width") if task == "segment" else ("batch",)


def trace_input(channels: int, image_size: tuple[int, int], axes: tuple[str, ...]) -> torch.Tensor:
    """The example the exporter traces: batch 2 and a small odd size where those axes are dynamic.

    Sizes are symbolic in the trace, so a small input only saves time (ω is formed while
    tracing); sizes that pool unevenly and a batch above 1 keep the exporter from treating
    any of them as a special case.
    """
    batch = 2 if "batch" in axes else 1
    height = TRACE_SIZE[0] if "height" in axes else image_size[0]
    width = TRACE_SIZE[1] if "width" in axes else image_size[1]
    return torch.rand(batch, channels, height, width, generator=torch.Generator().manual_seed(0))


def axis_map(task: str, axes: tuple[str, ...], outputs: tuple[str, ...]) -> dict[str, dict[int, str]]:
    """{tensor name: {axis index: axis name}} of the image input and the ``outputs``."""
    spatial = task == "segment"
    positions = {
        INPUT_NAME: {"batch": 0, "height": 2, "width": 3},
        "logits": {"batch": 0, "height": 2, "width": 3} if spatial else {"batch": 0},
        "labels": {"batch": 0, "height": 1, "width": 2} if spatial else {"batch": 0},
    }
    return {name: {positions[name][a]: a for a in axes if a in positions[name]} for name in (INPUT_NAME, *outputs)}


def declare_custom_outputs(model: onnx.ModelProto) -> None:
    """Give every PairwiseKernel output a value_info: the type and shape of its ``x`` input.

    Shapes come from ONNX shape inference with data propagation, which recovers the static
    channel count through the Shape/Reshape chains of the flattened feature maps.
    """
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    types = {v.name: v.type for v in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output)}
    declared = {v.name: v for v in model.graph.value_info}
    for node in model.graph.node:
        if node.domain != DOMAIN or node.op_type != OP_TYPE:
            continue
        x_type = types.get(node.input[INPUTS.index("x")])
        if x_type is None or not x_type.tensor_type.HasField("shape"):
            raise RuntimeError(f"cannot declare the output of {node.name}: the type of its input x is unknown")
        info = declared.get(node.output[0]) or model.graph.value_info.add(name=node.output[0])
        info.type.CopyFrom(x_type)


def _simplify(model: onnx.ModelProto, plugin: bool) -> tuple[onnx.ModelProto, SimplifyReport]:
    """:func:`simplify_model`; onnxsim needs the PairwiseKernel library for plugin graphs, else onnxscript runs."""
    method = available_simplifier()
    library = None
    if plugin and method == "onnxsim":
        try:
            library = custom_op_library()
        except ImportError:
            method = "onnxscript"
    return simplify_model(model, method, library)


def trace_module(
    module: nn.Module, example: tuple[torch.Tensor, ...], input_names: list[str], output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]], opset: int, plugin: bool,
) -> onnx.ModelProto:
    """Trace ``module`` on ``example`` with the TorchScript exporter, in memory; returns the ModelProto.

    ``dynamic_axes`` maps input/output names to {axis: name}; ``plugin`` declares the nlseg opset
    (the graph holds PairwiseKernel nodes) and gives their outputs a value_info.
    """
    register_symbolics()
    # dynamo=False selects the TorchScript exporter where both exist (torch >= 2.5); without
    # autograd_inlining=False it traces into PairwiseKernelFunction.forward and trips on it.
    parameters = inspect.signature(torch.onnx.export).parameters
    extra = {k: False for k in ("dynamo", "autograd_inlining") if k in parameters}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.9 flags the TorchScript exporter
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            module, example, buffer, input_names=input_names, output_names=output_names,
            dynamic_axes={k: v for k, v in dynamic_axes.items() if v} or None, opset_version=opset,
            do_constant_folding=True, custom_opsets={DOMAIN: OPSET_VERSION} if plugin else None, **extra,
        )
    model = onnx.load_from_string(buffer.getvalue())
    if plugin:
        declare_custom_outputs(model)
    return model


def declare_class_axis(model: onnx.ModelProto, classes: int) -> None:
    """Declare axis 1 of ``logits`` as the class count, where shape inference could not (opset 13's Reshape)."""
    dims = next(o for o in model.graph.output if o.name == "logits").type.tensor_type.shape.dim
    if len(dims) >= 2 and dims[1].dim_value != classes:
        dims[1].Clear()
        dims[1].dim_value = classes


def output_names(options: ExportOptions) -> tuple[str, ...]:
    """``logits``, and ``labels`` with ``with_argmax``."""
    return ("logits", "labels") if options.with_argmax else ("logits",)


def traced_graph(source: SourceModel, options: ExportOptions) -> onnx.ModelProto:
    """The graph as the exporter writes it, before :func:`~nlseg.onnx.fold.fold_shapes`."""
    config = source.config
    dtype = torch.float16 if options.half else torch.float32
    module: nn.Module = lower_model(source.model, options.graph).eval().to(dtype)
    if options.with_argmax:
        module = _WithLabels(module)
    axes = dynamic_axes_for(config.task, options.dynamic)
    outputs = output_names(options)
    example = trace_input(config.in_channels, config.image_size, axes).to(dtype)
    return trace_module(module, (example,), [INPUT_NAME], list(outputs), axis_map(config.task, axes, outputs),
                        options.opset, plugin=options.graph == "plugin")


def export_onnx(
    source: SourceModel, out: str | os.PathLike[str], options: ExportOptions = ExportOptions(),
    dataset: str | None = None,
) -> ExportResult:
    """Export ``source`` to ``out`` (written under a temporary name, then renamed).

    InputError naming the option that does not fit the model; OSError if ``out`` cannot be written.
    """
    check_options(source, options)
    config = source.config
    outputs = output_names(options)
    axes = dynamic_axes_for(config.task, options.dynamic)
    model = fold_shapes(traced_graph(source, options))
    declare_class_axis(model, config.num_classes)
    report: SimplifyReport | None = None
    if options.simplify:
        model, report = _simplify(model, options.graph == "plugin")
        if options.graph == "plugin":
            declare_custom_outputs(model)  # simplifiers may drop or rename the declarations
    dataset = dataset or source.meta.get("dataset")
    info = info_from_checkpoint(config, {**source.meta, "dataset": dataset}, source.input_mean)
    norm = info.normalization
    metadata = ModelMetadata(
        config=config, class_names=info.class_names, palette=info.palette, input_size=config.image_size,
        mean=norm.mean, std=norm.std, graph=options.graph, precision="float16" if options.half else "float32",
        dynamic_axes=axes, outputs=outputs, weights=source.origin, dataset=dataset, nlseg_version=nlseg.__version__,
        mean_image=norm.mean_image,
    )
    model.producer_name, model.producer_version = "nlseg", nlseg.__version__
    model.doc_string = f"nlseg {config.arch} {config.task}, nonlocal {config.nonlocal_kernel or 'none'}, {options.graph} graph"
    write_metadata(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
    counts = Counter(n.op_type if not n.domain or n.domain == "ai.onnx" else f"{n.domain}::{n.op_type}"
                     for n in model.graph.node)
    return ExportResult(Path(out), metadata, dict(counts), report)
