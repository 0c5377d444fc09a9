"""Blocks (2.17), (2.19), (2.21), reversibility (2.24), and the Nonlocal Block's shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nlseg.nn import HamiltonianBlock, LeapfrogBlock, MidpointBlock, NonlocalBlock, NonlocalConfig, Unit
from nlseg.ops import KERNELS, KernelParams
from tests.formulas import naive_update


def randomise_batchnorm(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))


def test_hamiltonian_block_is_reversible_to_float64_precision():
    torch.manual_seed(0)
    block = HamiltonianBlock(16, h=0.08).double().eval()
    randomise_batchnorm(block)
    x = torch.randn(3, 16, 11, 13, dtype=torch.float64)
    out = block(x)
    assert (out - x).abs().max() > 1e-3  # the block does something
    torch.testing.assert_close(block.inverse(out), x, rtol=0, atol=1e-12)


def test_hamiltonian_block_follows_verlet():
    torch.manual_seed(1)
    block = HamiltonianBlock(8, h=0.05).double().eval()
    randomise_batchnorm(block, 3)
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    y, z = x[:, :4], x[:, 4:]
    k1, k2 = block.conv1.weight, block.conv2.weight
    y1 = y + 0.05 * F.conv_transpose2d(F.relu(block.bn1(F.conv2d(z, k1, padding=1))), k1, padding=1)
    z1 = z - 0.05 * F.conv_transpose2d(F.relu(block.bn2(F.conv2d(y1, k2, padding=1))), k2, padding=1)
    torch.testing.assert_close(block(x), torch.cat((y1, z1), 1))


def test_transposed_conv_is_the_adjoint():
    """<K a, b> = <a, Kᵀ b>: the transposed convolution with the same weights is Kᵀ."""
    block = HamiltonianBlock(6).double()
    a = torch.randn(1, 3, 7, 9, dtype=torch.float64)
    b = torch.randn(1, 3, 7, 9, dtype=torch.float64)
    k = block.conv1.weight
    lhs = (F.conv2d(a, k, padding=1) * b).sum()
    rhs = (a * F.conv_transpose2d(b, k, padding=1)).sum()
    torch.testing.assert_close(lhs, rhs)


@pytest.mark.parametrize("block_cls", [HamiltonianBlock, LeapfrogBlock, MidpointBlock])
def test_dilated_blocks_keep_the_adjoint_and_the_size(block_cls):
    """dilation=2 (the real-time layout's output stride): K and Kᵀ are dilated alike, so Kᵀ stays the
    adjoint, the size is kept, and the Hamiltonian Block stays reversible."""
    torch.manual_seed(3)
    block = block_cls(6, dilation=2).double().eval()
    conv = block.conv1 if block_cls is HamiltonianBlock else block.conv
    assert conv.dilation == (2, 2) and conv.padding == (2, 2)
    c = conv.weight.shape[0]
    a = torch.randn(1, c, 9, 11, dtype=torch.float64)
    b = torch.randn(1, c, 9, 11, dtype=torch.float64)
    lhs = (conv(a) * b).sum()
    rhs = (a * F.conv_transpose2d(b, conv.weight, padding=2, dilation=2)).sum()
    torch.testing.assert_close(lhs, rhs)
    x = torch.randn(2, 6, 9, 11, dtype=torch.float64)
    out = block(x)
    assert out.shape == x.shape
    if block_cls is HamiltonianBlock:
        torch.testing.assert_close(block.inverse(out), x)


def test_leapfrog_two_step_and_first_step():
    torch.manual_seed(2)
    block = LeapfrogBlock(4, h=0.1).double().eval()
    y, y_prev = torch.randn(2, 1, 4, 5, 5, dtype=torch.float64)
    k = block.conv.weight
    force = F.conv_transpose2d(F.relu(block.bn(F.conv2d(y, k, padding=1))), k, padding=1)
    torch.testing.assert_close(block(y, y_prev), 2 * y - y_prev - 0.01 * force)
    torch.testing.assert_close(block(y), y - 0.01 * force)  # Y_{-1} = Y_0, docs/design.md §2.1


def test_midpoint_uses_antisymmetric_operator_and_euler_start():
    torch.manual_seed(3)
    block = MidpointBlock(4, h=0.1).double().eval()
    y, y_prev = torch.randn(2, 1, 4, 6, 6, dtype=torch.float64)
    k = block.conv.weight
    f = F.relu(block.bn(F.conv2d(y, k, padding=1) - F.conv_transpose2d(y, k, padding=1)))
    torch.testing.assert_close(block(y, y_prev), y_prev + 0.2 * f)
    torch.testing.assert_close(block(y), y + 0.1 * f)
    # K − Kᵀ is antisymmetric: <(K − Kᵀ) a, a> = 0
    a = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    quad = ((F.conv2d(a, k, padding=1) - F.conv_transpose2d(a, k, padding=1)) * a).sum()
    assert abs(quad.item()) < 1e-10


def test_unit_passes_the_previous_state_and_restarts_after_nonlocal():
    torch.manual_seed(4)
    b1, b2, b3 = (LeapfrogBlock(4, h=0.1).double().eval() for _ in range(3))
    nl = NonlocalBlock(4, NonlocalConfig(KernelParams("dot"), pool=0)).double().eval()
    unit = Unit([b1, b2, nl, b3]).eval()
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    y1 = b1(x)
    y2 = b2(y1, x)
    expected = b3(nl(y2))
    torch.testing.assert_close(unit(x), expected)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("pool", [0, 2, 3])
@pytest.mark.parametrize("size", [(1, 1), (5, 7), (9, 16), (31, 17)])
def test_nonlocal_block_preserves_shape(kernel, pool, size):
    block = NonlocalBlock(6, NonlocalConfig(KernelParams(kernel), pool=pool)).eval()
    x = torch.randn(2, 6, *size)
    out = block(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("stages", [1, 2, 4])
def test_nonlocal_block_stages(stages):
    """B_k = X + h 𝒦_k(u(B_{k−1})) with ω from the block input (4.1)."""
    torch.manual_seed(5)
    block = NonlocalBlock(4, NonlocalConfig(KernelParams("frac"), stages=stages, pool=2), h=0.07).double().eval()
    assert len(block.stages) == stages
    x = torch.randn(1, 4, 6, 5, dtype=torch.float64)
    theta = block.theta(x).flatten(2).transpose(1, 2)
    phi = F.max_pool2d(block.phi(x), 2, 2, ceil_mode=True).flatten(2).transpose(1, 2)
    out = x
    for stage in block.stages:
        values = F.max_pool2d(out, 2, 2, ceil_mode=True).flatten(2).transpose(1, 2)
        u = naive_update(theta, phi, values, out.flatten(2).transpose(1, 2), "frac")
        out = x + 0.07 * stage(u.transpose(1, 2).reshape(x.shape))
    torch.testing.assert_close(block(x), out)


def test_nonlocal_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown pairwise kernel"):
        NonlocalConfig(KernelParams("cosine"))
    with pytest.raises(ValueError, match="at least one stage"):
        NonlocalConfig(KernelParams("dot"), stages=0)
    with pytest.raises(ValueError, match="pool size"):
        NonlocalConfig(KernelParams("dot"), pool=-1)


def test_hamiltonian_block_needs_even_channels():
    with pytest.raises(ValueError, match="even"):
        HamiltonianBlock(7)
