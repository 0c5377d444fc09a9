"""``nlseg train camvid`` / ``nlseg eval --dataset camvid`` end to end on a tiny generated CamVid folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nlseg.data.labels import CAMVID_CLASSES, IGNORE_INDEX
from nlseg.data.split import Split
from nlseg.data.transforms import normalize
from nlseg.nn.config import ModelConfig, build_model
from nlseg.nn.realtime import upsample_logits
from nlseg.train.distributed import Context
from nlseg.train.loop import RunSpec, train_epoch
from nlseg.train.recipe import RECIPES
from nlseg.train.rundir import read_metrics
from tests.test_data_camvid import write_camvid
from tests.test_train_cli import (ENV, TINY, assert_same_rows, cli,  # noqa: F401 (cli is a fixture)
                                  kill_after_first_checkpoint)

ACCURACY = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy.py"


@pytest.fixture(autouse=True)
def _keep_global_rng():
    """In-process training seeds torch's global generator; give other tests back the state they had."""
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)


@pytest.fixture(scope="module")
def camvid(tmp_path_factory) -> Path:
    """SegNet's layout, 12x16 frames (read at 24x32): 6 training, 3 validation and 2 test frames."""
    root = tmp_path_factory.mktemp("camvid")
    write_camvid(root, True, {"train": 6, "val": 3, "test": 2})
    return root


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "camvid", "--data-dir", data, "--layout", "realtime", "--epochs", "3", "--batch-size", "3",
            "--size", "24x32", "--crop", "16x24", "--class-weights", "--out", out, *TINY, *extra]


def test_train_and_eval_score_the_11_camvid_classes(camvid, tmp_path, cli):
    out = tmp_path / "run"
    code, stdout, err = cli(*train_args(camvid, out, "--epochs", "2", "--infer-size", "18x32"))
    assert code == 0, err
    assert "poly decay" in stdout
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2] and len(rows[0]["val_per_class_iou"]) == 11
    assert rows[1]["lr"] == pytest.approx(0.05 * 0.5 ** 0.9)  # poly: lr (1 - 1/2)^0.9
    recipe = json.loads((out / "config.json").read_text())["run"]["recipe"]
    assert recipe["crop"] == [16, 24] and recipe["class_weights"] is True and recipe["scale"] == [0.75, 1.5]
    payload = torch.load(out / "last.pt", weights_only=True)
    assert payload["model_config"]["num_classes"] == 19 and payload["model_config"]["image_size"] == [18, 32]
    assert payload["meta"]["image_size"] == [24, 32] and payload["meta"]["dataset"] == "camvid"

    code, stdout, err = cli("eval", out / "last.pt", "--split", "test", "--json")
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["images"] == 2 and list(result["per_class_iou"]) == list(CAMVID_CLASSES)
    assert 0 <= result["miou"] <= 1 and 0 <= result["pixel_accuracy"] <= 1
    code, stdout, err = cli("eval", out / "last.pt", "--json")
    assert code == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["miou"] == pytest.approx(rows[-1]["val_miou"])


