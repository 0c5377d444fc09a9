"""pairwise_update against an independent float64 evaluation of the thesis's formulas."""

from __future__ import annotations

import zlib

import pytest
import torch

from nlseg.ops import IMPLEMENTATIONS, KernelParams, pairwise_update
from nlseg.ops.associative import pairwise_associative
from nlseg.ops.reference import pairwise_reference
from tests.formulas import naive_update

def random_inputs(b, n_q, m, c_embed, c, dtype=torch.float64, generator=None, scale=1.0):
    g = generator or torch.Generator().manual_seed(0)
    theta = torch.randn(b, n_q, c_embed, generator=g, dtype=torch.float64) * scale
    phi = torch.randn(b, m, c_embed, generator=g, dtype=torch.float64) * scale
    values = torch.randn(b, m, c, generator=g, dtype=torch.float64)
    x = torch.randn(b, n_q, c, generator=g, dtype=torch.float64)
    return tuple(t.to(dtype) for t in (theta, phi, values, x))


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-300)).item()


KERNEL_S = [("dot", 0.5), ("gaussian", 0.5)] + [(k, s) for k in ("frac", "invfrac") for s in (0.25, 0.5, 0.75)] + [("log", 0.5)]


@pytest.mark.parametrize("kernel,s", KERNEL_S)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 1), (2, 37, 11, 5, 3), (3, 64, 9, 8, 7)])
def test_every_implementation_matches_the_formula(kernel, s, shape):
    b, n_q, m, c_embed, c = shape
    g = torch.Generator().manual_seed(zlib.crc32(repr((kernel, s, shape)).encode()))
    theta, phi, values, x = random_inputs(b, n_q, m, c_embed, c, generator=g)
    expected = naive_update(theta, phi, values, x, kernel, s=s)
    for name, impl in IMPLEMENTATIONS.items():
        if kernel not in impl.kernels:
            continue
        got = pairwise_update(theta, phi, values, x, kernel, s=s, impl=name)
        assert got.dtype == torch.float64 and got.shape == (b, n_q, c)
        assert rel_err(got, expected) < 1e-10, name
    got32 = pairwise_update(*(t.float() for t in (theta, phi, values, x)), kernel, s=s)
    assert got32.dtype == torch.float32
    assert rel_err(got32, expected) < 1e-4


