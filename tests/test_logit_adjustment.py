"""--logit-adjustment: the class-weighted loss on the logits + log w (nlseg/train/class_balance.py)."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from nlseg.data.labels import IGNORE_INDEX
from nlseg.data.split import Split
from nlseg.nn.config import ModelConfig, build_model
from nlseg.train.class_balance import logit_shift
from nlseg.train.distributed import Context
from nlseg.train.loop import RunSpec, train_epoch
from nlseg.train.recipe import RECIPES
from tests.test_camvid_drives import drives_data, train_args  # noqa: F401 (drives_data is a fixture)
from tests.test_train_camvid import _keep_global_rng  # noqa: F401 (autouse fixture)
from tests.test_train_cli import cli, kill_after_first_checkpoint  # noqa: F401 (cli is a fixture)


TINY = ModelConfig.from_preset("bdd100k", layout="realtime", blocks=(1, 1, 1), channels=(8, 8, 8),
                               nonlocal_kernel="dot", image_size=(24, 32))


def test_the_shift_is_the_log_weight_and_zero_for_absent_classes():
    weights = torch.tensor([2.0, 0.0, 0.5, 1.0])
    assert torch.equal(logit_shift(weights), torch.tensor([2.0, 1.0, 0.5, 1.0]).log() * torch.tensor([1, 0, 1, 1]))


def _one_epoch(model: torch.nn.Module, weight: torch.Tensor, adjusted: bool) -> None:
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (6, 3, 24, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 19, (6, 24, 32), generator=g, dtype=torch.uint8)
    labels[:, :4] = IGNORE_INDEX
    recipe = replace(RECIPES["camvid"], batch_size=3, crop=(16, 24), weight_decay=0.0, smoothness=0.0,
                     class_weights=True, logit_adjustment=adjusted)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train_epoch(model, model, optimizer, Split(images, labels, 19), torch.full((3, 1, 1), 0.5),
                RunSpec("camvid", None, (24, 32), TINY, recipe), 1, Context(0, 1, torch.device("cpu")), weight)


def test_training_on_shifted_logits_is_training_a_network_whose_bias_is_lower_by_log_w():
    """z = f + log w: the weighted loss sees the logits of the unadjusted network exactly when f's
    classifier bias is that network's minus log w, so both train alike and keep that difference: the
    adjusted network predicts argmax p(c | x), not argmax w_c p(c | x)."""
    torch.manual_seed(0)
    plain = build_model(TINY)
    adjusted = copy.deepcopy(plain)
    weight = torch.rand(19, generator=torch.Generator().manual_seed(1)) * 8 + 0.1
    with torch.no_grad():
        adjusted.output_bias.sub_(logit_shift(weight))
    initial = plain.output_bias.detach().clone()
    _one_epoch(plain, weight, adjusted=False)
    _one_epoch(adjusted, weight, adjusted=True)
    bias = "classifier.2.bias"
    trained, shifted = plain.state_dict(), adjusted.state_dict()
    assert not torch.allclose(trained[bias], initial)  # it did train
    for name, value in trained.items():
        expected = value - logit_shift(weight) if name == bias else value
        assert torch.allclose(shifted[name].float(), expected.float(), rtol=1e-4, atol=1e-5), name


def test_it_needs_class_weights(tmp_path, cli):
    code, _, err = cli("train", "synthetic", "--logit-adjustment", "--epochs", "1", "--out", tmp_path / "run")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--logit-adjustment" in err, err


def _state(run) -> tuple[dict[str, torch.Tensor], dict]:
    payload = torch.load(run / "last.pt", weights_only=True)
    return payload["state_dict"], payload["meta"]


def _close_but_bias(a: dict, b: dict, bias_difference: torch.Tensor) -> None:
    for name, value in a.items():
        expected = value + bias_difference if name == "classifier.2.bias" else value
        assert torch.allclose(b[name].float(), expected.float(), rtol=1e-4, atol=1e-5), name


def test_a_run_with_it_is_the_run_without_it_whose_bias_is_lower_by_log_w(drives_data, tmp_path, cli):
    """nlseg train end to end: fresh, resumed and fine-tuned (--init) runs keep the plain run's weights
    with the classifier bias lower by the recorded offset -log w, so they predict argmax p(c | x)."""
    root, _ = drives_data
    weighted = ["--holdout", "0006R0", "--class-weights", "--epochs", "3"]
    runs = {name: tmp_path / name for name in ("plain", "adjusted", "resumed", "tuned-plain", "tuned-adjusted")}
    assert cli(*train_args(root, runs["plain"], *weighted))[0] == 0
    code, _, err = cli(*train_args(root, runs["adjusted"], *weighted, "--logit-adjustment"))
    assert code == 0, err
    plain, _ = _state(runs["plain"])
    adjusted, meta = _state(runs["adjusted"])
    offset = torch.tensor(meta["logit_offset"])
    assert offset.shape == (19,) and (offset <= 0).sum() > 0 and (offset != 0).sum() > 1
    _close_but_bias(plain, adjusted, offset)
    # Killed after a checkpoint and resumed: the offset is in last.pt already, not added again.
    args = train_args(root, runs["resumed"], *weighted, "--logit-adjustment")
    assert 1 <= kill_after_first_checkpoint(args, runs["resumed"]) < 3
    assert cli(*args, "--resume")[0] == 0
    _close_but_bias(adjusted, _state(runs["resumed"])[0], torch.zeros(19))
    # Fine-tuned from either run with it: the bias is set for the new run's weights from both starts.
    tune = ["--holdout", "0006R0", "--class-weights", "--logit-adjustment", "--epochs", "1", "--synthetic-scenes", "4"]
    for start in ("plain", "adjusted"):
        out = runs[f"tuned-{start}"]
        code, _, err = cli("train", "camvid", "--data-dir", root, "--init", runs[start] / "last.pt", "--size", "24x32",
                           "--crop", "16x24", "--batch-size", "3", "--workers", "1", "--out", out, *tune)
        assert code == 0, err
    _close_but_bias(_state(runs["tuned-plain"])[0], _state(runs["tuned-adjusted"])[0], torch.zeros(19))


def test_it_needs_the_realtime_layout(drives_data, tmp_path, cli):
    root, _ = drives_data
    code, _, err = cli("train", "camvid", "--data-dir", root, "--size", "24x32", "--class-weights", "--logit-adjustment",
                       "--blocks", "1-1-1", "--channels", "8-8-8", "--epochs", "1", "--out", tmp_path / "run")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--logit-adjustment" in err and "layout" in err, err
