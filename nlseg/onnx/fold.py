"""Shape folding: the TorchScript exporter's size arithmetic reduced to what the graph needs at run time.

The exporter writes every size read in Python (``x.shape``, ``chunk``, ``flatten``, the size of an
``interpolate``) as a chain of Shape/Gather/Unsqueeze/Concat/Slice/Cast nodes, even where the size
is a static channel count. :func:`fold_shapes` evaluates those chains once, symbolically: an element
of a shape tensor is an int (static) or a reference to one axis of one graph tensor (dynamic:
batch, height, width and what follows from them). Then

- a shape tensor whose elements are all static becomes an initializer;
- a Reshape target keeps 0 ("copy this axis") for an axis the data already has and -1 for the
  one axis left, so flattening ``(B, C, H, W)`` to ``(B, C, H·W)`` needs no size nodes;
- any other shape tensor is rebuilt from ``Shape`` nodes (with ``start``/``end`` from opset 15)
  of the tensors it refers to, and one Concat;
- Slices that tile one static axis (``chunk``, the Hamiltonian Blocks' channel halves) become one Split;
- Constant nodes become initializers, Casts to the type a tensor already has are dropped, and
  nodes nobody reads are removed.

Nothing about the compute changes; custom-domain nodes (``nlseg::PairwiseKernel``) are kept as
they are, their output types taken from the value_info the export declares.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Union

import numpy as np
import onnx
from onnx import helper, numpy_helper

PLUMBING_OPS: frozenset[str] = frozenset({"Shape", "Constant", "Gather", "Concat", "Unsqueeze", "Slice", "Cast", "Reshape"})
_INT_TYPES = {onnx.TensorProto.INT64: np.int64, onnx.TensorProto.INT32: np.int32}
_MAX_SHAPE_ELEMENTS = 16


@dataclass(frozen=True)
class NodeCensus:
    """Node counts of a graph: all, shape plumbing (:data:`PLUMBING_OPS`) and the rest."""

    total: int
    plumbing: int

    @property
    def compute(self) -> int:
        return self.total - self.plumbing

    def __str__(self) -> str:
        return f"{self.total} nodes ({self.plumbing} shape plumbing, {self.compute} compute)"


def census(model: onnx.ModelProto) -> NodeCensus:
    """Counts over the top-level graph; a custom-domain node counts as compute."""
    ops = Counter(n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx"))
    return NodeCensus(len(model.graph.node), sum(ops[op] for op in PLUMBING_OPS))


@dataclass(frozen=True)
class Ref:
    """Axis ``axis`` of graph tensor ``tensor``: a size known only at run time."""

    tensor: str
    axis: int


Element = Union[int, Ref]


@dataclass(frozen=True)
class ShapeValue:
    """What an integer tensor of rank 0 or 1 holds, element by element."""

    elements: tuple[Element, ...]
    scalar: bool = False

    @property
    def static(self) -> bool:
        return all(isinstance(e, int) for e in self.elements)


def _dims(model: onnx.ModelProto) -> tuple[dict[str, list[int | None]], dict[str, int]]:
    """Per tensor: its dims (int where static, None where not) and its element type, from shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    dims: dict[str, list[int | None]] = {}
    types: dict[str, int] = {}
    for info in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        tensor = info.type.tensor_type
        types[info.name] = tensor.elem_type
        if tensor.HasField("shape"):
            dims[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    for init in model.graph.initializer:
        dims[init.name], types[init.name] = list(init.dims), init.data_type
    return dims, types


def _attr(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def constants_to_initializers(model: onnx.ModelProto) -> None:
    """Move every top-level Constant node's value into an initializer of the same name."""
    keep = []
    for node in model.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.attribute) == 1:
            a = node.attribute[0]
            value = helper.get_attribute_value(a)
            if a.name == "value":
                array = numpy_helper.to_array(value)
            elif a.name in ("value_int", "value_ints"):
                array = np.array(value, dtype=np.int64)
            elif a.name in ("value_float", "value_floats"):
                array = np.array(value, dtype=np.float32)
            else:
                keep.append(node)
                continue
            model.graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)


