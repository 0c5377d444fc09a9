"""ENet, the reference segmenter (nlseg/nn/enet.py): its size against the paper, its shapes, its pooling
shortcuts, its config rules, and a run of ``nlseg train camvid --model enet`` on a tiny generated folder."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from nlseg.analysis.cost import model_cost
from nlseg.errors import InputError
from nlseg.nn.config import ModelConfig, build_model
from nlseg.nn.enet import ENet, DownsamplingBottleneck, UpsamplingBottleneck
from nlseg.train.rundir import read_metrics
from tests.test_data_camvid import write_camvid
from tests.test_train_cli import cli  # noqa: F401 (a fixture)


def _silence_branch(block: torch.nn.Module) -> None:
    """Zero the last BN of the block's branch so its output is the shortcut alone."""
    bn = [m for m in block.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
    torch.nn.init.zeros_(bn.weight)
    torch.nn.init.zeros_(bn.bias)


def test_size_is_the_papers():
    """ENet's paper and the anchors' tables give 0.37M and 0.36M parameters (for 11-12 classes)."""
    params = sum(p.numel() for p in ENet(11).parameters())
    assert 350_000 <= params <= 370_000


def test_cost_rows_name_each_stage_with_its_output():
    cost = model_cost(ENet(19), (1, 3, 360, 480))
    shapes = {row.name: row.output_shape for row in cost.layers}
    assert shapes["down2"] == (1, 128, 45, 60) and shapes["classifier"] == (1, 19, 360, 480)
    assert sum(row.params for row in cost.layers) == cost.params


@pytest.mark.parametrize("size", [(24, 32), (27, 35), (90, 120)])
def test_logits_have_the_input_size(size):
    model = ENet(19).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, *size)).shape == (2, 19, *size)


def test_downsampling_shortcut_is_the_max_pool_with_zero_channels():
    block = DownsamplingBottleneck(16, 64, dropout=0.0).eval()
    _silence_branch(block)
    x = torch.randn(2, 16, 10, 14)
    out, indices = block(x)
    pooled, expected_indices = F.max_pool2d(x, 2, return_indices=True)
    shortcut = torch.cat((pooled, torch.zeros(2, 48, 5, 7)), dim=1)
    torch.testing.assert_close(out, F.prelu(shortcut, block.act.weight))
    assert torch.equal(indices, expected_indices)


def test_upsampling_puts_values_where_the_encoder_found_its_maxima():
    down = DownsamplingBottleneck(16, 64, dropout=0.0).eval()
    up = UpsamplingBottleneck(64, 16, dropout=0.0).eval()
    _silence_branch(up)
    x = torch.randn(1, 16, 11, 13)  # odd: the unpooled map takes the encoder's size back
    y, indices = down(x)
    with torch.no_grad():
        out = up(y, indices, x.shape[-2:])
    projected = up.shortcut(y)
    expected = torch.zeros(1, 16, 11 * 13)
    expected.scatter_(2, indices.flatten(2), projected.flatten(2))
    torch.testing.assert_close(out, F.prelu(expected.view(1, 16, 11, 13), up.act.weight))


def test_config_builds_enet_and_refuses_what_it_is_not():
    model = build_model(ModelConfig(arch="enet", task="segment", num_classes=11))
    assert isinstance(model, ENet) and model.classifier.out_channels == 11
    with pytest.raises(InputError) as err:
        ModelConfig(arch="enet", task="classify")
    assert err.value.param == "arch"
    with pytest.raises(InputError) as err:
        ModelConfig(arch="enet", task="segment", nonlocal_kernel="dot")
    assert err.value.param == "nonlocal_kernel"


def test_train_and_eval_enet_on_camvid(tmp_path, cli):
    data, out = tmp_path / "camvid", tmp_path / "run"
    write_camvid(data, True, {"train": 4, "val": 2})
    code, _, err = cli("train", "camvid", "--data-dir", data, "--model", "enet", "--epochs", "1", "--batch-size", "2",
                       "--size", "24x32", "--crop", "16x24", "--class-weights", "--workers", "1", "--out", out)
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["run"]["model"]["arch"] == "enet"
    row = read_metrics(out / "metrics.jsonl")[-1]
    code, stdout, err = cli("eval", out / "last.pt", "--json")
    assert code == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["miou"] == pytest.approx(row["val_miou"])
    code, _, err = cli("export", out / "last.pt", "--out", tmp_path / "enet.onnx")  # ONNX has no max unpooling
    assert code != 0 and "not exported" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "enet.onnx").exists()
    code, _, err = cli("train", "camvid", "--data-dir", data, "--model", "enet", "--layout", "realtime",
                       "--out", tmp_path / "refused")
    assert code != 0 and "--model" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
