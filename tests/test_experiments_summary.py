"""``python -m experiments report``: the figures of docs/results.md, checked on a hand-made report JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.__main__ import main as experiments_main
from experiments.summary import load, median_lines, verdict, verdicts

EPOCHS = range(1, 31)


def _history(train_pct: list[float], val: float) -> list[dict]:
    return [{"epoch": e, "train_accuracy": t / 100, "val_accuracy": val, "seconds": 60.0}
            for e, t in zip(EPOCHS, train_pct)]


def _cell(params: float, histories: dict[str, list[dict]]) -> dict:
    return {"params_m": params, "history": histories}


@pytest.fixture()
def report(tmp_path: Path) -> Path:
    """Two seeds, 30 epochs of a minute. Training accuracy (%) at epoch e: H e and 3e; 𝓛 e + 1 and 3e − 1;
    ResNet-44 5 (40 at epoch 3) and 1. Validation constant: H 0.5, 0.3; 𝓛 0.6, 0.2; ResNet-44 0.1."""
    resnet0 = [40.0 if e == 3 else 5.0 for e in EPOCHS]
    doc = {"kind": "curves", "metrics": ["accuracy"], "rows": ["hamiltonian", "diffusion", "resnet44"],
           "columns": [{"dataset": "qtips", "label": "Q-tips", "train_fraction": 1.0, "noise_sigma": 0.0}],
           "cells": {
               "hamiltonian": {"qtips": _cell(0.6, {"0": _history([e for e in EPOCHS], 0.5),
                                                    "1": _history([3 * e for e in EPOCHS], 0.3)})},
               "diffusion": {"qtips": _cell(0.65, {"0": _history([e + 1 for e in EPOCHS], 0.6),
                                                   "1": _history([3 * e - 1 for e in EPOCHS], 0.2)})},
               "resnet44": {"qtips": _cell(0.66, {"0": _history(resnet0, 0.1),
                                                  "1": _history([1.0] * 30, 0.1)})}}}
    path = tmp_path / "qtips.json"
    path.write_text(json.dumps(doc))
    return path


def _row(out: str, start: str) -> list[str]:
    line = next(ln for ln in out.splitlines() if ln.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


def test_report_prints_the_hand_computed_figures(report: Path, tmp_path: Path, capsys) -> None:
    figure = tmp_path / "medians.png"
    with pytest.raises(SystemExit) as exc:
        experiments_main(["report", str(report), "--figure", str(figure)])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    # medians over the two seeds: train at epochs 10, 20, 30, mean train, val at 30, mean val of the last 5
    assert _row(out, "| H |") == ["H", "0.60M", "2", "20.0", "40.0", "60.0", "31.0", "40.0", "40.0"]
    assert _row(out, "| 𝓛 |") == ["𝓛", "0.65M", "2", "20.0", "40.0", "60.0", "31.0", "40.0", "40.0"]
    assert _row(out, "| ResNet-44 |") == ["ResNet-44", "0.66M", "2", "3.0", "3.0", "3.0", "3.6", "10.0", "10.0"]
    # per seed: last train, mean train (ResNet-44 seed 0: (29·5 + 40)/30), the epoch 15–30 band, mean val, 𝓛 ahead
    assert _row(out, "| 0 |") == ["0", "30.0 / 31.0 / 5.0", "15.5 / 16.5 / 6.2", "15–30 / 16–31 / 5–5",
                                  "50.0 / 60.0 / 10.0", "50–50 / 60–60 / 10–10", "30 / 30 / 30", "30 of 30; 10"]
    assert _row(out, "| 1 |") == ["1", "90.0 / 89.0 / 1.0", "46.5 / 45.5 / 1.0", "45–90 / 44–89 / 1–1",
                                  "30.0 / 20.0 / 10.0", "30–30 / 20–20 / 10–10", "30 / 30 / 30", "0 of 30; 0"]
    # epoch by epoch against H: 𝓛 seed 0 leads by 1 point in training and 10 in validation everywhere, seed 1 lags
    lead0, lead1 = _row(out, "| 𝓛 | 0 |"), _row(out, "| 𝓛 | 1 |")
    assert lead0[2] == "1–30" and lead0[3].startswith("+1.0 (ep ") and lead0[4] == "—" and lead0[5] == "+10.0 (ep 1)"
    assert lead1[2] == "none" and lead1[3] == "—" and lead1[4].startswith("-1.0 (ep ") and lead1[5] == "—"
    # 𝓛 against ResNet-44: ahead on both seeds; in the first 10 epochs on seed 0 from epoch 5 (6), seed 1 always
    assert _row(out, "| 𝓛 | ResNet-44 |") == ["𝓛", "ResNet-44", "**faster** (2 of 2 ahead by 10.3–44.5)",
                                              "31.0 / 3.6", "60.0 / 3.0 (2 of 2 ahead by 26.0–88.0)",
                                              "40.0 / 10.0", "16 of 2 × 10"]
    assert _row(out, "| 𝓛 | H |") == ["𝓛", "H", "**level** (1 of 2 ahead by 1.0; behind by 1.0)", "31.0 / 31.0",
                                      "60.0 / 60.0 (1 of 2 ahead by 1.0; behind by 1.0)", "40.0 / 40.0",
                                      "10 of 2 × 10"]
    # ResNet-44 seed 0 is ahead of H in epochs 1–4 and of 𝓛 in epochs 1–3; seed 1 never
    assert ("ResNet-44: ahead (training accuracy) in some epoch of the first 10 of H on 1 of 2 seeds, 𝓛 on 1 of 2 "
            "seeds; the last epoch it is ahead of any of them on any seed: 4.") in out
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_verdict_words(report: Path) -> None:
    words = {(v.network, v.baseline): v.word for v in verdicts(load(report))}
    assert words == {("𝓛", "ResNet-44"): "faster", ("𝓛", "H"): "level"}
    nets = load(report)
    assert verdict(nets["resnet44"], nets["diffusion"]).word == "slower"


def test_one_seed_decides_nothing(report: Path) -> None:
    doc = json.loads(report.read_text())
    del doc["cells"]["diffusion"]["qtips"]["history"]["1"]  # 𝓛 ran seed 0 only: ahead of both there
    report.write_text(json.dumps(doc))
    words = {(v.network, v.baseline): (v.word, v.seeds) for v in verdicts(load(report))}
    assert words == {("𝓛", "ResNet-44"): ("undecided", 1), ("𝓛", "H"): ("undecided", 1)}
    assert median_lines(load(report))[5].startswith("| 𝓛 | 0.65M | 1 | 11.0 |")  # seed 0 alone: e + 1 at epoch 10


@pytest.mark.parametrize("content, message", [(None, "file not found"), ("{", "not a readable report JSON"),
                                              ('{"kind": "cost"}', "not a curves one")])
def test_bad_report_is_one_line(tmp_path: Path, capsys, content: str | None, message: str) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exc:
        experiments_main(["report", str(path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