def test_camvid_run_killed_and_resumed_is_identical(camvid, tmp_path, cli):
    code, _, err = cli(*train_args(camvid, tmp_path / "full"))
    assert code == 0, err
    killed = tmp_path / "killed"
    done = kill_after_first_checkpoint(train_args(camvid, killed), killed)
    assert 1 <= done < 3
    code, stdout, err = cli(*train_args(camvid, killed, "--resume"))
    assert code == 0, err
    assert f"resuming {killed} after epoch {done}" in stdout
    assert_same_rows(read_metrics(killed / "metrics.jsonl"), read_metrics(tmp_path / "full" / "metrics.jsonl"))
    a = torch.load(killed / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["state_dict"]
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_init_starts_from_a_checkpoint_and_keeps_its_architecture(camvid, tmp_path, cli):
    """--init: fine-tuning starts from the checkpoint's weights (not He init), with its architecture
    and input size; it is part of the run's settings, so a resume must repeat it."""
    base = tmp_path / "base"
    code, _, err = cli(*train_args(camvid, base, "--epochs", "1", "--infer-size", "18x32"))
    assert code == 0, err
    start = torch.load(base / "last.pt", weights_only=True)["state_dict"]
    tuned = tmp_path / "tuned"
    args = ["train", "camvid", "--data-dir", camvid, "--epochs", "1", "--batch-size", "3", "--size", "24x32",
            "--crop", "16x24", "--lr", "1e-9", "--init", base / "last.pt", "--out", tuned]
    code, stdout, err = cli(*args)
    assert code == 0, err
    payload = torch.load(tuned / "last.pt", weights_only=True)
    base_config = torch.load(base / "last.pt", weights_only=True)["model_config"]
    assert payload["model_config"] == base_config  # channels, blocks, nonlocal and the 18x32 input size
    run = json.loads((tuned / "config.json").read_text())["run"]
    assert run["init"] == str(base / "last.pt")
    # lr 1e-9: the convolution weights stay where the checkpoint left them (He init would not)
    for key, value in start.items():
        if key.endswith("weight") and value.dim() == 4:
            torch.testing.assert_close(payload["state_dict"][key], value, rtol=0, atol=1e-6)
    code, _, err = cli(*[a for a in args if a not in ("--init", base / "last.pt")], "--epochs", "2", "--resume")
    assert code == 2 and "init" in err and "differ" in err


def test_synthetic_scenes_join_the_training_split(camvid, tmp_path, cli):
    out = tmp_path / "mixed"
    code, stdout, err = cli(*train_args(camvid, out, "--epochs", "1", "--synthetic-scenes", "3"))
    assert code == 0, err
    assert "rendering 3 synthetic scenes at 24x32" in stdout and "9 training (train) and 3 validation (val) images" in stdout
    assert json.loads((out / "config.json").read_text())["run"]["synthetic_scenes"] == 3


def test_loss_stride_is_a_recorded_setting_of_the_run(camvid, tmp_path, cli):
    out = tmp_path / "strided"
    code, _, err = cli(*train_args(camvid, out, "--epochs", "1", "--loss-stride", "2"))
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["run"]["recipe"]["loss_stride"] == 2
    code, _, err = cli(*train_args(camvid, out, "--epochs", "2", "--resume"))
    assert code == 2 and "recipe" in err and "differ" in err


def test_loss_stride_scores_every_nth_pixel_against_logits_upsampled_less():
    """--loss-stride 2: the epoch's loss is the cross-entropy of the coarse logits upsampled to half the
    crop (``upsample_logits``) against every second label, summed over labelled pixels."""
    config = ModelConfig.from_preset("bdd100k", layout="realtime", blocks=(1, 1, 1), channels=(8, 8, 8),
                                     nonlocal_kernel="dot", image_size=(24, 32))
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (4, 3, 24, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 19, (4, 24, 32), generator=g, dtype=torch.uint8)
    labels[:, :5] = IGNORE_INDEX
    recipe = replace(RECIPES["camvid"], batch_size=4, lr=1e-12, crop=None, scale=(1.0, 1.0), jitter=0.0,
                     flip=False, loss_stride=2)
    spec = RunSpec("camvid", None, (24, 32), config, recipe)
    torch.manual_seed(0)
    model = build_model(config).train()
    expected_model = build_model(config).train()
    expected_model.load_state_dict(model.state_dict())
    mean = torch.full((3, 1, 1), 0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr)
    scores = train_epoch(model, model, optimizer, Split(images, labels, 19), mean, spec, 1,
                         Context(0, 1, torch.device("cpu")))
    with torch.no_grad():
        logits = upsample_logits(expected_model(normalize(images, mean), coarse=True), (12, 16))
        full = F.cross_entropy(expected_model(normalize(images, mean)), labels.long(), ignore_index=IGNORE_INDEX)
    assert logits.shape[-2:] == (12, 16)
    coarse = labels[:, ::2, ::2].long()
    expected = F.cross_entropy(logits, coarse, ignore_index=IGNORE_INDEX, reduction="sum") / (coarse != IGNORE_INDEX).sum()
    assert scores["loss"] == pytest.approx(float(expected), rel=1e-5)
    assert abs(scores["loss"] - float(full)) > 1e-4  # the stride changed what was scored


@pytest.mark.parametrize(
    "args,flag",
    [
        (["train", "camvid", "--data-dir", "{empty}"], "trainannot"),
        (["train", "qtips", "--synthetic-scenes", "3"], "--synthetic-scenes"),
        (["train", "synthetic", "--synthetic-scenes", "3", "--size", "24x32"], "--synthetic-scenes"),
        (["train", "camvid", "--data-dir", "{empty}", "--synthetic-scenes", "-1"], "--synthetic-scenes"),
        (["train", "camvid", "--data-dir", "{empty}", "--init", "{ckpt}", "--channels", "8-8-8-8"], "--init"),
        (["train", "qtips", "--init", "{ckpt}"], "--init"),
        (["train", "qtips", "--crop", "8x8"], "--crop"),
        (["train", "cifar10", "--class-weights"], "--class-weights"),
        (["train", "camvid", "--data-dir", "{empty}", "--schedule", "linear"], "--schedule"),
        (["train", "camvid", "--data-dir", "{empty}", "--crop", "8"], "--crop"),
        (["train", "camvid", "--data-dir", "{empty}", "--loss-stride", "0"], "--loss-stride"),
        (["train", "camvid", "--data-dir", "{empty}", "--loss-stride", "2"], "--loss-stride"),  # thesis layout
        (["train", "camvid", "--data-dir", "{empty}", "--decoder", "refine"], "--decoder"),  # thesis layout
        (["train", "camvid", "--data-dir", "{empty}", "--layout", "realtime", "--decoder", "wide"], "--decoder"),
        (["eval", "{ckpt}", "--split", "trainval"], "--split"),
        (["eval", "{ckpt}", "--dataset", "synthetic", "--split", "test"], "--split"),
    ],
)
def test_bad_camvid_input_is_one_line(args, flag, camvid, tmp_path, cli):
    (tmp_path / "empty").mkdir()
    ckpt = tmp_path / "w.pt"
    if "{ckpt}" in args:
        code, _, err = cli(*train_args(camvid, tmp_path / "r", "--epochs", "1"))
        assert code == 0, err
        ckpt = tmp_path / "r" / "last.pt"
    args = [a.format(empty=tmp_path / "empty", ckpt=ckpt) for a in args]
    code, _, err = cli(*args)
    err = err.strip().splitlines()
    assert code == 2 and len(err) == 1 and flag in err[0] and err[0].startswith("error: ")


def test_benchmark_scores_like_eval(tmp_path, cli):
    """benchmarks/accuracy.py (nlseg.load → predict → the mapping) and nlseg eval agree on the same frames."""
    data = tmp_path / "camvid"
    write_camvid(data, False, {"train": 6, "val": 3}, size=(24, 32))
    code, _, err = cli(*train_args(data, tmp_path / "run", "--epochs", "1"))
    assert code == 0, err
    code, stdout, err = cli("eval", tmp_path / "run" / "last.pt", "--json")
    assert code == 0, err
    expected = json.loads(stdout.strip().splitlines()[-1])
    bench = subprocess.run([sys.executable, str(ACCURACY), str(tmp_path / "run" / "last.pt"), "--camvid", str(data),
                            "--repeats", "1", "--json", "--out", str(tmp_path / "png")],
                           capture_output=True, text=True, timeout=300, env=ENV)
    assert bench.returncode == 0, bench.stderr
    assert re.search(r"\| last.pt \| 24x32 \|", bench.stdout) and "ENet" in bench.stdout
    got = json.loads(next(line for line in bench.stdout.splitlines() if line.startswith("json: "))[6:])
    assert got["miou"] == pytest.approx(expected["miou"]) and got["per_class_iou"] == pytest.approx(
        expected["per_class_iou"], nan_ok=True)
    assert (tmp_path / "png" / "camvid_examples_last.png").is_file()
    missing = subprocess.run([sys.executable, str(ACCURACY), str(tmp_path / "none.pt"), "--camvid", str(data)],
                             capture_output=True, text=True, timeout=120, env=ENV)
    assert missing.returncode == 1 and missing.stderr.strip().splitlines() == [f"error: {tmp_path / 'none.pt'}: "
                                                                                 "weights file not found"]