@pytest.mark.parametrize("kernel", ["dot", "gaussian", "frac", "invfrac", "log"])
def test_chunking_does_not_change_the_result(kernel):
    theta, phi, values, x = random_inputs(2, 53, 17, 6, 4)
    whole = pairwise_reference(theta, phi, values, x, KernelParams(kernel), max_chunk_elements=None)
    for elements in (1, 17, 100, 10_000):
        part = pairwise_reference(theta, phi, values, x, KernelParams(kernel), max_chunk_elements=elements)
        torch.testing.assert_close(part, whole, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kernel", ["frac", "invfrac", "log"])
def test_coincident_embeddings_contribute_nothing(kernel, dtype):
    """θ_i = φ_j exactly for many pairs: the safe divide must zero them, even in float32."""
    g = torch.Generator().manual_seed(7)
    theta, phi, values, x = random_inputs(2, 40, 12, 16, 5, generator=g)
    scale = torch.rand(2, 40, 1, generator=g, dtype=torch.float64) * 100
    theta = theta * scale
    phi[:, :10] = theta[:, ::4][:, :10]  # ten keys coincide with queries 0, 4, 8, ...
    phi[1, 11] = theta[1, 3]
    inputs = tuple(t.to(dtype) for t in (theta, phi, values, x))
    expected = naive_update(*inputs, kernel)
    assert torch.isfinite(expected).all()
    got = pairwise_update(*inputs, kernel)
    assert torch.isfinite(got).all()
    assert rel_err(got, expected) < (1e-10 if dtype == torch.float64 else 1e-4)


def test_all_zero_embeddings_give_zero_weights():
    theta, phi, values, x = random_inputs(1, 6, 4, 3, 2)
    theta.zero_()
    phi.zero_()
    for kernel in ("frac", "invfrac", "log"):
        assert pairwise_update(theta, phi, values, x, kernel).abs().max() == 0


@pytest.mark.parametrize("scale", [1e25, 1e-25])
@pytest.mark.parametrize("kernel", ["invfrac", "log"])
def test_huge_and_tiny_embeddings_in_float32(kernel, scale):
    """‖θ‖² of 1e50 overflows float32 and 1e-50 underflows: the power-of-two rescaling avoids both."""
    theta, phi, values, x = random_inputs(2, 30, 9, 8, 4, scale=scale)
    expected = naive_update(theta, phi, values, x, kernel)
    got = pairwise_update(theta.float(), phi.float(), values.float(), x.float(), kernel)
    assert torch.isfinite(got).all()
    assert rel_err(got, expected) < 1e-4


@pytest.mark.parametrize(
    "kernel,scale",
    # ‖θ‖² beyond 1e308 needs the rescaling; frac's d^-3 is only representable up to ~1e±100
    [("invfrac", 1e200), ("invfrac", 1e-200), ("log", 1e200), ("log", 1e-200), ("frac", 1e100), ("frac", 1e-100)],
)
def test_huge_and_tiny_embeddings_in_float64(kernel, scale):
    theta, phi, values, x = random_inputs(2, 30, 9, 8, 4, scale=scale)
    expected = naive_update(theta, phi, values, x, kernel)
    got = pairwise_update(theta, phi, values, x, kernel)
    assert torch.isfinite(got).all()
    assert rel_err(got, expected) < 1e-10


def test_huge_embeddings_frac_float32_stays_finite():
    """ω ~ 1e-75 underflows to 0 in float32, which is the representable answer, never NaN."""
    theta, phi, values, x = random_inputs(1, 20, 7, 4, 3, scale=1e25)
    got = pairwise_update(theta.float(), phi.float(), values.float(), x.float(), "frac")
    assert torch.isfinite(got).all()


@pytest.mark.parametrize("kernel,s", KERNEL_S)
def test_gradcheck(kernel, s):
    theta, phi, values, x = random_inputs(2, 7, 5, 3, 2)
    inputs = tuple(t.clone().requires_grad_() for t in (theta, phi, values, x))
    assert torch.autograd.gradcheck(lambda *a: pairwise_update(*a, kernel, s=s), inputs)


@pytest.mark.parametrize("kernel", ["gaussian", "frac", "log"])
def test_gradcheck_through_recomputed_chunks(kernel):
    theta, phi, values, x = random_inputs(1, 9, 4, 3, 2)
    inputs = tuple(t.clone().requires_grad_() for t in (theta, phi, values, x))
    fn = lambda *a: pairwise_reference(*a, KernelParams(kernel), max_chunk_elements=8)  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs)


def test_gradcheck_associative():
    theta, phi, values, x = random_inputs(2, 8, 5, 3, 4)
    inputs = tuple(t.clone().requires_grad_() for t in (theta, phi, values, x))
    assert torch.autograd.gradcheck(lambda *a: pairwise_associative(*a, KernelParams("dot", lam=0.3)), inputs)


def test_associative_equals_formed_matrix():
    g = torch.Generator().manual_seed(3)
    theta, phi, values, x = random_inputs(3, 200, 23, 16, 32, generator=g)
    formed = pairwise_reference(theta, phi, values, x, KernelParams("dot", lam=0.7), max_chunk_elements=None)
    associative = pairwise_associative(theta, phi, values, x, KernelParams("dot", lam=0.7))
    torch.testing.assert_close(associative, formed, rtol=1e-12, atol=1e-12)


def test_dot_default_never_forms_the_matrix():
    """10⁶ queries x 111,112 keys: the N×M matrix would be 444 GB; the associative form takes seconds."""
    g = torch.Generator().manual_seed(0)
    n_q, m = 1_000_000, 111_112
    theta = torch.randn(1, n_q, 16, generator=g)
    phi = torch.randn(1, m, 16, generator=g)
    values = torch.randn(1, m, 32, generator=g)
    x = torch.randn(1, n_q, 32, generator=g)
    u = pairwise_update(theta, phi, values, x, "dot")
    assert u.shape == (1, n_q, 32) and torch.isfinite(u).all()
    rows = slice(0, 50)
    expected = naive_update(theta[:, rows], phi, values, x[:, rows], "dot")
    assert rel_err(u[:, rows], expected) < 1e-4