class _Evaluator:
    """Symbolic values of the integer tensors the size arithmetic computes."""

    def __init__(self, model: onnx.ModelProto, dims: dict[str, list[int | None]]) -> None:
        self.dims = dims
        self.values: dict[str, ShapeValue] = {}
        self.producer: dict[str, onnx.NodeProto] = {}
        for init in model.graph.initializer:
            if init.data_type in _INT_TYPES and len(init.dims) <= 1 and int(np.prod(init.dims)) <= _MAX_SHAPE_ELEMENTS:
                array = numpy_helper.to_array(init)
                self.values[init.name] = ShapeValue(tuple(int(v) for v in array.reshape(-1)), scalar=array.ndim == 0)
        for node in model.graph.node:
            for out in node.output:
                self.producer[out] = node
            if node.domain in ("", "ai.onnx"):
                value = self._evaluate(node)
                if value is not None and len(node.output) == 1:
                    self.values[node.output[0]] = value

    def _ints(self, name: str) -> list[int] | None:
        value = self.values.get(name)
        return list(value.elements) if value is not None and value.static else None  # type: ignore[arg-type]

    def _evaluate(self, node: onnx.NodeProto) -> ShapeValue | None:
        op, ins = node.op_type, list(node.input)
        if op == "Shape":
            dims = self.dims.get(ins[0])
            if dims is None:
                return None
            rank = len(dims)
            start, end = int(_attr(node, "start", 0)), _attr(node, "end", None)
            axes = range(rank)[slice(start, None if end is None else int(end))]
            return ShapeValue(tuple(dims[a] if dims[a] is not None else Ref(ins[0], a) for a in axes))
        if op in ("Identity", "Cast") and ins[0] in self.values:
            if op == "Cast" and _attr(node, "to") not in _INT_TYPES:
                return None
            return self.values[ins[0]]
        source = self.values.get(ins[0]) if ins else None
        if op == "Gather" and source is not None and not source.scalar and int(_attr(node, "axis", 0)) == 0:
            index = self.values.get(ins[1])
            if index is None or not index.static:
                return None
            n = len(source.elements)
            if any(not -n <= int(i) < n for i in index.elements):  # type: ignore[call-overload]
                return None
            picked = tuple(source.elements[int(i)] for i in index.elements)  # type: ignore[call-overload]
            return ShapeValue(picked, scalar=index.scalar)
        if op == "Unsqueeze" and source is not None and source.scalar:
            axes = self._ints(ins[1]) if len(ins) > 1 else list(_attr(node, "axes", []))  # type: ignore[arg-type]
            return ShapeValue(source.elements) if axes in ([0], [-1]) else None
        if op == "Squeeze" and source is not None and len(source.elements) == 1 and not source.scalar:
            return ShapeValue(source.elements, scalar=True)
        if op == "Concat" and int(_attr(node, "axis", 0)) in (0, -1):
            parts = [self.values.get(i) for i in ins]
            if any(p is None or p.scalar for p in parts):
                return None
            return ShapeValue(tuple(e for p in parts for e in p.elements))  # type: ignore[union-attr]
        if op == "Slice" and source is not None and not source.scalar:
            starts, ends = self._ints(ins[1]), self._ints(ins[2])
            axes = self._ints(ins[3]) if len(ins) > 3 and ins[3] else [0]
            steps = self._ints(ins[4]) if len(ins) > 4 and ins[4] else [1]
            if None in (starts, ends, axes, steps) or len(starts) != 1 or axes not in ([0], [-1]):  # type: ignore[arg-type]
                return None
            return ShapeValue(source.elements[slice(starts[0], ends[0], steps[0])])  # type: ignore[index]
        if op in ("Add", "Sub", "Mul", "Div") and len(ins) == 2:
            a, b = self.values.get(ins[0]), self.values.get(ins[1])
            if a is None or b is None or not (a.static and b.static):
                return None
            x, y = np.array(a.elements, dtype=np.int64), np.array(b.elements, dtype=np.int64)
            if x.size != y.size and 1 not in (x.size, y.size):
                return None
            if op == "Div":
                if not np.all(y):
                    return None
                result = np.trunc(x / y).astype(np.int64)  # ONNX integer division truncates
            else:
                result = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}[op](x, y)
            return ShapeValue(tuple(int(v) for v in np.atleast_1d(result)), scalar=a.scalar and b.scalar)
        return None


