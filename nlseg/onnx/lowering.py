"""Export-friendly stand-ins for the Nonlocal Blocks' pairwise operators.

Two graph forms:

- ``portable``: standard ONNX operators only, traced from the same torch functions PyTorch
  runs: the dot kernel in its associative form (:func:`pairwise_associative`), the other
  kernels through :func:`pairwise_reference` forming ω in one block (no row chunks, whose
  sizes would be baked into the graph at the traced shape), so the conditioning, the norm
  expansion and the zero-distance rule of :mod:`nlseg.ops.omega` are exported as they are.
- ``plugin``: one ``nlseg::PairwiseKernel`` node per pairwise update (:mod:`nlseg.onnx.custom_op`).
  The node has no attribute for the log kernel's constant term, so the plugin computes Euler's
  γ, and a log kernel with another constant (``log_gamma``, docs/design.md §6) is refused.

:func:`lower_model` swaps every ``PairwiseOperator`` of a copy of the model; the original
(used for training and as the parity reference) is left untouched.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nlseg.errors import InputError
from nlseg.nn.nonlocal_block import PairwiseOperator
from nlseg.onnx.custom_op import PluginPairwise
from nlseg.ops.associative import pairwise_associative
from nlseg.ops.omega import KernelParams
from nlseg.ops.reference import pairwise_reference

GRAPH_FORMS: tuple[str, ...] = ("portable", "plugin")


class PortablePairwise(nn.Module):
    """Export stand-in for a ``PairwiseOperator`` that traces to standard ONNX operators only."""

    def __init__(self, params: KernelParams) -> None:
        super().__init__()
        self.params = params

    def forward(self, theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.params.kernel == "dot":
            return pairwise_associative(theta, phi, values, x, self.params)
        return pairwise_reference(theta, phi, values, x, self.params, max_chunk_elements=None)


def lowered_operator(op: PairwiseOperator, form: str) -> nn.Module:
    """The stand-in for one pairwise operator in graph ``form``."""
    if form not in GRAPH_FORMS:
        raise ValueError(f"unknown graph form {form!r}; expected one of {', '.join(GRAPH_FORMS)}")
    if form == "portable":
        return PortablePairwise(op.params)
    if op.params.custom_log_gamma:
        raise InputError(f"the plugin computes the log kernel with Euler's γ only, this model's constant is "
                         f"{op.params.log_gamma:.6g} (docs/design.md §6); export the portable graph", param="graph")
    return PluginPairwise(op.params)


def lower_model(model: nn.Module, form: str) -> nn.Module:
    """A deep copy of ``model`` whose pairwise operators are replaced by their ``form`` stand-ins."""
    if isinstance(model, PairwiseOperator):
        return lowered_operator(model, form)
    lowered = copy.deepcopy(model)
    targets = [(name, module) for name, module in lowered.named_modules() if isinstance(module, PairwiseOperator)]
    for name, module in targets:
        parent_name, _, attr = name.rpartition(".")
        setattr(lowered.get_submodule(parent_name), attr, lowered_operator(module, form))
    return lowered


def _exp2(g: torch.Graph, x: torch.Value) -> torch.Value:
    """aten::exp2 as Pow(2, x): exact for the integer exponents of the power-of-two conditioning."""
    dtype = x.type().dtype() or torch.float32
    two = g.op("Constant", value_t=torch.tensor(2.0, dtype=dtype))
    return g.op("Pow", two, x)


def register_symbolics() -> None:
    """Teach the TorchScript exporter the aten ops the kernels use and it lacks (exp2); idempotent."""
    torch.onnx.register_custom_op_symbolic("aten::exp2", _exp2, 9)
