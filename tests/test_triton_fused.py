"""The fused Triton kernel (impl="triton") against the float64 formulas and the reference's autograd.

Runs on CPU tensors under Triton's interpreter (TRITON_INTERPRET=1, set in conftest.py);
the compiled kernels are tested in test_triton_compiled.py. Shapes are small because the
interpreter is slow, but span several tiles with partial last tiles in N, M, C' and C.
"""

from __future__ import annotations

import zlib

import pytest
import torch

pytest.importorskip("triton", reason="the fused kernel needs the triton package (pip install 'nlseg[dev]')")

from nlseg.ops import KernelParams, pairwise_update  # noqa: E402
from nlseg.ops.fused import function, spec  # noqa: E402
from nlseg.ops.pairwise import default_implementation  # noqa: E402
from nlseg.ops.reference import pairwise_reference  # noqa: E402
from tests.formulas import GAMMA, authors_log_gamma, naive_update  # noqa: E402

if not function.interpreting():
    pytest.skip("these tests run the kernels on CPU tensors: TRITON_INTERPRET=1 must be set", allow_module_level=True)

KERNEL_S = [(k, s) for k in ("frac", "invfrac") for s in (0.25, 0.5, 0.75)] + [("log", 0.5)]
# B, N, M, C', C: N spans 3 forward tiles of float32 (64) with a partial last one, M a full
# key tile plus a partial one; C' and C are not powers of two.
ODD_SHAPE = (2, 150, 70, 5, 3)


def inputs(shape, seed, dtype=torch.float64, scale=1.0):
    b, n_q, m, c_embed, c = shape
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(b, n_q, c_embed, generator=g, dtype=torch.float64) * scale
    phi = torch.randn(b, m, c_embed, generator=g, dtype=torch.float64) * scale
    values = torch.randn(b, m, c, generator=g, dtype=torch.float64)
    x = torch.randn(b, n_q, c, generator=g, dtype=torch.float64)
    return tuple(t.to(dtype) for t in (theta, phi, values, x))


def seed_of(*key) -> int:
    return zlib.crc32(repr(key).encode())


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-300)).item()


def fused(*args, **kwargs):
    return pairwise_update(*args, impl="triton", **kwargs)


@pytest.mark.parametrize("kernel,s", KERNEL_S)
def test_float32_matches_the_formula(kernel, s):
    theta, phi, values, x = inputs(ODD_SHAPE, seed_of(kernel, s), torch.float32)
    got = fused(theta, phi, values, x, kernel, s=s)
    assert got.dtype == torch.float32 and got.shape == x.shape
    assert rel_err(got, naive_update(theta, phi, values, x, kernel, s=s)) < 1e-4


@pytest.mark.parametrize("kernel", ["dot", "frac", "invfrac", "log"])
def test_acceptance_every_registered_kernel(kernel):
    """The issue's acceptance check: impl='triton' on CPU tensors, relative error < 1e-3."""
    theta, phi, values, x = inputs((1, 40, 13, 8, 4), seed_of("acceptance", kernel), torch.float32)
    got = fused(theta, phi, values, x, kernel)
    assert rel_err(got, naive_update(theta, phi, values, x, kernel)) < 1e-3


@pytest.mark.parametrize("kernel", ["frac", "invfrac", "log"])
def test_float64_is_exact(kernel):
    theta, phi, values, x = inputs(ODD_SHAPE, seed_of("f64", kernel))
    got = fused(theta, phi, values, x, kernel, s=0.3)
    assert got.dtype == torch.float64
    assert rel_err(got, naive_update(theta, phi, values, x, kernel, s=0.3)) < 1e-12


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 3e-3), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("kernel,s", [("frac", 0.5), ("invfrac", 0.25), ("log", 0.5)])
def test_half_precision_inputs(kernel, s, dtype, tol):
    """16-bit inputs: tensor-core distances, ω and the sums in float32, u in the input dtype."""
    theta, phi, values, x = inputs((2, 140, 70, 6, 5), seed_of("half", kernel, dtype), dtype)
    got = fused(theta, phi, values, x, kernel, s=s)
    assert got.dtype == dtype and torch.isfinite(got).all()
    assert rel_err(got, naive_update(theta, phi, values, x, kernel, s=s)) < tol


