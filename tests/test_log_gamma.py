"""The log kernel's constant term (docs/design.md §6): the text's γ and the authors' λγ, in every
implementation, against the float64 formulas; dispatch, model config, checkpoints and export."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import pytest
import torch

from nlseg.checkpoint import load_model, save_checkpoint
from nlseg.errors import InputError
from nlseg.nn.config import ModelConfig, build_model
from nlseg.nn.nonlocal_block import PairwiseOperator
from nlseg.onnx.lowering import lower_model, lowered_operator
from nlseg.ops import IMPLEMENTATIONS, KernelParams, default_implementation, pairwise, pairwise_update
from nlseg.ops.omega import EULER_GAMMA
from nlseg.ops.reference import pairwise_reference
from tests.formulas import GAMMA, authors_log_gamma, authors_log_weight, naive_update

AUTHORS = authors_log_gamma(0.1)
CONVENTIONS = {"text": GAMMA, "authors": AUTHORS}


def inputs(seed: int, b=2, n_q=29, m=11, c_embed=6, c=5, scale=1.0, dtype=torch.float64, coincide=True):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(b, n_q, c_embed, generator=g, dtype=torch.float64) * scale
    phi = torch.randn(b, m, c_embed, generator=g, dtype=torch.float64) * scale
    if coincide:  # coincident embeddings: zero distance, no contribution
        phi[:, :3] = theta[:, 5:8]
    values = torch.randn(b, m, c, generator=g, dtype=torch.float64)
    x = torch.randn(b, n_q, c, generator=g, dtype=torch.float64)
    return tuple(t.to(dtype) for t in (theta, phi, values, x))


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-300)).item()


def test_the_oracle_at_lambda_gamma_is_the_authors_kernel():
    """(4.8) with γ' = λγ is the authors' λ·c(−2 log d − γ), term by term (and 0 at d = 0)."""
    for lam in (0.1, 0.37, 2.0):
        theta, phi, values, x = inputs(1)
        dist = (theta[:, :, None] - phi[:, None]).norm(dim=-1)
        expected = (authors_log_weight(dist, lam)[..., None] * values[:, None]).sum(2) / phi.shape[1]
        got = naive_update(theta, phi, values, x, "log", lam=lam, log_gamma=authors_log_gamma(lam))
        assert rel_err(got, expected) < 1e-12
        text = naive_update(theta, phi, values, x, "log", lam=lam)
        assert rel_err(text, expected) > 1e-3  # the two conventions are different operators


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("scale", [1.0, 1e-6, 1e6])
def test_every_implementation_matches_the_formula(convention, scale):
    gamma = CONVENTIONS[convention]
    theta, phi, values, x = inputs(zlib.crc32(f"{convention}{scale}".encode()), scale=scale)
    expected = naive_update(theta, phi, values, x, "log", log_gamma=gamma)
    for name, impl in IMPLEMENTATIONS.items():
        if "log" not in impl.kernels or not impl.takes_log_gamma:
            continue
        got = pairwise_update(theta, phi, values, x, "log", log_gamma=gamma, impl=name)
        assert rel_err(got, expected) < 1e-10, name
        got32 = pairwise_update(*(t.float() for t in (theta, phi, values, x)), "log", log_gamma=gamma, impl=name)
        assert rel_err(got32, expected) < 1e-4, name
    default = pairwise_update(*(t.float() for t in (theta, phi, values, x)), "log", log_gamma=gamma)
    assert rel_err(default, expected) < 1e-4


def test_reference_gradients_with_the_authors_constant():
    theta, phi, values, x = (t.requires_grad_() for t in inputs(3, b=1, n_q=7, m=5, c_embed=3, c=2, coincide=False))
    assert torch.autograd.gradcheck(
        lambda *a: pairwise_reference(*a, KernelParams("log", log_gamma=AUTHORS), max_chunk_elements=10),
        (theta, phi, values, x))


def test_every_fast_path_takes_the_constant():
    """The C++ kernel and the fused Triton kernel (where installed) take γ as a value: each is the default
    for the authors' constant as for Euler's γ (dot and gaussian: no constant, no difference)."""
    assert all(impl.takes_log_gamma for impl in IMPLEMENTATIONS.values())
    for device in ("cpu", "cuda"):
        for dtype in (torch.float32, torch.bfloat16):
            for kernel in ("log", "frac", "dot"):
                euler = default_implementation(KernelParams(kernel), torch.device(device), dtype)
                assert default_implementation(KernelParams("log", log_gamma=AUTHORS) if kernel == "log" else
                                              KernelParams(kernel), torch.device(device), dtype) == euler


def test_fast_paths_that_fix_euler_gamma_are_never_picked_and_refuse_other_constants(monkeypatch):
    """An implementation registered with takes_log_gamma=False (here the C++ kernel, re-registered so) is
    not the default for another constant and refuses it when asked for; Euler's γ keeps it."""
    cpu_kernel = IMPLEMENTATIONS["cpu"]
    euler_only = pairwise.Implementation(cpu_kernel.fn, cpu_kernel.kernels, takes_log_gamma=False)
    monkeypatch.setitem(pairwise.IMPLEMENTATIONS, "cpu", euler_only)
    monkeypatch.setattr(pairwise, "CPU_KERNEL", SimpleNamespace(failed=False))  # as if built, compiler or not
    cpu = torch.device("cpu")
    assert default_implementation(KernelParams("log", log_gamma=AUTHORS), cpu, torch.float32) == "reference"
    assert default_implementation(KernelParams("log"), cpu, torch.float32) == "cpu"
    theta, phi, values, x = inputs(4, dtype=torch.float32)
    with pytest.raises(ValueError, match="Euler's γ only"):
        pairwise_update(theta, phi, values, x, "log", log_gamma=AUTHORS, impl="cpu")
    expected = naive_update(*(t.double() for t in (theta, phi, values, x)), "log", log_gamma=AUTHORS)
    assert rel_err(pairwise_update(theta, phi, values, x, "log", log_gamma=AUTHORS), expected) < 1e-4
    with pytest.raises(ValueError, match="finite"):
        pairwise_update(theta, phi, values, x, "log", log_gamma=float("nan"))