class _Builder:
    """New initializers and Shape/Concat nodes, each made once and placed before its first reader."""

    def __init__(self, model: onnx.ModelProto, opset: int) -> None:
        self.model, self.opset = model, opset
        self.made: dict[tuple[object, ...], str] = {}
        self.pending: list[onnx.NodeProto] = []
        self.count = 0

    def _name(self, kind: str) -> str:
        self.count += 1
        return f"nlseg_fold/{kind}_{self.count}"

    def constant(self, values: list[int], scalar: bool, dtype: int) -> str:
        key = ("const", tuple(values), scalar, dtype)
        if key not in self.made:
            array = np.array(values[0] if scalar else values, dtype=_INT_TYPES[dtype])
            name = self._name("const")
            self.model.graph.initializer.append(numpy_helper.from_array(array, name))
            self.made[key] = name
        return self.made[key]

    def shape(self, tensor: str, start: int, end: int, rank: int) -> str:
        key = ("shape", tensor, start, end)
        if key not in self.made:
            name = self._name("shape")
            if start == 0 and end == rank:
                self.pending.append(helper.make_node("Shape", [tensor], [name], name=name))
            elif self.opset >= 15:
                self.pending.append(helper.make_node("Shape", [tensor], [name], name=name, start=start, end=end))
            else:
                full = self.shape(tensor, 0, rank, rank)
                bounds = [self.constant([v], False, onnx.TensorProto.INT64) for v in (start, end)]
                self.pending.append(helper.make_node("Slice", [full, *bounds], [name], name=name))
            self.made[key] = name
        return self.made[key]

    def concat(self, parts: list[str]) -> str:
        key = ("concat", tuple(parts))
        if key not in self.made:
            name = self._name("concat")
            self.pending.append(helper.make_node("Concat", parts, [name], name=name, axis=0))
            self.made[key] = name
        return self.made[key]

    def take_pending(self) -> list[onnx.NodeProto]:
        nodes, self.pending = self.pending, []
        return nodes


def _reshape_target(value: ShapeValue, data: str) -> ShapeValue:
    """A Reshape target with 0 for the axes ``data`` keeps in place and -1 for the single axis left."""
    elements = [0 if isinstance(e, Ref) and e.tensor == data and e.axis == i else e for i, e in enumerate(value.elements)]
    dynamic = [i for i, e in enumerate(elements) if isinstance(e, Ref)]
    if len(dynamic) == 1 and -1 not in elements:
        elements[dynamic[0]] = -1
    return ShapeValue(tuple(elements))


