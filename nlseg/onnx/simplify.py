"""``--simplify``: constant folding and clean-up of an exported graph.

onnxsim when it is installed (it also checks the result numerically in ONNX Runtime),
otherwise the onnxscript optimizer (constant folding, dead-node removal), which ships with
every nlseg install. Both keep dynamic axes and custom ``nlseg`` nodes; the report says which
ran and how many nodes it removed, so it is never a silent no-op.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import onnx

SIMPLIFIERS: tuple[str, ...] = ("onnxsim", "onnxscript")


@dataclass(frozen=True)
class SimplifyReport:
    """Which simplifier ran and the node counts before and after."""

    method: str
    nodes_before: int
    nodes_after: int

    def __str__(self) -> str:
        return f"simplified with {self.method}: {self.nodes_before} -> {self.nodes_after} nodes"


def available_simplifier() -> str:
    """``onnxsim`` if importable, else ``onnxscript``."""
    return "onnxsim" if importlib.util.find_spec("onnxsim") is not None else "onnxscript"


def _with_onnxsim(model: onnx.ModelProto, custom_lib: str | None) -> onnx.ModelProto:
    import onnxsim

    simplified, ok = onnxsim.simplify(model, custom_lib=custom_lib)
    if not ok:
        raise RuntimeError("onnxsim could not validate the simplified model against the original")
    return simplified


def _with_onnxscript(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxscript.optimizer

    return onnxscript.optimizer.optimize(model)


def simplify_model(model: onnx.ModelProto, method: str | None = None,
                   custom_lib: str | None = None) -> tuple[onnx.ModelProto, SimplifyReport]:
    """The simplified model and a report; ``method`` None picks :func:`available_simplifier`.

    ``custom_lib``: an ONNX Runtime custom-op library onnxsim needs to run graphs with custom nodes.
    """
    method = method or available_simplifier()
    if method not in SIMPLIFIERS:
        raise ValueError(f"unknown simplifier {method!r}; expected one of {', '.join(SIMPLIFIERS)}")
    before = len(model.graph.node)
    simplified = _with_onnxsim(model, custom_lib) if method == "onnxsim" else _with_onnxscript(model)
    return simplified, SimplifyReport(method, before, len(simplified.graph.node))
