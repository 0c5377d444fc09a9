"""The ONNX graph TensorRT parses: every ``nlseg::PairwiseKernel`` node made ready for the plugin.

The exported plugin graph has one ``PairwiseKernel`` node per pairwise update with the op's
interface (θ, φ, v, x in float32; :mod:`nlseg.onnx.custom_op`). The TensorRT plugin instead
runs one ahead-of-time compiled kernel, which can launch nothing else, so everything the
kernel expects around it becomes standard ONNX operators, i.e. ordinary TensorRT layers of
the same engine, before TensorRT parses the graph:

- distance kernels (``frac``, ``invfrac``, ``log``): the conditioning (centre on the keys'
  mean, power-of-two scale and its exponent), the float32 squared norms of the rounded
  embeddings and the casts to the plugin's type, traced from
  :func:`nlseg.ops.fused.function.prepare_inputs` and
  :func:`~nlseg.ops.fused.function.squared_norms` (so the formulas stay written once), then a
  7-input ``PairwiseKernel`` node (same name, domain, version and attributes, plus ``aot=1``
  so the parser asks for the ahead-of-time implementation), then a cast back to float32;
- ``dot`` and ``gaussian``, which the fused kernel does not compute: their portable lowering
  (:class:`nlseg.onnx.lowering.PortablePairwise`: the associative form of ``dot``, the formed
  matrix of ``gaussian``) as standard operators, no plugin.

Spliced nodes are named ``nlseg_pairwise_<i>/...``: :func:`pinned_layer` recognises the
layers TensorRT makes from them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import onnx
import torch
from torch import nn

from nlseg.onnx.custom_op import DOMAIN, INPUTS, OP_TYPE
from nlseg.onnx.export import trace_module
from nlseg.ops.omega import DISTANCE_KERNELS, KernelParams
from nlseg.precision import torch_dtype
from nlseg.tensorrt.rules import DATA_TYPES, PLUGIN_INPUTS

PREFIX = "nlseg_pairwise_"
PLUGIN_DTYPES: dict[str, torch.dtype] = {name: torch_dtype(name) for name in DATA_TYPES}
_TRACE_SIZES = {"B": 2, "N": 7, "M": 5, "E": 3, "C": 4}  # distinct, so no size is mistaken for another
_AXES = {"theta": ("B", "N", "E"), "phi": ("B", "M", "E"), "values": ("B", "M", "C"), "x": ("B", "N", "C")}


@dataclass(frozen=True)
class TensorRTGraph:
    """The rewritten model, the plugin nodes' names and kernels, and the lowered nodes' names."""

    model: onnx.ModelProto
    plugin_nodes: tuple[str, ...]
    plugin_kernels: tuple[str, ...]
    lowered_nodes: tuple[str, ...]
    plugin_dtype: str


class PluginInputs(nn.Module):
    """θ, φ, v, x (float32) → the kernel's 7 inputs in ``dtype`` (norms and scale in float32)."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def forward(self, theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor,
                x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from nlseg.ops.fused.function import prepare_inputs, squared_norms

        k = prepare_inputs(*(t.to(self.dtype) for t in (theta, phi, values, x)))
        return (k.theta, k.phi, squared_norms(k.theta, torch.float32), squared_norms(k.phi, torch.float32),
                k.values, k.x, k.log2_scale)


def pinned_layer(name: str) -> bool:
    """True for a TensorRT layer made from a node this module spliced in."""
    return name.startswith(PREFIX)