def _runs(elements: tuple[Element, ...], dims: dict[str, list[int | None]]) -> list[tuple[str, int, int] | list[int]]:
    """``elements`` as consecutive axes of one tensor (tensor, start, end) and lists of ints.

    Static elements between two axes of one tensor join its run when they are its sizes there,
    so ``[b, 64, h, w]`` of a tensor ``x`` of shape ``(b, 64, h, w)`` is one ``Shape(x)``; other
    static elements stay literal, where shape inference reads them (the class axis of a Resize).
    """
    runs: list[tuple[str, int, int] | list[int]] = []
    i = 0
    while i < len(elements):
        e = elements[i]
        if isinstance(e, int):
            if runs and isinstance(runs[-1], list):
                runs[-1].append(e)
            else:
                runs.append([e])
            i += 1
            continue
        tensor_dims = dims[e.tensor]
        end = e.axis + 1
        while True:
            j = i + 1  # skip the static elements that are this tensor's sizes, then look for its next axis
            while (j < len(elements) and isinstance(elements[j], int) and end + (j - i - 1) < len(tensor_dims)
                   and tensor_dims[end + (j - i - 1)] == elements[j]):
                j += 1
            axis = end + (j - i - 1)
            if j < len(elements) and elements[j] == Ref(e.tensor, axis):
                end, i = axis + 1, j
            else:
                break
        runs.append((e.tensor, e.axis, end))
        i += 1
    return runs


def _materialize(value: ShapeValue, dtype: int, dims: dict[str, list[int | None]], build: _Builder) -> str | None:
    """The name of a tensor holding ``value`` from initializers and Shape nodes; None if it needs more."""
    if value.static:
        return build.constant(list(value.elements), value.scalar, dtype)  # type: ignore[arg-type]
    if value.scalar or dtype != onnx.TensorProto.INT64:
        return None
    parts = []
    for run in _runs(value.elements, dims):
        if isinstance(run, list):
            parts.append(build.constant(run, False, dtype))
        else:
            tensor, start, end = run
            parts.append(build.shape(tensor, start, end, len(dims[tensor])))
    return parts[0] if len(parts) == 1 else build.concat(parts)


def _remove_noop_casts(model: onnx.ModelProto, types: dict[str, int]) -> None:
    """Drop Casts to the type their input already has; their readers read the input."""
    outputs = {o.name for o in model.graph.output}
    alias: dict[str, str] = {}
    keep = []
    for node in model.graph.node:
        node.input[:] = [alias.get(i, i) for i in node.input]
        if (node.op_type == "Cast" and node.domain in ("", "ai.onnx") and node.output[0] not in outputs
                and types.get(node.input[0]) == _attr(node, "to")):
            alias[node.output[0]] = node.input[0]
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _static_slice(node: onnx.NodeProto, ints: dict[str, list[int]]) -> tuple[int, int, int] | None:
    """(axis, start, end) of a one-axis, step-1 Slice whose bounds are initializers, else None."""
    ins = list(node.input) + [""] * (5 - len(node.input))
    starts, ends = ints.get(ins[1]), ints.get(ins[2])
    axes = ints.get(ins[3]) if ins[3] else [0]
    steps = ints.get(ins[4]) if ins[4] else [1]
    if starts is None or ends is None or axes is None or steps != [1] or len(starts) != 1 or len(axes) != 1:
        return None
    return axes[0], starts[0], ends[0]


