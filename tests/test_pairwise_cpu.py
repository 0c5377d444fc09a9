"""The C++ CPU kernel (impl="cpu") against the float64 formulas of tests/formulas.py.

Forward: u against :func:`naive_update`. Backward: the gradients of all four inputs against
float64 autograd through the same formula. Where embeddings coincide, the formula's autograd is
NaN (the derivative of ‖θ_i − φ_j‖ at 0) although the pair contributes nothing by the safe-divide
rule, so the oracle there is :func:`naive_update` row by row over the keys that do not coincide
with the row's query, rescaled to the 1/M normalisation: the same function, differentiable.

float32 tolerances. The largest errors measured on these inputs are 8e-6 (u) and 1e-5
(gradients), relative to the largest entry of each tensor: float32 rounds at 6e-8, the norm
expansion ‖a‖² − 2a·b + ‖b‖² loses a further factor (‖a‖² + ‖b‖²)/d² (up to ~100 for the closest
random pairs here, whose weights d^−(n+2s) dominate the sums), and the sums over M ≤ 150 keys
add √M·eps. One tolerance, 1e-4, keeps a margin of about ten over those errors, while an error
in a formula (a wrong constant or a missed term) shows up at 1e-2 or more.
"""

from __future__ import annotations

import dataclasses
import warnings
import zlib

import pytest
import torch

from nlseg.nn.nonlocal_block import PairwiseOperator
from nlseg.ops import KernelParams, pairwise, pairwise_update
from nlseg.ops.cpu import build, function
from nlseg.ops.cpu.build import KernelBuildWarning, KernelLibrary
from nlseg.ops.fused.spec import fused_spec
from nlseg.ops.omega import distance_weight
from nlseg.ops.pairwise import default_implementation
from nlseg.ops.reference import pairwise_reference
from tests.formulas import GAMMA, authors_log_gamma, naive_update

if build.LIBRARY.load() is None:
    pytest.skip(f"the CPU pairwise kernel could not be built here: {build.LIBRARY.failure}", allow_module_level=True)

KERNEL_S = [(k, s) for k in ("frac", "invfrac") for s in (0.25, 0.5, 0.75)] + [("log", 0.5)]
# B, N, M, C', C: N not a multiple of the 6-row blocks, M across padding and (150) two key
# tiles of 128, C' and C not multiples of 16, C above 16.
SHAPES = [(2, 37, 19, 5, 3), (3, 50, 33, 7, 18), (2, 61, 150, 9, 20)]
FORWARD_TOL = GRAD_TOL = 1e-4


def seed_of(*key: object) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def random_inputs(shape, generator, scale=1.0):
    b, n_q, m, c_embed, c = shape
    theta = torch.randn(b, n_q, c_embed, generator=generator, dtype=torch.float64) * scale
    phi = torch.randn(b, m, c_embed, generator=generator, dtype=torch.float64) * scale
    values = torch.randn(b, m, c, generator=generator, dtype=torch.float64)
    x = torch.randn(b, n_q, c, generator=generator, dtype=torch.float64)
    return theta, phi, values, x


def rel_err(got: torch.Tensor, expected: torch.Tensor) -> float:
    scale = expected.double().abs().max().clamp_min(1e-300)
    return ((got.double() - expected.double()).abs().max() / scale).item()


def row_wise_update(theta, phi, values, x, kernel, s=0.5, n=2):
    """naive_update per query row over the keys that differ from it, times (kept keys)/M: the
    formula with the safe divide's convention, differentiable where embeddings coincide."""
    m = phi.shape[1]
    rows = []
    for b in range(theta.shape[0]):
        for i in range(theta.shape[1]):
            keep = (phi[b] != theta[b, i]).any(-1)
            if keep.any():
                u = naive_update(theta[b : b + 1, i : i + 1], phi[b : b + 1, keep], values[b : b + 1, keep],
                                 x[b : b + 1, i : i + 1], kernel, s=s, n=n)
                rows.append(u * (int(keep.sum()) / m))
            else:
                rows.append(torch.zeros(1, 1, values.shape[2], dtype=torch.float64))
    return torch.cat(rows, dim=1).reshape(theta.shape[0], theta.shape[1], values.shape[2])