def test_model_config_carries_the_constant_and_old_configs_load_as_euler(tmp_path):
    config = ModelConfig.from_preset("qtips", nonlocal_kernel="log", log_gamma=AUTHORS, blocks=(1, 1, 1),
                                     channels=(4, 4, 4))
    assert ModelConfig.from_dict(config.to_dict()) == config
    old = {k: v for k, v in config.to_dict().items() if k != "log_gamma"}
    assert ModelConfig.from_dict(old).log_gamma == EULER_GAMMA
    model = build_model(config)
    ops = [m for m in model.modules() if isinstance(m, PairwiseOperator)]
    assert ops and all(op.params.log_gamma == AUTHORS for op in ops)
    save_checkpoint(tmp_path / "m.pt", model, config)
    loaded, loaded_config, _ = load_model(tmp_path / "m.pt")
    assert loaded_config.log_gamma == AUTHORS
    assert all(op.params.log_gamma == AUTHORS for op in loaded.modules() if isinstance(op, PairwiseOperator))


def test_model_config_rejects_a_constant_without_the_log_kernel():
    for kernel in (None, "frac", "diffusion"):
        with pytest.raises(InputError) as err:
            ModelConfig.from_preset("qtips", nonlocal_kernel=kernel, log_gamma=0.05)
        assert err.value.param == "log_gamma"
    with pytest.raises(InputError) as err:
        ModelConfig.from_preset("qtips", nonlocal_kernel="log", log_gamma=float("inf"))
    assert err.value.param == "log_gamma"


def test_portable_export_form_carries_the_constant_and_the_plugin_refuses_it():
    op = PairwiseOperator(KernelParams("log", log_gamma=AUTHORS))
    theta, phi, values, x = inputs(5)
    portable = lowered_operator(op, "portable")
    expected = naive_update(theta, phi, values, x, "log", log_gamma=AUTHORS)
    assert rel_err(portable(theta, phi, values, x), expected) < 1e-10
    with pytest.raises(InputError, match="Euler's γ only") as err:
        lower_model(torch.nn.Sequential(op), "plugin")
    assert err.value.param == "graph"
    lowered_operator(PairwiseOperator(KernelParams("log")), "plugin")  # Euler's γ: the plugin's kernel
