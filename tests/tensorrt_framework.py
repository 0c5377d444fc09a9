"""NVIDIA's ``tensorrt.plugin`` framework from the real bindings wheel, driven the way TensorRT drives it.

The ``tensorrt-cu12-bindings`` wheels (PyPI; one release per folder, tests/tensorrt_releases.py) ship
``tensorrt_bindings/plugin/``:
NVIDIA's pure-Python quickly-deployable-plugin framework (``_validate.py`` checks the decorated
functions, ``_lib.py`` defines the plugin creator, ``_plugin_class.py`` the plugin TensorRT calls,
``_tensor.py`` the symbolic shapes). Its native ``tensorrt.so`` needs libnvinfer and cannot load
here, so :func:`native_standin` replaces **only that native module**, with:

- placeholder classes for whatever the framework merely names or subclasses (``trt.IPluginV3``,
  ``trt.ISymExpr``, ...), whose attributes are named tokens (enum members such as
  ``trt.DataType.FLOAT`` or ``trt.QuickPluginCreationRequest.STRICT_AOT``); ``Dims.MAX_DIMS = 8``;
- the few native objects the framework calls: a plugin registry, plugin fields, dimension
  expressions with their builder (``constant``, ``operation``; symbolic sizes stay symbolic and
  are evaluated only by the test), tensor descriptors, a logger.

Everything the plugin's definitions meet is NVIDIA's code: the signature and annotation
validators at registration, the creator that turns the parser's fields into attributes, the
plugin class that calls ``register`` with placeholder shapes for output types and with real
shape expressions for output shapes, the autotune expansion, and ``get_launch_params`` /
``get_kernel`` that call ``aot_impl``. :class:`Framework` makes those calls in TensorRT's order;
:func:`parser_fields` builds the fields exactly as TensorRT's ONNX parser does
(onnx-tensorrt ``onnxOpImporters.cpp``, ``loadFields``/``copyField``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import operator
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Iterator

import numpy as np
import onnx

BINDINGS = "tensorrt-cu12-bindings"


def plugin_package_dir() -> Path | None:
    """``tensorrt_bindings/plugin`` of the installed bindings wheel (found without importing the native module)."""
    spec = importlib.util.find_spec("tensorrt_bindings")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "plugin"
    return path if (path / "_validate.py").is_file() else None


# ---------------------------------------------------------------- the stand-in for the native module


class Token:
    """A member of a native enum (``trt.DataType.FLOAT``): compared by identity, named for messages."""

    def __init__(self, owner: str, name: str) -> None:
        self.owner, self.name = owner, name

    def __repr__(self) -> str:
        return f"{self.owner}.{self.name}"


class _Placeholder(type):
    """Metaclass of the stand-in's placeholder classes: any class attribute is a stable :class:`Token`."""

    def __getattr__(cls, name: str) -> Token:
        if name.startswith("__"):
            raise AttributeError(name)
        token = Token(cls.__name__, name)
        setattr(cls, name, token)
        return token


