"""Nonlocal Blocks exported to ONNX: every kernel x pool (0, 2, 3), both graph forms, one export per form
run at several sizes (ceil-mode pooling on ragged borders included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nlseg.nn.nonlocal_block import NonlocalBlock, NonlocalConfig
from nlseg.onnx.export import trace_module
from nlseg.onnx.lowering import lower_model
from nlseg.onnx.ort_op import custom_op_available, open_session
from nlseg.ops import KernelParams

CHANNELS = 6
CASES = [(kernel, pool, stages) for kernel, stages in (("dot", 1), ("gaussian", 1), ("frac", 2), ("invfrac", 1), ("log", 1))
         for pool in (0, 2, 3)]


class Blocks(nn.Module):
    """One Nonlocal Block per case, each applied to the input, one output each."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            NonlocalBlock(CHANNELS, NonlocalConfig(KernelParams(k, s=0.4), stages=st, pool=p), h=1.0)
            for k, p, st in CASES)

    def forward(self, x):
        return tuple(block(x) for block in self.blocks)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = Blocks()
    for m in net.modules():  # trained-like batch norms, so the pairwise term is not negligible
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 2.0)
            m.bias.data.uniform_(0.0, 0.5)
    return net.eval()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """form -> file: one export per graph form."""
    outputs = [f"y{i}" for i in range(len(CASES))]
    axes = {name: {0: "batch", 2: "height", 3: "width"} for name in ["x", *outputs]}
    example = (torch.rand(2, CHANNELS, 10, 14),)
    result = {}
    for form in ("portable", "plugin"):
        path = tmp_path_factory.mktemp(form) / "blocks.onnx"
        graph = trace_module(lower_model(model, form), example, ["x"], outputs, axes, 17, plugin=form == "plugin")
        path.write_bytes(graph.SerializeToString())
        result[form] = path
    return result


@pytest.mark.parametrize("form", ["portable", pytest.param("plugin", marks=pytest.mark.skipif(
    not custom_op_available(), reason="plugin graphs run in ONNX Runtime through onnxruntime-extensions"))])
@pytest.mark.parametrize("shape", [(1, 7, 11), (2, 12, 18), (1, 1, 1), (3, 5, 16)])
def test_block_parity(model, exported, form, shape):
    b, hgt, wid = shape
    x = torch.randn(b, CHANNELS, hgt, wid, generator=torch.Generator().manual_seed(hgt * wid))
    got = open_session(exported[form]).run(None, {"x": x.numpy()})
    with torch.no_grad():
        expected = model(x)
    for (kernel, pool, stages), out, ref in zip(CASES, got, expected):
        ref = ref.numpy()
        assert out.shape == ref.shape
        contribution = np.abs(ref - x.numpy()).max()  # the block's own change of its input
        assert contribution > 1e-2, (kernel, pool)
        assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), (form, kernel, pool, stages)