def test_many_small_tiles(monkeypatch):
    """16 × 16 tiles: many programs and key tiles, partial in N, M, C' (20 of 32) and C (17 of 32)."""
    for dtype in (torch.float32, torch.bfloat16):
        monkeypatch.setitem(spec.FORWARD_TILES, dtype, (spec.Tiles(16, 16, 4, 1),))
        monkeypatch.setitem(spec.BACKWARD_TILES, dtype, spec.Tiles(16, 16, 4, 1))
    for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 2e-2)):
        shape = (3, 37, 23, 20, 17)
        theta, phi, values, x = (t.requires_grad_() for t in inputs(shape, seed_of("tiles", dtype), dtype))
        got = fused(theta, phi, values, x, "frac")
        assert rel_err(got, naive_update(theta, phi, values, x, "frac")) < tol
        got.sum().backward()
        ref = [t.detach().double().requires_grad_() for t in (theta, phi, values, x)]
        pairwise_reference(*ref, KernelParams("frac")).sum().backward()
        for mine, theirs in zip((theta, phi, values, x), ref):
            assert rel_err(mine.grad, theirs.grad) < 10 * tol


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.float16, 5e-3), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("kernel", ["frac", "invfrac", "log"])
def test_coincident_embeddings_contribute_nothing(kernel, dtype, tol):
    """θ_i = φ_j exactly for many pairs, at norms up to 100: the zero rule must drop them."""
    g = torch.Generator().manual_seed(seed_of("coincident", kernel, dtype))
    theta, phi, values, x = inputs((2, 80, 24, 16, 5), seed_of("coincident", kernel))
    theta = theta * torch.rand(2, 80, 1, generator=g, dtype=torch.float64) * 100
    phi[:, :10] = theta[:, ::4][:, :10]
    phi[1, 11] = theta[1, 3]
    theta, phi, values, x = (t.to(dtype) for t in (theta, phi, values, x))
    expected = naive_update(theta, phi, values, x, kernel)
    got = fused(theta, phi, values, x, kernel)
    assert torch.isfinite(got).all()
    assert rel_err(got, expected) < tol


def test_all_zero_embeddings_give_zero():
    theta, phi, values, x = inputs((1, 6, 4, 3, 2), 0, torch.float32)
    for kernel in ("frac", "invfrac", "log"):
        assert fused(theta * 0, phi * 0, values, x, kernel).abs().max() == 0


@pytest.mark.parametrize("scale", [1e25, 1e-25])
@pytest.mark.parametrize("kernel", ["invfrac", "log"])
def test_huge_and_tiny_embeddings_in_float32(kernel, scale):
    """‖θ‖² of 1e50 overflows float32 and 1e-50 underflows: the power-of-two rescaling avoids both."""
    theta, phi, values, x = inputs((2, 30, 9, 8, 4), seed_of("scale", kernel, scale), scale=scale)
    expected = naive_update(theta, phi, values, x, kernel)
    got = fused(theta.float(), phi.float(), values.float(), x.float(), kernel)
    assert torch.isfinite(got).all()
    assert rel_err(got, expected) < 1e-4


def test_huge_embeddings_frac_float32_stays_finite():
    theta, phi, values, x = inputs((1, 20, 7, 4, 3), 5, torch.float32, scale=1e25)
    assert torch.isfinite(fused(theta, phi, values, x, "frac")).all()


def test_clustered_embeddings_in_float32():
    """A common offset 1000x the spread: centring keeps the distances (as for the reference)."""
    theta, phi, values, x = inputs((2, 40, 13, 8, 4), 11)
    offset = 1000.0 * torch.rand(2, 1, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    theta, phi, values, x = (t.float() for t in (theta + offset, phi + offset, values, x))
    got = fused(theta, phi, values, x, "frac")
    assert rel_err(got, naive_update(theta, phi, values, x, "frac")) < 1e-3


def test_mixed_dtypes_take_theta_dtype_and_return_x_dtype():
    theta, phi, values, x = inputs((1, 20, 7, 4, 3), 3)
    got = fused(theta.half(), phi.half(), values.float(), x.float(), "frac")
    assert got.dtype == torch.float32
    assert rel_err(got, naive_update(theta.half(), phi.half(), values.half(), x.half(), "frac")) < 3e-3


def test_empty_queries_and_channels():
    theta, phi, values, x = inputs((2, 0, 5, 3, 4), 0, torch.float32)
    assert fused(theta, phi, values, x, "frac").shape == (2, 0, 4)
    theta, phi, values, x = inputs((2, 6, 5, 3, 0), 0, torch.float32)
    assert fused(theta, phi, values, x, "log").shape == (2, 6, 0)


def backward_pair(kernel, s, shape, dtype, seed, coincide=0):
    """Input gradients of ⟨w, u⟩ from impl='triton' and from the reference's float64 autograd."""
    theta, phi, values, x = inputs(shape, seed)
    phi[:, :coincide] = theta[:, :coincide]
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(shape[0], shape[1], shape[4], generator=g, dtype=torch.float64)
    mine = [t.to(dtype).requires_grad_() for t in (theta, phi, values, x)]
    (fused(*mine, kernel, s=s).double() * weight).sum().backward()
    ref = [t.detach().double().requires_grad_() for t in mine]
    (pairwise_reference(*ref, KernelParams(kernel, s=s)) * weight).sum().backward()
    return [t.grad for t in mine], [t.grad for t in ref]


def assert_grads_close(mine, theirs, tol):
    for name, a, b in zip(("theta", "phi", "values", "x"), mine, theirs):
        if b is None:  # u does not depend on x for invfrac and log
            assert a is None or a.abs().max() == 0, name
            continue
        assert a is not None and torch.isfinite(a).all(), name
        assert rel_err(a, b) < tol, name


@pytest.mark.parametrize("kernel,s", KERNEL_S)
def test_float32_gradients_match_reference_autograd(kernel, s):
    """Two coincident pairs per batch element: their constant ω = 0 gets no gradient in either."""
    mine, theirs = backward_pair(kernel, s, (2, 70, 75, 5, 3), torch.float32, seed_of("grad", kernel, s), coincide=2)
    assert_grads_close(mine, theirs, 1e-3)


@pytest.mark.parametrize("kernel", ["frac", "invfrac", "log"])
def test_float64_gradients_are_exact(kernel):
    mine, theirs = backward_pair(kernel, 0.3, (2, 40, 37, 5, 3), torch.float64, seed_of("grad64", kernel))
    assert_grads_close(mine, theirs, 1e-11)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 1e-2), (torch.bfloat16, 5e-2)])
