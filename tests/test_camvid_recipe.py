"""The CamVid recipe knobs: Adam, ENet's class weights 1/ln(1.10 + p), the random scale range, colour jitter and cast."""

from __future__ import annotations

import json
import math

import pytest
import torch

from nlseg.train.class_balance import enet_weights
from tests.test_camvid_drives import drives_data, train_args  # noqa: F401 (fixture)
from tests.test_train_cli import cli  # noqa: F401 (fixture)


def test_enet_weights_against_their_formula():
    masks = torch.tensor([[[0, 0, 0, 1], [1, 2, 255, 255]], [[0, 0, 2, 2], [4, 255, 0, 0]]], dtype=torch.uint8)
    weights = enet_weights(masks, 6)
    counts = {0: 7, 1: 2, 2: 3, 4: 1}  # 13 labelled pixels, classes 3 and 5 absent
    for c in range(6):
        expected = 1 / math.log(1.10 + counts[c] / 13) if c in counts else 0.0
        assert float(weights[c]) == pytest.approx(expected, rel=1e-6)
    assert float(weights.max()) < 1 / math.log(1.10)


def test_anchor_recipe_flags_reach_the_run(drives_data, tmp_path, cli):  # noqa: F811
    root, _ = drives_data
    out = tmp_path / "anchors"
    code, _, err = cli(*train_args(root, out, "--holdout", "0006R0", "--optimizer", "adam", "--lr", "0.001",
                                   "--class-weighting", "enet", "--scale", "0.5-2.0", "--jitter", "0.5",
                                   "--colour-cast", "0.2"))
    assert code == 0, err
    recipe = json.loads((out / "config.json").read_text())["run"]["recipe"]
    assert (recipe["optimizer"], recipe["class_weighting"], recipe["class_weights"]) == ("adam", "enet", True)
    assert recipe["scale"] == [0.5, 2.0] and recipe["lr"] == 0.001 and recipe["jitter"] == 0.5
    assert recipe["colour_cast"] == 0.2
    state = torch.load(out / "last.pt", weights_only=True)["optimizer"]["state"]
    assert "exp_avg_sq" in next(iter(state.values()))  # Adam's second moment


@pytest.mark.parametrize("extra, flag", [
    (["--optimizer", "lamb"], "--optimizer"),
    (["--class-weighting", "inverse"], "--class-weighting"),
    (["--class-weighting", "enet", "--no-class-weights"], "--class-weighting"),
    (["--scale", "2-0.5"], "--scale"),
    (["--scale", "big"], "--scale"),
    (["--jitter", "1.5"], "--jitter"),
    (["--colour-cast", "-0.1"], "--colour-cast"),
])
def test_bad_recipe_flags_are_one_line(extra, flag, drives_data, tmp_path, cli):  # noqa: F811
    root, _ = drives_data
    code, _, err = cli(*train_args(root, tmp_path / "bad", *extra))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and flag in lines[0], err