def main_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset of ``model``."""
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _example() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(*(_TRACE_SIZES[a] for a in _AXES[name]), generator=g) for name in INPUTS)


@functools.lru_cache(maxsize=None)
def _traced(kind: str, params: tuple | KernelParams, opset: int) -> bytes:
    """The serialized ONNX of one spliced subgraph: ``("inputs", (dtype,))`` or ``("portable", KernelParams)``."""
    if kind == "inputs":
        module: nn.Module = PluginInputs(PLUGIN_DTYPES[params[0]])
        outputs = list(PLUGIN_INPUTS)
    else:
        from nlseg.onnx.lowering import PortablePairwise

        module, outputs = PortablePairwise(params), ["u"]
    axes = {name: {i: f"{a}" for i, a in enumerate(_AXES[name])} for name in INPUTS}
    model = trace_module(module.eval(), _example(), list(INPUTS), outputs, axes, opset, plugin=False)
    return model.SerializeToString()


def _splice(sub: onnx.ModelProto, inputs: list[str], prefix: str,
            outputs: list[str] | None = None) -> tuple[list[str], list[onnx.NodeProto], list[onnx.TensorProto]]:
    """``sub``'s nodes and initializers renamed under ``prefix``, reading ``inputs``.

    Returns the names its outputs take (``outputs`` when given, else prefixed names; an output
    that is one of ``sub``'s inputs is that input unless a name is imposed, then an Identity).
    """
    graph = sub.graph
    names = {v.name: outer for v, outer in zip(graph.input, inputs)}
    nodes: list[onnx.NodeProto] = []
    produced: list[str] = []
    for i, out in enumerate(graph.output):
        if out.name in names and outputs is None:
            produced.append(names[out.name])
        elif out.name in names:
            nodes.append(onnx.helper.make_node("Identity", [names[out.name]], [outputs[i]], name=f"{prefix}Identity_{i}"))
            produced.append(outputs[i])
        else:
            names[out.name] = outputs[i] if outputs is not None else f"{prefix}{out.name}"
            produced.append(names[out.name])

    def rename(name: str) -> str:
        if not name:
            return name  # an omitted optional input
        return names.setdefault(name, f"{prefix}{name}")

    initializers = []
    for tensor in graph.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.name = rename(tensor.name)
        initializers.append(copy)
    for j, node in enumerate(graph.node):
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise RuntimeError(f"cannot splice {node.op_type}: subgraph attributes are not supported")
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = f"{prefix}{node.name or f'{node.op_type}_{j}'}"
        copy.input[:] = [rename(n) for n in node.input]
        copy.output[:] = [rename(n) for n in node.output]
        nodes.append(copy)
    return produced, nodes, initializers


def _attributes(node: onnx.NodeProto) -> dict[str, object]:
    values = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}


def fused_nodes(model: onnx.ModelProto) -> list[str]:
    """The kernels of the PairwiseKernel nodes that become plugin layers (the distance kernels), in graph order."""
    kernels = (str(_attributes(n).get("kernel")) for n in model.graph.node if n.domain == DOMAIN and n.op_type == OP_TYPE)
    return [k for k in kernels if k in DISTANCE_KERNELS]


def tensorrt_graph(model: onnx.ModelProto, plugin_dtype: str = "float32") -> TensorRTGraph:
    """``model`` with every PairwiseKernel node rewritten as the module docstring says (``model`` is untouched).

    ``plugin_dtype``: float32, or float16 for the plugin's data inputs and output (the
    conditioning, norms and scale stay float32).
    """
    if plugin_dtype not in PLUGIN_DTYPES:
        raise ValueError(f"plugin_dtype must be one of {', '.join(PLUGIN_DTYPES)}, got {plugin_dtype!r}")
    opset = main_opset(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    declared = {v.name: v for v in graph.value_info}
    nodes: list[onnx.NodeProto] = []
    plugins: list[str] = []
    kernels: list[str] = []
    lowered: list[str] = []
    for node in model.graph.node:
        if node.domain != DOMAIN or node.op_type != OP_TYPE:
            nodes.append(node)
            continue
        prefix = f"{PREFIX}{len(plugins) + len(lowered)}/"
        attrs = _attributes(node)
        kernel = str(attrs["kernel"])
        if kernel not in DISTANCE_KERNELS:
            params = KernelParams(kernel, float(attrs["s"]), float(attrs["lam"]), int(attrs["n"]))
            sub = onnx.load_from_string(_traced("portable", params, opset))
            _, spliced, inits = _splice(sub, list(node.input), prefix, outputs=[node.output[0]])
            nodes.extend(spliced)
            graph.initializer.extend(inits)
            lowered.append(prefix.rstrip("/"))
            continue
        sub = onnx.load_from_string(_traced("inputs", (plugin_dtype,), opset))
        kernel_inputs, spliced, inits = _splice(sub, list(node.input), prefix)
        nodes.extend(spliced)
        graph.initializer.extend(inits)
        half = plugin_dtype == "float16"
        u = f"{prefix}u" if half else node.output[0]
        plugin_name = f"{prefix}{OP_TYPE}"
        nodes.append(onnx.helper.make_node(OP_TYPE, kernel_inputs, [u], name=plugin_name, domain=DOMAIN,
                                           **attrs, aot=1))
        if half:
            nodes.append(onnx.helper.make_node("Cast", [u], [node.output[0]], name=f"{prefix}Cast_u",
                                               to=onnx.TensorProto.FLOAT))
            if node.output[0] in declared:
                info = graph.value_info.add()
                info.CopyFrom(declared[node.output[0]])
                info.name = u
                info.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
        plugins.append(plugin_name)
        kernels.append(kernel)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(out)
    return TensorRTGraph(out, tuple(plugins), tuple(kernels), tuple(lowered), plugin_dtype)


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """{tensor name: ONNX element type} of every tensor whose type shape inference knows."""
    inferred = onnx.shape_inference.infer_shapes(model)
    values = (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output)
    return {v.name: v.type.tensor_type.elem_type for v in values if v.type.HasField("tensor_type")}