def value_and_grads(fn, inputs, grad_out):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    u = fn(*leaves)
    grads = torch.autograd.grad(u, leaves, grad_out.to(u.dtype), allow_unused=True)
    return u.detach(), [torch.zeros_like(t) if gr is None else gr for t, gr in zip(leaves, grads)]


def check_against_oracle(inputs64, kernel, s, oracle=naive_update, dtype=torch.float32, n=2):
    """u and the four gradients of impl='cpu' on ``dtype`` inputs against the float64 ``oracle``."""
    g = seed_of("grad_out", kernel, s, tuple(inputs64[0].shape), tuple(inputs64[1].shape))
    grad_out = torch.randn(inputs64[3].shape, generator=g, dtype=torch.float64)
    expected, expected_grads = value_and_grads(lambda *a: oracle(*a, kernel, s=s, n=n), inputs64, grad_out)
    assert torch.isfinite(expected).all() and all(torch.isfinite(e).all() for e in expected_grads)
    got, got_grads = value_and_grads(lambda *a: pairwise_update(*a, kernel, s=s, n=n, impl="cpu"),
                                     [t.to(dtype) for t in inputs64], grad_out)
    assert got.dtype == dtype and all(gr.dtype == dtype for gr in got_grads)
    tol, grad_tol = (1e-10, 1e-9) if dtype == torch.float64 else (FORWARD_TOL, GRAD_TOL)
    assert rel_err(got, expected) < tol
    for name, mine, theirs in zip(("theta", "phi", "values", "x"), got_grads, expected_grads):
        if kernel != "frac" and name == "x":  # u does not depend on x: the gradient is exactly zero
            assert mine.abs().max() == 0 and theirs.abs().max() == 0
            continue
        assert rel_err(mine, theirs) < grad_tol, name


@pytest.mark.parametrize("kernel,s", KERNEL_S)
@pytest.mark.parametrize("shape", SHAPES)
def test_float32_forward_and_gradients_match_the_formula(kernel, s, shape):
    inputs = random_inputs(shape, seed_of("f32", kernel, s, shape))
    check_against_oracle(inputs, kernel, s)


@pytest.mark.parametrize("kernel,s", KERNEL_S)
def test_float64_forward_and_gradients_match_the_formula(kernel, s):
    """impl='cpu' also computes float64 (never the default): the backward's math, exactly."""
    inputs = random_inputs((2, 23, 35, 6, 5), seed_of("f64", kernel, s))
    check_against_oracle(inputs, kernel, s, dtype=torch.float64)


