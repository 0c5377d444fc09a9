"""CamVid drive splits: train on some drives, validate and score on a drive the network never saw.

Tiny generated CamVid folders whose frames carry drive prefixes like the real ones (train:
0001TP, 0006R0, 0016E5; val: 0016E5; test: 0001TP, Seq05VD).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nlseg.data.camvid import CamVidSplit, holdout_splits, load_camvid, split_drives
from nlseg.errors import InputError
from tests.test_data_camvid import expected_train_ids, write_camvid
from tests.test_train_camvid import _keep_global_rng  # noqa: F401 (autouse fixture)
from tests.test_train_cli import TINY, cli  # noqa: F401 (cli is a fixture)

SIZE = (12, 16)
DRIVES = {"train": ["0001TP", "0001TP", "0006R0", "0006R0", "0006R0", "0016E5", "0016E5"],
          "val": ["0016E5", "0016E5", "0016E5"],
          "test": ["0001TP", "Seq05VD", "Seq05VD"]}


@pytest.fixture(scope="module")
def drives_data(tmp_path_factory) -> tuple[Path, dict[str, list[np.ndarray]]]:
    root = tmp_path_factory.mktemp("camvid-drives")
    masks = write_camvid(root, True, {split: len(d) for split, d in DRIVES.items()}, size=SIZE, drives=DRIVES)
    return root, masks


def expected(masks: dict[str, list[np.ndarray]], parts: tuple[str, ...], keep) -> np.ndarray:
    """The train-id masks of the frames of ``parts`` whose drive ``keep`` accepts, in load order."""
    return np.stack([expected_train_ids(m) for part in parts for m, d in zip(masks[part], DRIVES[part]) if keep(d)])


@pytest.mark.parametrize("text", ["train", "train+val", "train+val:0006R0", "train+val:-0006R0",
                                  "val+train+test:0001TP,Seq05VD", "test:-0001TP"])
def test_split_text_round_trips(text):
    assert str(CamVidSplit.parse(text)) == text


@pytest.mark.parametrize("text", ["trainval", "train+train", "train:", "train:-", "train+val:0001TP,0001TP", "x:0001TP"])
def test_malformed_split_names_the_parameter(text):
    with pytest.raises(InputError) as info:
        CamVidSplit.parse(text, "val_split")
    assert info.value.param == "val_split" and "train+val:0006R0" in str(info.value)


def test_drive_split_loads_exactly_the_frames_of_its_drives(drives_data):
    root, masks = drives_data
    assert split_drives(root, "train+val") == {"0001TP": 2, "0006R0": 3, "0016E5": 5}
    assert split_drives(root, "train+val:-0006R0") == {"0001TP": 2, "0016E5": 5}
    held_in, held_out = holdout_splits(("0006R0",))
    train = load_camvid(root, held_in, SIZE)
    val = load_camvid(root, held_out, SIZE)
    assert len(train) == 7 and len(val) == 3
    np.testing.assert_array_equal(train.targets.numpy(), expected(masks, ("train", "val"), lambda d: d != "0006R0"))
    np.testing.assert_array_equal(val.targets.numpy(), expected(masks, ("train",), lambda d: d == "0006R0"))
    both = load_camvid(root, "test:0001TP,Seq05VD", SIZE)
    np.testing.assert_array_equal(both.targets.numpy(), expected(masks, ("test",), lambda d: True))


def test_a_drive_with_no_frames_lists_the_drives_there(drives_data):
    root, _ = drives_data
    with pytest.raises(InputError) as info:
        load_camvid(root, "train+val:Seq05VD", SIZE, param="holdout")
    assert info.value.param == "holdout"
    assert "Seq05VD" in str(info.value) and "0001TP (2), 0006R0 (3), 0016E5 (5)" in str(info.value)
    with pytest.raises(InputError, match="no frames of drive left by val:-0016E5"):
        load_camvid(root, "val:-0016E5", SIZE)


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "camvid", "--data-dir", data, "--layout", "realtime", "--epochs", "1", "--batch-size", "3",
            "--size", "24x32", "--crop", "16x24", "--out", out, *TINY, *extra]


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_holdout_trains_without_the_drive_and_eval_scores_it(drives_data, tmp_path, cli):
    root, _ = drives_data
    out = tmp_path / "fold"
    code, stdout, err = cli(*train_args(root, out, "--holdout", "0006R0"))
    assert code == 0, err
    assert "7 training (train+val:-0006R0) and 3 validation (train+val:0006R0)" in stdout
    run = json.loads((out / "config.json").read_text())["run"]
    assert (run["train_split"], run["val_split"]) == ("train+val:-0006R0", "train+val:0006R0")
    meta = torch.load(out / "last.pt", weights_only=True)["meta"]
    assert meta["val_split"] == "train+val:0006R0"
    # eval scores the held-out drive by default, as training validated it ...
    figure = tmp_path / "figures" / "confusion.png"
    code, stdout, err = cli("eval", out / "last.pt", "--json", "--confusion", figure)
    assert code == 0, err
    result = last_json(stdout)
    assert result["split"] == "train+val:0006R0" and result["images"] == 3
    val_miou = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["val_miou"]
    assert result["miou"] == pytest.approx(val_miou)
    # ... with its confusion matrix in CamVid's classes, from which its scores follow, and drawn.
    classes, counts = result["confusion"]["classes"], np.array(result["confusion"]["counts"])
    assert classes == list(result["per_class_iou"]) and counts.shape == (11, 11) and counts.sum() > 0
    assert np.trace(counts) / counts.sum() == pytest.approx(result["pixel_accuracy"])
    union = counts.sum(0) + counts.sum(1) - np.diag(counts)
    for name, tp, u in zip(classes, np.diag(counts), union):
        assert result["per_class_iou"][name] == (None if u == 0 else pytest.approx(tp / u))
    assert f"wrote {figure}" in stdout and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = cli("eval", out / "last.pt", "--confusion", tmp_path / "confusion.txt")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--confusion" in err, err
    # ... and any other drive split when asked.
    code, stdout, err = cli("eval", out / "last.pt", "--split", "test:Seq05VD", "--json")
    assert code == 0, err
    assert last_json(stdout)["images"] == 2


def test_val_every_validates_every_nth_epoch_and_the_last(drives_data, tmp_path, cli):
    root, _ = drives_data
    out = tmp_path / "sparse"
    code, _, err = cli(*train_args(root, out, "--holdout", "0006R0", "--epochs", "5", "--val-every", "2"))
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if "val_miou" in r] == [2, 4, 5]
    assert all(any(k.startswith("train_") for k in r) for r in rows)
    best = torch.load(out / "best.pt", weights_only=True)["meta"]["epoch"]
    assert best in (2, 4, 5) and (out / "curves.png").stat().st_size > 0
    code, _, err = cli(*train_args(root, tmp_path / "dense", "--holdout", "0006R0", "--epochs", "5"))
    assert code == 0, err
    sparse, dense = (torch.load(d / "last.pt", weights_only=True)["state_dict"] for d in (out, tmp_path / "dense"))
    assert all(torch.equal(sparse[k], dense[k]) for k in dense)  # validating changes no weight
    code, _, err = cli(*train_args(root, tmp_path / "bad", "--holdout", "0006R0", "--val-every", "0"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--val-every" in err, err


def test_all_frames_without_validation(drives_data, tmp_path, cli):
    root, _ = drives_data
    out = tmp_path / "all"
    code, stdout, err = cli(*train_args(root, out, "--train-split", "train+val", "--val-split", "none"))
    assert code == 0, err
    assert "10 training (train+val) and no validation images" in stdout
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert not any(k.startswith("val_") for k in row) and (out / "last.pt").exists() and not (out / "best.pt").exists()
    code, stdout, err = cli("eval", out / "last.pt", "--split", "test", "--json")
    assert code == 0 and last_json(stdout)["images"] == 3, err


@pytest.mark.parametrize("extra, flag", [
    (["--holdout", "Seq05VD"], "--holdout"),
    (["--holdout", "0006R0", "--val-split", "test"], "--holdout"),
    (["--train-split", "train+val:-0016E5,0001TP,0006R0"], "--train-split"),
    (["--val-split", "valid"], "--val-split"),
])
def test_bad_drive_splits_are_one_line(extra, flag, drives_data, tmp_path, cli):
    root, _ = drives_data
    code, _, err = cli(*train_args(root, tmp_path / "bad", *extra))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and flag in lines[0] and lines[0].startswith("error: "), err


def test_holdout_is_for_camvid_only(tmp_path, cli):
    code, _, err = cli("train", "qtips", "--holdout", "0006R0", "--out", tmp_path / "q", *TINY)
    assert code == 2 and "--holdout" in err and "CamVid" in err
