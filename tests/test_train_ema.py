"""``--ema``: the moving average of the weights is what is validated, saved and resumed."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from nlseg.train.ema import WeightAverage, ema_decay
from nlseg.train.rundir import read_metrics
from tests.test_train_camvid import _keep_global_rng, camvid, train_args  # noqa: F401 (fixtures)
from tests.test_train_cli import assert_same_rows, cli, kill_after_first_checkpoint  # noqa: F401 (cli is a fixture)


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


def test_average_follows_the_float64_recurrence_with_the_warm_up():
    torch.manual_seed(0)
    net = _net()
    average = WeightAverage(net, 0.7)  # the warm-up until step 20, the decay itself after it
    expected = {k: v.double().clone() for k, v in net.state_dict().items()}
    for t in range(40):
        with torch.no_grad():  # a training step's changes: weights, BN statistics and its batch count
            for p in net.parameters():
                p.add_(torch.randn_like(p) * (1e3 if t == 7 else 1e-3))
        net.train()(torch.randn(5, 3, 6, 6) * 10.0 ** (t % 5 - 2))
        average.update(net)
        d = min(0.7, (1 + t) / (10 + t))
        for k, v in net.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v.double() if v.dtype.is_floating_point else v.double()
    assert average.updates == 40
    for k, v in average.module.state_dict().items():
        torch.testing.assert_close(v.double(), expected[k], rtol=1e-5, atol=1e-6)
    assert int(average.module.state_dict()["1.num_batches_tracked"]) == 40
    assert not any(p.requires_grad for p in average.module.parameters()) and not average.module.training
    assert [ema_decay(0.999, t) for t in (0, 1, 90)] == [0.1, pytest.approx(2 / 11), pytest.approx(0.91)]
    assert ema_decay(0.999, 10**6) == 0.999


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_a_decay_outside_the_open_interval_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_net(), decay)


def test_the_average_is_validated_saved_and_resumed(camvid, tmp_path, cli):
    full = tmp_path / "full"
    code, _, err = cli(*train_args(camvid, full, "--ema", "0.9"))
    assert code == 0, err
    payload = torch.load(full / "last.pt", weights_only=True)
    assert payload["ema"] == {"decay": 0.9, "updates": 3 * 2}  # 6 frames in batches of 3, 3 epochs
    assert json.loads((full / "config.json").read_text())["run"]["recipe"]["ema"] == 0.9
    averaged, trained = payload["state_dict"], payload["train_state_dict"]
    assert any(not torch.equal(averaged[k], trained[k]) for k in trained if trained[k].dtype.is_floating_point)
    # eval loads the average, and scores what training validated; best.pt is the best epoch's average
    rows = read_metrics(full / "metrics.jsonl")
    best = max(rows, key=lambda r: r["val_miou"])
    for name, row in (("last.pt", rows[-1]), ("best.pt", best)):
        code, stdout, err = cli("eval", full / name, "--json")
        assert code == 0, err
        result = json.loads(stdout.strip().splitlines()[-1])
        assert (result["loss"], result["miou"]) == (pytest.approx(row["val_loss"]), pytest.approx(row["val_miou"]))
    # without --ema the same run saves its weights: the trained weights above, to float rounding
    plain = tmp_path / "plain"
    code, _, err = cli(*train_args(camvid, plain))
    assert code == 0, err
    plain_payload = torch.load(plain / "last.pt", weights_only=True)
    assert "train_state_dict" not in plain_payload and "ema" not in plain_payload
    for k, v in plain_payload["state_dict"].items():
        torch.testing.assert_close(trained[k], v, rtol=1e-5, atol=1e-6)
    # killed after its first checkpoint and resumed: the same average and the same weights
    killed = tmp_path / "killed"
    assert 1 <= kill_after_first_checkpoint(train_args(camvid, killed, "--ema", "0.9"), killed) < 3
    code, _, err = cli(*train_args(camvid, killed, "--ema", "0.9", "--resume"))
    assert code == 0, err
    assert_same_rows(read_metrics(killed / "metrics.jsonl"), read_metrics(full / "metrics.jsonl"))
    resumed = torch.load(killed / "last.pt", weights_only=True)
    assert resumed["ema"] == payload["ema"]
    for entry in ("state_dict", "train_state_dict"):
        for k, v in payload[entry].items():
            torch.testing.assert_close(resumed[entry][k], v, rtol=1e-5, atol=1e-6)
    # a run started without the average does not resume with it
    code, _, err = cli(*train_args(camvid, plain, "--ema", "0.9", "--resume"))
    assert code == 2 and "recipe" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("value", ["1", "-0.1", "1.5"])
def test_bad_ema_is_one_line_naming_the_flag(value, camvid, tmp_path, cli):
    code, _, err = cli(*train_args(camvid, tmp_path / "bad", "--ema", value))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "--ema" in lines[0], err
