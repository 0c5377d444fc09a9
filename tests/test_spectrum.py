"""``nlseg spectrum``: eigenvalues of the Nonlocal Blocks' 𝒦1, 𝒦2 on networks with known weights (thesis §6.2)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from nlseg.analysis.spectrum import matrix_spectrum, nonlocal_spectra, stage_matrix
from nlseg.checkpoint import save_checkpoint
from nlseg.cli import main
from nlseg.nn.config import ModelConfig, build_model

TINY = ModelConfig(num_classes=3, image_size=(8, 8), blocks=(1, 1), channels=(4, 6), head_pool=1,
                   nonlocal_kernel="dot")


def _set(stage: torch.nn.Sequential, k: torch.Tensor) -> None:
    with torch.no_grad():
        stage[0].weight.copy_(k.reshape(*k.shape, 1, 1))


def _known(c: int) -> tuple[torch.Tensor, list[complex]]:
    """Block-diagonal K: rotation-scaling blocks [[a, -b], [b, a]] (eigenvalues a ± ib)."""
    pairs = [(0.5, 2.0), (-0.25, 1.0), (-1.0, 0.0)][: c // 2]
    k = torch.zeros(c, c, dtype=torch.float64)
    eig: list[complex] = []
    for i, (a, b) in enumerate(pairs):
        k[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor([[a, -b], [b, a]])
        eig += [complex(a, b), complex(a, -b)]
    return k, eig


def test_matrix_spectrum_of_known_matrices():
    k = torch.tensor([[1.0, 4.0, 0.0], [-4.0, 1.0, 0.0], [0.0, 0.0, -3.0]])  # eigenvalues 1 ± 4i, −3
    sp = matrix_spectrum(k)
    assert sp.eigenvalues_real == pytest.approx([-3.0, 1.0, 1.0])
    assert sorted(sp.eigenvalues_imag) == pytest.approx([-4.0, 0.0, 4.0])
    assert sp.fraction_positive_real == pytest.approx(2 / 3)
    # (K + Kᵀ)/2 = diag(1, 1, −3): the antisymmetric part does not enter the quadratic form
    assert sp.symmetric_eigenvalues == pytest.approx([-3.0, 1.0, 1.0])
    assert sp.fraction_positive_symmetric == pytest.approx(2 / 3)
    sym = matrix_spectrum(torch.tensor([[2.0, 1.0], [1.0, 2.0]]))
    assert sym.symmetric_eigenvalues == pytest.approx([1.0, 3.0]) and sym.eigenvalues_imag == pytest.approx([0, 0])


def test_network_blocks_report_the_weights_set_into_them():
    torch.manual_seed(0)
    model = build_model(TINY)
    blocks = [m for m in model.modules() if m.__class__.__name__ == "NonlocalBlock"]
    assert len(blocks) == 2
    known = {}
    for unit, block in enumerate(blocks):
        c = block.theta.in_channels
        k1, eig1 = _known(c)
        k2 = torch.diag(torch.arange(1, c + 1, dtype=torch.float64) - c / 2 - 0.5)  # −(c−1)/2 … (c−1)/2
        _set(block.stages[0], k1)
        _set(block.stages[1], k2)
        known[unit] = (k1, eig1, k2)
    spectra = nonlocal_spectra(model)
    assert [b.unit for b in spectra] == [1, 2] and [b.channels for b in spectra] == [4, 6]
    for unit, block in enumerate(spectra):
        k1, eig1, k2 = known[unit]
        s1, s2 = block.stages
        got = sorted(zip(s1.eigenvalues_real, s1.eigenvalues_imag))
        want = sorted((z.real, z.imag) for z in eig1)
        assert [v for pair in got for v in pair] == pytest.approx([v for pair in want for v in pair])
        assert s1.fraction_positive_real == pytest.approx(sum(z.real > 0 for z in eig1) / len(eig1))
        assert s1.symmetric_eigenvalues == pytest.approx(sorted(z.real for z in eig1))  # (K+Kᵀ)/2 = diag(a, a, …)
        c = k2.shape[0]
        assert s2.eigenvalues_real == pytest.approx(sorted(torch.diagonal(k2).tolist()))
        assert s2.fraction_positive_real == pytest.approx(0.5) and s2.fraction_positive_symmetric == pytest.approx(0.5)
        assert len(s2.symmetric_eigenvalues) == c


def test_fold_bn_scales_rows_by_gamma_over_sigma():
    model = build_model(TINY)
    stage = next(m for m in model.modules() if m.__class__.__name__ == "NonlocalBlock").stages[0]
    _set(stage, torch.eye(4, dtype=torch.float64))
    with torch.no_grad():
        stage[1].weight.copy_(torch.tensor([1.0, 2.0, -1.0, 0.5]))
        stage[1].running_var.copy_(torch.tensor([1.0, 4.0, 0.25, 1.0]))
    stage[1].eps = 0.0
    assert torch.allclose(stage_matrix(stage), torch.eye(4, dtype=torch.float64))
    folded = stage_matrix(stage, fold_bn=True)
    assert torch.allclose(folded, torch.diag(torch.tensor([1.0, 1.0, -2.0, 0.5], dtype=torch.float64)))
    assert matrix_spectrum(folded).fraction_positive_real == pytest.approx(0.75)


def test_cli_writes_json_and_figures(tmp_path, capsys):
    torch.manual_seed(1)
    model = build_model(TINY)
    block = next(m for m in model.modules() if m.__class__.__name__ == "NonlocalBlock")
    _set(block.stages[0], torch.diag(torch.tensor([-2.0, -1.0, 1.0, 3.0])))
    ckpt = save_checkpoint(tmp_path / "net.pt", model, TINY, meta={"dataset": "qtips", "epoch": 7})
    with pytest.raises(SystemExit) as exc:
        main(["spectrum", str(ckpt), "--out", str(tmp_path / "spec"), "--json"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["matrices"][0] == {"block": "units.0.layers.1", "unit": 1, "stage": 1,
                                      "fraction_positive_real": 0.5, "fraction_positive_symmetric": 0.5}
    doc = json.loads((tmp_path / "spec" / "spectrum.json").read_text())
    assert doc["format"] == "nlseg-spectrum" and doc["bn_folded"] is False and doc["epoch"] == 7
    assert doc["blocks"][0]["stages"][0]["eigenvalues_real"] == pytest.approx([-2.0, -1.0, 1.0, 3.0])
    assert len(doc["blocks"]) == 2 and all(len(b["stages"]) == 2 for b in doc["blocks"])
    for name in ("eigenvalues_real.png", "eigenvalues_symmetric.png"):
        assert (tmp_path / "spec" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (tmp_path / "spec").iterdir() if p.name.startswith(".")]  # no temporaries left
    assert all(math.isfinite(v) for b in doc["blocks"] for s in b["stages"] for v in s["symmetric_eigenvalues"])


def test_cli_refuses_a_network_without_nonlocal_blocks(tmp_path, capsys):
    config = ModelConfig(num_classes=3, image_size=(8, 8), blocks=(1,), channels=(4,), head_pool=1)
    ckpt = save_checkpoint(tmp_path / "plain.pt", build_model(config), config)
    with pytest.raises(SystemExit) as exc:
        main(["spectrum", str(ckpt), "--out", str(tmp_path / "spec")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "no Nonlocal Blocks" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "spec").exists()