def test_half_precision_gradients(dtype, tol):
    mine, theirs = backward_pair("frac", 0.5, (2, 70, 75, 6, 5), dtype, seed_of("grad16", dtype))
    assert all(g.dtype == dtype for g in mine)
    assert_grads_close(mine, theirs, tol)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-11), (torch.float32, 1e-4)])
def test_log_kernel_takes_the_authors_constant(dtype, tol):
    """The thesis authors' log kernel, c(−2λ log d − λγ) (docs/design.md §6), compiled into the fused
    kernel: u and the input gradients against the float64 formula and its autograd."""
    gamma = authors_log_gamma(0.1)
    shape = (2, 70, 37, 5, 3)
    theta, phi, values, x = (t.requires_grad_() for t in inputs(shape, seed_of("authors", dtype)))
    weight = torch.randn(2, 70, 3, generator=torch.Generator().manual_seed(seed_of("authors weight")),
                         dtype=torch.float64)
    expected = naive_update(theta, phi, values, x, "log", log_gamma=gamma)
    (expected * weight).sum().backward()
    mine = [t.detach().to(dtype).requires_grad_() for t in (theta, phi, values, x)]
    got = fused(*mine, "log", log_gamma=gamma)
    assert rel_err(got, expected) < tol
    assert rel_err(got, naive_update(theta, phi, values, x, "log")) > 1e-2  # Euler's γ is another operator
    (got.double() * weight).sum().backward()
    for name, a, b in zip(("theta", "phi", "values"), mine, (theta, phi, values)):
        assert rel_err(a.grad, b.grad) < 10 * tol, name
    assert mine[3].grad is None or mine[3].grad.abs().max() == 0  # u of the log kernel does not depend on x
    assert default_implementation(KernelParams("log", log_gamma=gamma), torch.device("cuda"), dtype) == \
        ("reference" if dtype == torch.float64 else "triton")


def test_dispatch_uses_the_fused_kernel_on_cuda_only():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    for kernel in ("frac", "invfrac", "log"):
        assert default_implementation(KernelParams(kernel), cuda, torch.bfloat16) == "triton"
        assert default_implementation(KernelParams(kernel), cuda, torch.float32) == "triton"
        assert default_implementation(KernelParams(kernel), cuda, torch.float64) == "reference"
        assert default_implementation(KernelParams(kernel), cpu, torch.float32) == "cpu"  # the C++ kernel
    assert default_implementation(KernelParams("dot"), cuda, torch.float32) == "associative"
    assert default_implementation(KernelParams("gaussian"), cuda, torch.float32) == "reference"


def test_gaussian_is_not_fused():
    theta, phi, values, x = inputs((1, 4, 3, 2, 2), 0, torch.float32)
    with pytest.raises(ValueError, match="does not support"):
        fused(theta, phi, values, x, "gaussian")


@pytest.mark.parametrize("kernel,s,n", [("frac", 0.5, 2), ("invfrac", 0.5, 2), ("frac", 0.5, 1), ("frac", 0.3, 2),
                                        ("log", 0.5, 2)])
def test_spec_uses_the_kernel_table(kernel, s, n):
    """The compile-time constants come from nlseg.ops.omega: one rsqrt power when p is an integer;
    the log kernel's offset −c_n·γ takes the constant it is given."""
    from nlseg.ops.omega import KERNEL_FORMS, distance_exponent, kernel_constant, zero_rtol

    got = spec.fused_spec(KernelParams(kernel, s, 0.1, n), torch.float32)
    assert got.sign == KERNEL_FORMS[kernel].sign and got.zero_rtol == zero_rtol(torch.float32)
    if kernel == "log":
        assert got.mode == spec.MODE_LOG
        for gamma in (GAMMA, authors_log_gamma(0.1)):
            offset = spec.fused_spec(KernelParams(kernel, s, 0.1, n, gamma), torch.float32).log_offset
            assert offset == pytest.approx(-kernel_constant(kernel, s, n) * gamma, rel=1e-15)
        return
    p = distance_exponent(kernel, s, n)
    assert got.half_p == p / 2 and got.coef == pytest.approx(kernel_constant(kernel, s, n) * 0.1, rel=1e-15)
    assert (got.mode, got.power) == ((spec.MODE_POWER, round(p)) if p == round(p) else (spec.MODE_EXP2, 0))