def test_half_precision_inputs_compute_in_float32():
    theta, phi, values, x = random_inputs(2, 25, 8, 8, 4)
    expected = naive_update(theta, phi, values, x, "frac")
    got = pairwise_update(*(t.to(torch.bfloat16) for t in (theta, phi, values, x)), "frac")
    assert got.dtype == torch.bfloat16
    quantised = naive_update(*(t.to(torch.bfloat16) for t in (theta, phi, values, x)), "frac")
    assert rel_err(got, quantised) < 1e-2
    assert rel_err(got, expected) < 0.1


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"kernel": "cosine"}, "unknown pairwise kernel"),
        ({"kernel": "frac", "s": 1.0}, "0 < s < 1"),
        ({"kernel": "dot", "impl": "magic"}, "unknown pairwise implementation"),
        ({"kernel": "frac", "impl": "associative"}, "does not support"),
    ],
)
def test_bad_arguments(kwargs, message):
    theta, phi, values, x = random_inputs(1, 4, 3, 2, 2)
    kernel = kwargs.pop("kernel")
    with pytest.raises(ValueError, match=message):
        pairwise_update(theta, phi, values, x, kernel, **kwargs)


def test_bad_shapes():
    theta, phi, values, x = random_inputs(1, 4, 3, 2, 2)
    with pytest.raises(ValueError, match="values has shape"):
        pairwise_update(theta, phi, values[:, :2], x, "dot")
    with pytest.raises(ValueError, match="must be 3-D"):
        pairwise_update(theta[0], phi, values, x, "dot")


def nonlocal_flow(u, embedding, kernel, tau, steps):
    """Forward Euler on u_t = 𝓛u (3.4) with a symmetric kernel: θ = φ = embedding, no pooling."""
    sign = -1.0 if kernel == "frac" else 1.0  # frac computes (−Δ)^s u, the flow is −(−Δ)^s u
    states = [u]
    for _ in range(steps):
        u = u + sign * tau * pairwise_update(embedding, embedding, u, u, kernel)
        states.append(u)
    return states


@pytest.mark.parametrize("kernel", ["dot", "gaussian", "frac"])
def test_nonlocal_diffusion_keeps_mean_and_does_not_increase_variance(kernel):
    """Theorem 3.3 (a) and Lemma 3.4 for the discrete flow with a symmetric kernel ω >= 0."""
    g = torch.Generator().manual_seed(11)
    embedding = torch.rand(2, 60, 4, generator=g, dtype=torch.float64)  # >= 0, so λθ·φ >= 0 too
    u0 = torch.randn(2, 60, 3, generator=g, dtype=torch.float64)
    states = nonlocal_flow(u0, embedding, kernel, tau=0.5 if kernel != "frac" else 0.05, steps=30)
    mean0 = u0.mean(dim=1)
    variances = [s.var(dim=1) for s in states]
    for state, before, after in zip(states[1:], variances[:-1], variances[1:]):
        torch.testing.assert_close(state.mean(dim=1), mean0, rtol=0, atol=1e-12)
        assert (after <= before + 1e-12).all()
    assert (variances[-1] < variances[0]).all()


@pytest.mark.parametrize("kernel", ["frac", "invfrac", "log"])
def test_clustered_embeddings_in_float32(kernel):
    """A common offset 1000x the spread (as ReLU features have) must not drown the distances."""
    theta, phi, values, x = random_inputs(2, 40, 13, 8, 4)
    offset = 1000.0 * torch.rand(2, 1, 8, dtype=torch.float64)
    theta, phi = theta + offset, phi + offset
    expected = naive_update(theta, phi, values, x, kernel)
    got = pairwise_update(theta.float(), phi.float(), values.float(), x.float(), kernel)
    quantised = naive_update(theta.float(), phi.float(), values.float(), x.float(), kernel)
    assert rel_err(got, quantised) < 1e-3
    assert rel_err(quantised, expected) < 1e-2  # the float32 inputs themselves lose this much