class DimExpr:
    """A dimension expression: a constant, a named symbolic size, or an operation on two expressions."""

    _OPS = {"SUM": operator.add, "PROD": operator.mul, "SUB": operator.sub, "FLOOR_DIV": operator.floordiv,
            "CEIL_DIV": lambda a, b: -(-a // b), "MAX": max, "MIN": min, "EQUAL": lambda a, b: int(a == b),
            "LESS": lambda a, b: int(a < b)}

    def __init__(self, value: int | str | None = None, op: str | None = None, args: tuple = ()) -> None:
        self.value, self.op, self.args = value, op, args

    def is_constant(self) -> bool:
        return isinstance(self.value, int)

    def get_constant_value(self) -> int:
        assert self.is_constant(), "not a constant"
        return self.value

    def evaluate(self, sizes: dict[str, int]) -> int:
        """The value with the symbolic sizes bound to ``sizes``."""
        if self.op is not None:
            return self._OPS[self.op](*(a.evaluate(sizes) for a in self.args))
        return self.value if isinstance(self.value, int) else sizes[self.value]

    def __repr__(self) -> str:
        return f"{self.op}{self.args}" if self.op else repr(self.value)


class ExprBuilder:
    """TensorRT's ``IExprBuilder``: constants and operations (folded when both sides are constant)."""

    def constant(self, value: int) -> DimExpr:
        return DimExpr(int(value))

    def operation(self, op: Token, first: DimExpr, second: DimExpr) -> DimExpr:
        if first.is_constant() and second.is_constant():
            return DimExpr(DimExpr._OPS[op.name](first.value, second.value))
        return DimExpr(op=op.name, args=(first, second))


class PluginField:
    def __init__(self, name: str, data: object = None, type: Token | None = None) -> None:  # noqa: A002
        self.name, self.data, self.type = name, data, type


class PluginRegistry:
    """TensorRT's plugin registry: creators by (name, version, namespace); a second registration is refused."""

    def __init__(self) -> None:
        self.creators: dict[tuple[str, str, str], object] = {}

    def register_creator(self, creator, namespace: str) -> bool:
        key = (creator.name, creator.plugin_version, namespace)
        if key in self.creators:
            return False
        self.creators[key] = creator
        return True

    def get_creator(self, name: str, version: str, namespace: str):
        return self.creators.get((name, version, namespace))


class TensorDesc:
    """``trt.PluginTensorDesc``: type, format, dims (-1 where dynamic)."""

    def __init__(self, type: Token | None = None, format: Token | None = None,  # noqa: A002
                 dims: tuple[int, ...] = ()) -> None:
        self.type, self.format, self.dims, self.scale = type, format, dims, 1.0


class DynamicTensorDesc:
    """``trt.DynamicPluginTensorDesc``: a desc with min/opt/max."""

    def __init__(self, desc: TensorDesc, bounds: tuple[int, ...]) -> None:
        self.desc, self.min, self.opt, self.max = desc, bounds, bounds, bounds


class _Logger:
    WARNING = Token("Logger", "WARNING")

    def log(self, severity: Token, message: str) -> None:
        pass


class _Dims(tuple):
    MAX_DIMS = 8


class _Record:
    """A native output struct the plugin fills in (``KernelLaunchParams``, the symbolic-argument setter)."""

    def __init__(self) -> None:
        self.items: dict[int, object] = {}

    def __setitem__(self, index: int, value: object) -> None:
        self.items[index] = value


def native_standin(version: str) -> ModuleType:
    """A stand-in for the native ``tensorrt`` module, for the framework's pure-Python code only (see module doc)."""
    trt = ModuleType("tensorrt", "stand-in for the native TensorRT bindings (tests only)")
    placeholders: dict[str, type] = {}

    def missing(name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in placeholders:
            placeholders[name] = _Placeholder(name, (), {})
        return placeholders[name]

    trt.__getattr__ = missing  # type: ignore[attr-defined]
    trt.__version__ = version
    for alias, member in (("float32", "FLOAT"), ("float16", "HALF"), ("int32", "INT32"), ("int64", "INT64"),
                          ("bfloat16", "BF16"), ("int8", "INT8")):
        setattr(trt, alias, getattr(missing("DataType"), member))
    trt.Logger = _Logger
    trt.Dims = _Dims
    trt.IDimensionExpr = DimExpr
    trt.DimsExprs = lambda n: [None] * n
    trt.PluginField = PluginField
    trt.PluginFieldCollection = list
    trt.PluginTensorDesc = TensorDesc
    trt.DynamicPluginTensorDesc = DynamicTensorDesc
    registry = PluginRegistry()
    trt.get_plugin_registry = lambda: registry
    return trt


# ---------------------------------------------------------------- loading NVIDIA's package over it


@contextlib.contextmanager
def _modules(entries: dict[str, ModuleType]) -> Iterator[None]:
    saved = {k: v for k, v in sys.modules.items() if k == "tensorrt" or k.startswith("tensorrt.")}
    for key in saved:
        del sys.modules[key]
    sys.modules.update(entries)
    try:
        yield
    finally:
        for key in [k for k in sys.modules if k == "tensorrt" or k.startswith("tensorrt.")]:
            del sys.modules[key]
        sys.modules.update(saved)


@dataclass
class Launch:
    """What ``get_launch_params`` and ``get_kernel`` gave TensorRT, with symbolic sizes evaluated at ``sizes``."""

    name: str
    ptx: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_mem: int
    extra_args: list[int]
    extra_arg_types: list[str]
    tactics: list[int]


class Framework:
    """A fresh copy of NVIDIA's ``tensorrt.plugin`` over a fresh stand-in (own registry, own definitions)."""

    def __init__(self, plugin_dir: Path, version: str) -> None:
        self.trt = native_standin(version)
        spec = importlib.util.spec_from_file_location("tensorrt.plugin", plugin_dir / "__init__.py",
                                                      submodule_search_locations=[str(plugin_dir)])
        self.trtp = importlib.util.module_from_spec(spec)
        self.trt.plugin = self.trtp
        with _modules({"tensorrt": self.trt, "tensorrt.plugin": self.trtp}), warnings.catch_warnings():
            for category in (DeprecationWarning, SyntaxWarning):  # NVIDIA's docstrings: "invalid escape sequence"
                warnings.filterwarnings("ignore", "invalid escape sequence", category)
            spec.loader.exec_module(self.trtp)
            self._entries = {k: v for k, v in sys.modules.items() if k == "tensorrt" or k.startswith("tensorrt.")}

    @contextlib.contextmanager
    def installed(self) -> Iterator[ModuleType]:
        """This framework as ``import tensorrt`` / ``import tensorrt.plugin`` sees it, for the duration."""
        with _modules(self._entries):
            yield self.trtp

    def register_nlseg(self) -> None:
        from nlseg.tensorrt.plugin import register_plugin

        with self.installed():
            register_plugin()

    def creator(self, name: str = "PairwiseKernel", version: str = "1", namespace: str = "nlseg"):
        return self.trt.get_plugin_registry().get_creator(name, version, namespace)

    def dtype(self, name: str) -> Token:
        return getattr(self.trt, name)

    # -- what the ONNX parser does for a plugin node

    def create_plugin(self, node: onnx.NodeProto):
        """The parser's ``createPlugin`` for ``node``: fields from its attributes, AOT when ``aot=1``."""
        attrs = {a.name: a for a in node.attribute}
        namespace = onnx.helper.get_attribute_value(attrs["plugin_namespace"]).decode()
        version = onnx.helper.get_attribute_value(attrs["plugin_version"]).decode()
        creator = self.creator(node.op_type, version, namespace)
        assert creator is not None, f"no creator {namespace}::{node.op_type} v{version}"
        request = self.trt.QuickPluginCreationRequest
        aot = "aot" in attrs and onnx.helper.get_attribute_value(attrs["aot"])
        return creator.create_plugin(node.op_type, namespace, parser_fields(self.trt, creator, node),
                                     self.trt.TensorRTPhase.BUILD, request.STRICT_AOT if aot else request.UNKNOWN)

    # -- what the builder then asks the plugin, in order

    def output_types(self, plugin, dtypes: list[str], ranks: list[int]) -> list[str]:
        """``get_output_data_types``: the register function on placeholder shapes."""
        return [t.name for t in plugin.get_output_data_types([self.dtype(d) for d in dtypes], ranks)]

    def output_shapes(self, plugin, dtypes: list[str], shapes: list[tuple[int | str, ...]]) -> list[tuple]:
        """``get_output_shapes`` with ints (build-time constants) and names (dynamic sizes), after the types.

        A dynamic output size is returned as its expression (:meth:`DimExpr.evaluate`).
        """
        self.output_types(plugin, dtypes, [len(s) for s in shapes])
        exprs = [[DimExpr(d) for d in shape] for shape in shapes]
        out = plugin.get_output_shapes(exprs, [], ExprBuilder())
        return [tuple(e.value if e.op is None else e for e in dims) for dims in out]

    def launch(self, plugin, dtypes: list[str], shapes: list[tuple[int | str, ...]], out_dtype: str,
               sizes: dict[str, int]) -> Launch:
        """Formats, tactic, then ``get_launch_params`` (which calls ``aot_impl``) and ``get_kernel``."""
        trt = self.trt
        linear = trt.TensorFormat.LINEAR
        out_shape = self.output_shapes(plugin, dtypes, shapes)[0]
        dims = [tuple(d if isinstance(d, int) else -1 for d in s) for s in (*shapes, out_shape)]
        types = [self.dtype(d) for d in (*dtypes, out_dtype)]
        in_out = [DynamicTensorDesc(TensorDesc(t, linear, d), d) for t, d in zip(types, dims)]
        offered = plugin.get_supported_format_combinations(in_out, len(shapes))
        combos = [offered[i:i + len(in_out)] for i in range(0, len(offered), len(in_out))]
        assert any([c.type for c in combo] == types for combo in combos), f"{dtypes} -> {out_dtype} not offered"
        plugin.configure_plugin(in_out[:-1], in_out[-1:])
        tactics = plugin.get_valid_tactics()
        plugin.set_tactic(tactics[0] if tactics else 0)  # 0: the default tactic when none is advertised
        params, setter = _Record(), _Record()
        plugin.get_launch_params(None, in_out, len(shapes), params, setter, ExprBuilder())
        name, ptx = plugin.get_kernel([d.desc for d in in_out[:-1]], [in_out[-1].desc])

        def value(field: str) -> int:
            return getattr(params, field).expr.evaluate(sizes)

        extra = [setter.items[i] for i in range(setter.nbSymExprs)]
        return Launch(name.decode() if isinstance(name, bytes) else name, ptx.decode(),
                      (value("grid_x"), value("grid_y"), value("grid_z")),
                      (value("block_x"), value("block_y"), value("block_z")), value("shared_mem"),
                      [e.expr.evaluate(sizes) for e in extra], [e.dtype.name for e in extra], list(tactics))


def parser_fields(trt: ModuleType, creator, node: onnx.NodeProto) -> list:
    """The ``PluginField``s TensorRT's ONNX parser passes ``createPlugin`` for ``node``.

    onnx-tensorrt ``loadFields``: for each of the creator's field names, in the creator's order,
    the node attribute of that name: FLOAT as one float32 (``kFLOAT32``), INT as one int32
    (``kINT32``), STRING as its bytes plus a terminating NUL (``kCHAR``, ``copyField`` "Append \\0
    as end of C style string"). Other attributes of the node (``plugin_namespace``, ``aot``) are
    not fields.
    """
    attrs = {a.name: a for a in node.attribute}
    kinds = trt.PluginFieldType
    fields = []
    for wanted in creator.field_names:
        attr = attrs.get(wanted.name)
        if attr is None:
            continue
        if attr.type == onnx.AttributeProto.FLOAT:
            fields.append(PluginField(wanted.name, np.array([attr.f], np.float32), kinds.FLOAT32))
        elif attr.type == onnx.AttributeProto.INT:
            fields.append(PluginField(wanted.name, np.array([attr.i], np.int32), kinds.INT32))
        elif attr.type == onnx.AttributeProto.STRING:
            fields.append(PluginField(wanted.name, np.frombuffer(attr.s + b"\0", np.int8), kinds.CHAR))
        else:
            raise AssertionError(f"attribute {wanted.name}: type {attr.type} is not a plugin field nlseg uses")
    return fields


def plugin_node(kernel: str = "frac", s: float = 0.5, lam: float = 0.1, n: int = 2) -> onnx.NodeProto:
    """A PairwiseKernel node as :func:`nlseg.tensorrt.graph.tensorrt_graph` writes it (7 inputs, ``aot=1``)."""
    from nlseg.tensorrt.rules import PLUGIN_INPUTS

    return onnx.helper.make_node("PairwiseKernel", list(PLUGIN_INPUTS), ["u"], domain="nlseg", kernel=kernel, s=s,
                                 lam=lam, n=n, plugin_namespace="nlseg", plugin_version="1", aot=1)


def plugin_shapes(b: int | str = "B", n: int | str = "N", m: int | str = "M", c_embed: int = 32,
                  c_value: int = 64) -> list[tuple]:
    """The 7 inputs' shapes for B, N, M (names: dynamic) and C', C."""
    return [(b, n, c_embed), (b, m, c_embed), (b, n), (b, m), (b, m, c_value), (b, n, c_value), (b,)]


def plugin_dtypes(dtype: str) -> list[str]:
    return [dtype, dtype, "float32", "float32", dtype, dtype, "float32"]