@pytest.mark.parametrize(
    "kernel,s,n,mode",
    # d'^−p from square roots when 2p is an integer up to 12 (the thesis's s, any integer n),
    # else from exp2 and log2; every mode against the formula in float32 and float64.
    [("frac", 0.5, 1, "quarters"), ("invfrac", 0.75, 3, "quarters"), ("frac", 0.5, 5, "quarters"),
     ("frac", 0.5, 6, "real"), ("frac", 0.3, 2, "real"), ("invfrac", 0.6, 2, "real"), ("log", 0.5, 3, "log")],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_exponent_mode_matches_the_formula(kernel, s, n, mode, dtype):
    modes = {"quarters": function.MODE_POWER_QUARTERS, "real": function.MODE_POWER_REAL, "log": function.MODE_LOG_KERNEL}
    args = function.kernel_args(fused_spec(KernelParams(kernel, s, 0.1, n), torch.float32), build.LIBRARY.load())
    assert args.mode == modes[mode]
    inputs = random_inputs((2, 29, 21, 5, 4), seed_of("modes", kernel, s, n))
    check_against_oracle(inputs, kernel, s, dtype=dtype, n=n)


@pytest.mark.parametrize("kernel,s", [("frac", 0.5), ("frac", 0.75), ("invfrac", 0.25), ("frac", 0.3), ("log", 0.5)])
def test_gradcheck(kernel, s):
    inputs = [t.requires_grad_() for t in random_inputs((2, 7, 5, 3, 2), seed_of("gradcheck", kernel, s))]
    assert torch.autograd.gradcheck(lambda *a: pairwise_update(*a, kernel, s=s, impl="cpu"), inputs)


@pytest.mark.parametrize("kernel,s", KERNEL_S)
def test_queries_that_coincide_with_keys(kernel, s):
    """Keys duplicated among the queries (and queries among each other): those pairs give 0."""
    g = seed_of("coincide", kernel, s)
    theta, phi, values, x = random_inputs((2, 40, 21, 8, 5), g)
    theta = theta * torch.rand(2, 40, 1, generator=g, dtype=torch.float64) * 10
    phi[:, :10] = theta[:, ::4][:, :10]  # ten keys equal queries 0, 4, 8, ...
    theta[:, 1] = phi[:, 15]  # a query equal to a key that is not one of those
    theta[0, 2] = theta[0, 0]  # a query twice
    phi[1, 20] = phi[1, 3]  # a key twice, equal to a query
    check_against_oracle((theta, phi, values, x), kernel, s, oracle=row_wise_update)


@pytest.mark.parametrize("kernel", ["frac", "invfrac", "log"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_identical_embeddings_give_zero_update_and_gradients(kernel, dtype):
    _, _, values, x = random_inputs((2, 13, 7, 4, 3), seed_of("identical", kernel))
    point = torch.randn(2, 1, 4, generator=seed_of("point"), dtype=torch.float64) * 3
    theta, phi = point.expand(2, 13, 4), point.expand(2, 7, 4)
    u, grads = value_and_grads(lambda *a: pairwise_update(*a, kernel, impl="cpu"),
                               [t.to(dtype) for t in (theta, phi, values, x)], torch.ones(2, 13, 3))
    assert u.abs().max() == 0
    assert all(gr.abs().max() == 0 for gr in grads)


@pytest.mark.parametrize("scale", [1e4, 1e-4])
@pytest.mark.parametrize("kernel,s", KERNEL_S)
def test_large_and_tiny_magnitudes(kernel, s, scale):
    inputs = random_inputs((2, 30, 17, 6, 4), seed_of("magnitude", kernel, s, scale), scale=scale)
    check_against_oracle(inputs, kernel, s)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_compute_in_float32(dtype):
    inputs = random_inputs((2, 25, 19, 8, 4), seed_of("half", dtype))
    half = [t.to(dtype) for t in inputs]
    grad_out = torch.randn(2, 25, 4, generator=seed_of("half grad"), dtype=torch.float64)
    got, got_grads = value_and_grads(lambda *a: pairwise_update(*a, "frac", impl="cpu"), half, grad_out)
    expected, expected_grads = value_and_grads(lambda *a: naive_update(*a, "frac"), [t.double() for t in half],
                                               grad_out.to(dtype))
    assert got.dtype == dtype and all(gr.dtype == dtype for gr in got_grads)
    tol = 1e-2 if dtype == torch.float16 else 2e-2  # one rounding to the 16-bit output
    assert rel_err(got, expected) < tol
    assert all(rel_err(a, b) < tol for a, b in zip(got_grads, expected_grads))


class FixedLibrary:
    """Stands in for nlseg.ops.cpu.build.LIBRARY: always the given loaded kernel."""

    failed = False

    def __init__(self, kernel: build.LoadedKernel) -> None:
        self.kernel = kernel

    def load(self) -> build.LoadedKernel:
        return self.kernel


@pytest.mark.parametrize("runtime", ["openmp", "std::thread"])
def test_result_does_not_depend_on_the_thread_count(monkeypatch, runtime):
    """Work goes to PyTorch's OpenMP threads where found, else to std::threads; row blocks are
    computed whole by one thread, so the forward is bitwise the same for any thread count."""
    loaded = build.LIBRARY.load()
    if runtime == "openmp" and loaded.openmp is None:
        pytest.skip("PyTorch here does not run on an OpenMP runtime")
    if runtime == "std::thread":
        monkeypatch.setattr(function, "LIBRARY", FixedLibrary(dataclasses.replace(loaded, openmp=None)))
    # 900k pairs: three threads' worth (the kernel gives each thread at least 2^18 pairs)
    inputs = [t.float() for t in random_inputs((1, 1500, 600, 8, 16), seed_of("threads"))]
    grad_out = torch.randn(1, 1500, 16, generator=seed_of("threads grad"))
    before = torch.get_num_threads()
    try:
        runs = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            runs.append(value_and_grads(lambda *a: pairwise_update(*a, "frac", impl="cpu"), inputs, grad_out))
    finally:
        torch.set_num_threads(before)
    (u1, g1), *others = runs
    for u, g in others:
        assert torch.equal(u, u1)
        assert all(rel_err(a, b) < 1e-5 for a, b in zip(g, g1))


def test_backward_keeps_no_pairwise_matrix():
    """Memory O((N + M)·C): what autograd saves for the backward is a few (N + M)·C tensors."""
    shape = (1, 6000, 2000, 8, 16)
    _, n_q, m, c_embed, c = shape
    inputs = [t.float().requires_grad_() for t in random_inputs(shape, seed_of("memory"))]
    saved = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        u = pairwise_update(*inputs, "frac", impl="cpu")
    u.sum().backward()
    bound = 4 * (n_q + m) * (c_embed + c + 1)
    assert bound < n_q * m / 10
    assert sum(saved) < bound
    assert all(torch.isfinite(t.grad).all() for t in inputs)


@pytest.mark.parametrize("kernel,s,log_gamma", [(k, s, GAMMA) for k, s in KERNEL_S] + [("log", 0.5, authors_log_gamma())])
def test_kernel_constants_agree_with_the_kernel_table(kernel, s, log_gamma):
    """gain_b·ω'(d'²) + offset_b (what the C++ kernel and this module compute) is
    nlseg.ops.omega.distance_weight at d² = 4^l·d'², for scales 2^l of both signs."""
    log2_scale = torch.tensor([-7.0, 0.0, 5.0], dtype=torch.float64)
    params = KernelParams(kernel, s, 0.1, 2, log_gamma)
    spec = fused_spec(params, torch.float64)
    gain, offset = function.batch_gain_offset(spec, log2_scale)
    d2 = torch.tensor([0.01, 0.5, 3.0, 40.0], dtype=torch.float64)
    if kernel == "log":
        omega_prime = spec.coef * torch.log2(d2)
    else:
        omega_prime = d2 ** -spec.half_p
    mine = gain[:, None] * omega_prime[None, :] + offset[:, None]
    log_d2 = torch.log(d2)[None, :] + 2.0 * log2_scale[:, None] * torch.log(torch.tensor(2.0, dtype=torch.float64))
    zero = torch.zeros_like(log_d2, dtype=torch.bool)
    table = distance_weight(params, log_d2, zero)
    torch.testing.assert_close(mine, table, rtol=1e-13, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_authors_log_constant_matches_the_formula(dtype):
    """The thesis authors' log kernel, λ·c(−2 log d − γ) = c(−2λ log d − λγ): u and gradients."""
    inputs = random_inputs((2, 31, 23, 6, 4), seed_of("authors formula", dtype))
    gamma = authors_log_gamma(0.1)
    grad_out = torch.randn(2, 31, 4, generator=seed_of("authors grad"), dtype=torch.float64)
    expected, expected_grads = value_and_grads(lambda *a: naive_update(*a, "log", log_gamma=gamma), inputs, grad_out)
    got, got_grads = value_and_grads(lambda *a: pairwise_update(*a, "log", log_gamma=gamma, impl="cpu"),
                                     [t.to(dtype) for t in inputs], grad_out)
    tol = 1e-10 if dtype == torch.float64 else FORWARD_TOL
    assert rel_err(got, expected) < tol
    assert all(rel_err(a, b) < tol for a, b in zip(got_grads[:3], expected_grads[:3]))
    assert default_implementation(KernelParams("log", log_gamma=gamma), torch.device("cpu"), torch.float32) == "cpu"


def test_dispatch():
    cpu = torch.device("cpu")
    for kernel in ("frac", "invfrac", "log"):
        assert default_implementation(KernelParams(kernel), cpu, torch.float32) == "cpu"
        assert default_implementation(KernelParams(kernel), cpu, torch.bfloat16) == "cpu"
        assert default_implementation(KernelParams(kernel), cpu, torch.float16) == "cpu"
        assert default_implementation(KernelParams(kernel), cpu, torch.float64) == "reference"
        assert default_implementation(KernelParams(kernel), torch.device("meta"), torch.float32) == "reference"
    assert default_implementation(KernelParams("dot"), cpu, torch.float32) == "associative"
    assert default_implementation(KernelParams("gaussian"), cpu, torch.float32) == "reference"


def test_default_on_cpu_float32_is_the_cpu_kernel(monkeypatch):
    calls = []
    original = pairwise.IMPLEMENTATIONS["cpu"]
    monkeypatch.setitem(pairwise.IMPLEMENTATIONS, "cpu", dataclasses.replace(
        original, fn=lambda *a, **k: calls.append(1) or original.fn(*a, **k)))
    theta, phi, values, x = (t.float() for t in random_inputs((1, 9, 5, 3, 2), seed_of("default")))
    pairwise_update(theta, phi, values, x, "log")
    pairwise_update(theta.double(), phi.double(), values.double(), x.double(), "log")
    assert calls == [1]


def test_onnx_export_traces_the_reference():
    """The ONNX exporter traces torch ops, so a pairwise operator exported as it is (not lowered)
    gets the reference while tracing; the graph then computes new inputs like the reference."""
    import onnxruntime as ort

    from nlseg.onnx.export import trace_module

    op = PairwiseOperator(KernelParams("frac", s=0.5))
    first = tuple(t.float() for t in random_inputs((1, 12, 6, 4, 3), seed_of("trace", 1)))
    second = [t.float() for t in random_inputs((1, 12, 6, 4, 3), seed_of("trace", 2))]
    names = ["theta", "phi", "values", "x"]
    model = trace_module(op, first, names, ["u"], {}, 17, plugin=False)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (u,) = session.run(None, {name: t.numpy() for name, t in zip(names, second)})
    expected = pairwise_reference(*second, KernelParams("frac"))
    torch.testing.assert_close(torch.from_numpy(u), expected, rtol=1e-5, atol=1e-6)
    assert default_implementation(KernelParams("frac"), torch.device("cpu"), torch.float32) == "cpu"  # export over


@pytest.mark.parametrize("cxx", ["/nonexistent/c++", "false"])
def test_build_failure_falls_back_to_the_reference_with_one_warning(monkeypatch, cxx):
    """A missing compiler, or one that fails: one warning, then the reference; never a crash."""
    failing = KernelLibrary(cxx=cxx)
    monkeypatch.setattr(function, "LIBRARY", failing)
    monkeypatch.setattr(pairwise, "CPU_KERNEL", failing)
    inputs = [t.float() for t in random_inputs((2, 11, 6, 4, 3), seed_of("fallback"))]
    assert default_implementation(KernelParams("frac"), torch.device("cpu"), torch.float32) == "cpu"  # not tried yet
    with pytest.warns(KernelBuildWarning, match="reference"):
        first = pairwise_update(*inputs, "frac")
    assert failing.failed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = pairwise_update(*inputs, "frac", impl="cpu")
    expected = pairwise_reference(*inputs, KernelParams("frac"))
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert default_implementation(KernelParams("frac"), torch.device("cpu"), torch.float32) == "reference"


def test_concurrent_builds_share_one_library(tmp_path, monkeypatch, capfd):
    """Two loaders starting on one empty cache at once (pytest-xdist workers, DDP ranks): one
    compiles while the other waits on the lock file, then loads that library."""
    import threading

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    loaders = [KernelLibrary(), KernelLibrary()]
    results = [None, None]
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, loaders[i].load())) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in results), [loader.failure for loader in loaders]
    built = list((tmp_path / "nlseg_pairwise_cpu").glob("*.so"))
    assert len(built) == 1
    assert capfd.readouterr().err.count("compiling the CPU pairwise kernel") == 1
    assert not list((tmp_path / "nlseg_pairwise_cpu").glob("*.partial"))