def _slices_to_splits(model: onnx.ModelProto, dims: dict[str, list[int | None]]) -> None:
    """Slices of one tensor that tile a static axis exactly (``chunk``, ``split``) become one Split."""
    ints = {i.name: [int(v) for v in numpy_helper.to_array(i).reshape(-1)]
            for i in model.graph.initializer if i.data_type in _INT_TYPES and len(i.dims) <= 1}
    groups: dict[tuple[str, int], list[tuple[int, int, onnx.NodeProto]]] = {}
    for node in model.graph.node:
        if node.op_type != "Slice" or node.domain not in ("", "ai.onnx"):
            continue
        bounds = _static_slice(node, ints)
        data_dims = dims.get(node.input[0])
        if bounds is None or data_dims is None:
            continue
        axis, start, end = bounds
        axis %= len(data_dims)
        size = data_dims[axis]
        if size is None or not 0 <= start <= size:
            continue
        end = min(end, size)
        groups.setdefault((node.input[0], axis), []).append((start, end, node))
    position = {id(n): i for i, n in enumerate(model.graph.node)}
    replaced: dict[int, onnx.NodeProto | None] = {}
    for (data, axis), members in groups.items():
        size = dims[data][axis]
        members.sort(key=lambda m: m[0])
        edges = [m[0] for m in members] + [members[-1][1]]
        if (size is None or len(members) < 2 or edges[0] != 0 or edges[-1] != size
                or any(m[1] != nxt for m, nxt in zip(members, edges[1:]))):
            continue
        sizes = numpy_helper.from_array(np.array([e - s for s, e, _ in members], dtype=np.int64),
                                        f"nlseg_fold/split_{len(model.graph.initializer)}")
        model.graph.initializer.append(sizes)
        first = min(members, key=lambda m: position[id(m[2])])[2]
        split = helper.make_node("Split", [data, sizes.name], [m[2].output[0] for m in members],
                                 name=f"{first.name}/split", axis=axis)
        for _, _, node in members:
            replaced[id(node)] = split if node is first else None
    if not replaced:
        return
    nodes = [replaced.get(id(n), n) for n in model.graph.node]
    del model.graph.node[:]
    model.graph.node.extend(n for n in nodes if n is not None)


def remove_unused(model: onnx.ModelProto) -> None:
    """Remove nodes whose outputs nobody reads (and that are no graph output), then unread initializers."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output) or _has_subgraph(node):
            keep.append(node)
            needed.update(node.input)
            needed.update(_subgraph_inputs(node))
    del graph.node[:]
    graph.node.extend(reversed(keep))
    initializers = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    value_info = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(value_info)


def _has_subgraph(node: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)


def _subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    """Every name a subgraph of ``node`` reads (a superset of what it takes from the outer scope)."""
    names: set[str] = set()
    for a in node.attribute:
        graphs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
        for g in graphs:
            for n in g.node:
                names.update(n.input)
                names.update(_subgraph_inputs(n))
    return names


def fold_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with its size arithmetic folded (module docstring); same inputs, outputs, results."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    constants_to_initializers(model)
    dims, types = _dims(model)
    evaluator = _Evaluator(model, dims)
    build = _Builder(model, opset)
    nodes: list[onnx.NodeProto] = []
    for node in model.graph.node:
        if node.domain in ("", "ai.onnx") and node.output and node.output[0] in evaluator.values:
            nodes.append(node)  # part of the size arithmetic: kept only while something still reads it
            continue
        for k, name in enumerate(node.input):
            value = evaluator.values.get(name)
            if value is None or name not in evaluator.producer:
                continue
            dtype = types.get(name)
            if dtype not in _INT_TYPES:
                continue
            if node.op_type == "Reshape" and k == 1 and not _attr(node, "allowzero", 0):
                value = _reshape_target(value, node.input[0])
            replacement = _materialize(value, dtype, dims, build)
            if replacement is not None:
                node.input[k] = replacement
        nodes.extend(build.take_pending())
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    _remove_noop_casts(model, types)
    _slices_to_splits(model, dims)
    remove_unused(model)
    declare_static_output_dims(model)
    return model


def declare_static_output_dims(model: onnx.ModelProto) -> None:
    """Write into the graph outputs' declared shapes every size shape inference finds static
    (the class axis of ``logits``, which the exporter leaves symbolic behind a Resize)."""
    inferred = {o.name: o for o in onnx.shape_inference.infer_shapes(model, data_prop=True).graph.output}
    for output in model.graph.output:
        found = inferred.get(output.name)
        if found is None or not output.type.tensor_type.HasField("shape"):
            continue
        found_dims = found.type.tensor_type.shape.dim
        declared = output.type.tensor_type.shape.dim
        if len(found_dims) != len(declared):
            continue
        for dim, new in zip(declared, found_dims):
            if new.HasField("dim_value") and not dim.HasField("dim_value"):
                dim.Clear()
                dim.dim_value = new.dim_value
