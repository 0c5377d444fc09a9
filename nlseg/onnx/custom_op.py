"""The custom ONNX operator ``nlseg::PairwiseKernel``: one node per pairwise update.

Contract (what TensorRT's ONNX parser and the ONNX Runtime implementation read):

- ``op_type="PairwiseKernel"``, ``domain="nlseg"``, opset ``nlseg`` version 1;
- inputs ``theta`` (B, N, C'), ``phi`` (B, M, C'), ``values`` (B, M, C), ``x`` (B, N, C),
  all float32 (a ``--half`` graph casts around the node: the distance math stays float32,
  docs/design.md §2.3);
- output ``u`` (B, N, C) float32, its shape and type declared in the graph's ``value_info``;
- attributes ``kernel`` (string), ``s`` (float), ``lam`` (float), ``n`` (int),
  ``plugin_namespace="nlseg"`` and ``plugin_version="1"``.

The op computes :func:`nlseg.ops.pairwise_update` with those arguments.
"""

from __future__ import annotations

import torch
from torch import nn

from nlseg.ops import KernelParams, pairwise_update

OP_TYPE = "PairwiseKernel"
DOMAIN = "nlseg"
OPSET_VERSION = 1
PLUGIN_NAMESPACE = "nlseg"
PLUGIN_VERSION = "1"
INPUTS: tuple[str, ...] = ("theta", "phi", "values", "x")


class PairwiseKernelFunction(torch.autograd.Function):
    """``pairwise_update`` in PyTorch; one ``nlseg::PairwiseKernel`` node in a TorchScript ONNX export."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: object, theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, x: torch.Tensor,
        kernel: str, s: float, lam: float, n: int,
    ) -> torch.Tensor:
        # Fresh tensor objects: ``.to(dtype)`` inside returns its input itself when the dtype
        # matches, and the tracer would then re-bind the graph inputs to its no-op Casts.
        theta, phi, values, x = (t.detach() for t in (theta, phi, values, x))
        return pairwise_update(theta, phi, values, x, kernel, s=s, lam=lam, n=n)

    @staticmethod
    def symbolic(
        g: torch.Graph, theta: torch.Value, phi: torch.Value, values: torch.Value, x: torch.Value,
        kernel: str, s: float, lam: float, n: int,
    ) -> torch.Value:
        """The ONNX node; the exporter's ``_s``/``_f``/``_i`` suffixes give string/float/int attributes."""
        out = g.op(
            f"{DOMAIN}::{OP_TYPE}", theta, phi, values, x,
            kernel_s=kernel, s_f=s, lam_f=lam, n_i=n,
            plugin_namespace_s=PLUGIN_NAMESPACE, plugin_version_s=PLUGIN_VERSION,
        )
        out.setType(x.type())
        return out


class PluginPairwise(nn.Module):
    """Export stand-in for a ``PairwiseOperator``: the same update, exported as one custom node.

    The node's attributes are ``params``' kernel, s, λ and n: its kernel computes the log kernel
    with Euler's γ (:func:`nlseg.onnx.lowering.lowered_operator` refuses another constant).
    """

    def __init__(self, params: KernelParams) -> None:
        super().__init__()
        self.params = params

    def forward(self, theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        if dtype != torch.float32:  # the op's interface is float32 (distance math in float32)
            theta, phi, values, x = (t.float() for t in (theta, phi, values, x))
        p = self.params
        u = PairwiseKernelFunction.apply(theta, phi, values, x, p.kernel, p.s, p.lam, p.n)
        return u if dtype == torch.float32 else u.to(dtype)
