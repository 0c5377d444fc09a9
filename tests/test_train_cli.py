"""``nlseg train`` / ``nlseg eval`` end to end: run directory, kill and resume, seeds, DDP, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nlseg.cli import main
from nlseg.data.synthetic import write_scenes
from nlseg.train.rundir import read_metrics

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
TINY = ["--blocks", "1-1-1", "--channels", "8-8-8", "--workers", "1"]


@pytest.fixture(autouse=True)
def _keep_global_rng():
    """In-process training seeds torch's global generator; give other tests back the state they had."""
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)


@pytest.fixture
def cli(capsys):
    """The command line in this process, one thread: returns (exit status, stdout, stderr)."""
    def run(*args) -> tuple[int, str, str]:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        finally:
            torch.set_num_threads(threads)
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    """A tiny synthetic dataset on disk: 40 training and 8 validation scenes at 24x40."""
    root = tmp_path_factory.mktemp("scenes")
    write_scenes(root, "train", 40, (24, 40), seed=5)
    write_scenes(root, "val", 8, (24, 40), seed=5)
    return root


def seg_args(scenes: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "synthetic", "--data-dir", scenes, "--size", "24x40", "--epochs", "4", "--batch-size", "4",
            "--nonlocal", "diffusion", "--out", out, *TINY, *extra]


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def assert_same_rows(a: list[dict], b: list[dict], rel: float = 1e-5) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(without_time(a), without_time(b)):
        assert ra.keys() == rb.keys()
        for key in ra:
            pairs = zip(ra[key], rb[key]) if isinstance(ra[key], list) else [(ra[key], rb[key])]
            for x, y in pairs:
                assert (x is None and y is None) or x == pytest.approx(y, rel=rel, abs=1e-6), key


def kill_after_first_checkpoint(args: list, out: Path) -> int:
    """Run ``nlseg ARGS`` (training into ``out``) and SIGKILL it right after its first checkpoint, mid-way
    through the next epoch or its writes; returns the epoch its last.pt holds."""
    proc = subprocess.Popen([sys.executable, "-m", "nlseg", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 240
    while not (out / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    return torch.load(out / "last.pt", weights_only=True)["epoch"]


def test_kill_at_any_moment_then_resume_is_identical(scenes, tmp_path, cli):
    code, _, err = cli(*seg_args(scenes, tmp_path / "full", "--seed", "3"))
    assert code == 0, err
    killed_out = tmp_path / "killed"
    done = kill_after_first_checkpoint(seg_args(scenes, killed_out, "--seed", "3"), killed_out)
    assert 1 <= done < 4
    code, out, err = cli(*seg_args(scenes, killed_out, "--seed", "3", "--resume"))
    assert code == 0, err
    assert f"resuming {killed_out} after epoch {done}" in out
    assert_same_rows(read_metrics(killed_out / "metrics.jsonl"), read_metrics(tmp_path / "full" / "metrics.jsonl"))
    a = torch.load(killed_out / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    for key in b["state_dict"]:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key], rtol=1e-5, atol=1e-6)
    assert a["best"]["epoch"] == b["best"]["epoch"]
    assert not [p.name for p in killed_out.iterdir() if ".tmp-" in p.name]  # nothing half-written left


def test_run_directory_eval_and_resume_guards(scenes, tmp_path, cli):
    out = tmp_path / "run"
    code, _, err = cli(*seg_args(scenes, out, "--epochs", "2"))
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"config.json", "metrics.jsonl", "curves.png", "last.pt", "best.pt"}
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2] and rows[0]["lr"] == pytest.approx(0.01)
    assert {"train_loss", "val_loss", "val_pixel_accuracy", "val_miou", "val_soft_iou", "seconds"} <= rows[0].keys()
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["model"]["nonlocal_kernel"] == "dot" and config["milestone_epochs"] == [1, 1, 2, 2]
    payload = torch.load(out / "best.pt", weights_only=True)
    assert payload["model_config"]["image_size"] == [24, 40] and payload["meta"]["dataset"] == "synthetic"
    assert payload["input_mean"].shape == (3, 1, 1) and payload["meta"]["normalization"]["per_pixel"] is False

    code, stdout, err = cli("eval", out / "best.pt", "--json", "--noise-sigma", "0.02")
    assert code == 0, err
    metrics = json.loads(stdout.strip().splitlines()[-1])
    assert metrics["images"] == 8 and 0 <= metrics["pixel_accuracy"] <= 1 and 0 <= metrics["miou"] <= 1
    assert 0 <= metrics["soft_iou"] <= 1 and len(metrics["per_class_iou"]) == 19

    code, _, err = cli(*seg_args(scenes, out, "--epochs", "2"))
    assert code == 2 and "--resume" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(*seg_args(scenes, out, "--epochs", "3", "--resume"))
    assert code == 2 and "recipe differ" in err
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs
    killed = out / f".last.tmp-{gone.pid}-x1y2z3w4.pt"
    killed.write_bytes(b"half")  # what a kill during a checkpoint write leaves
    older = out / ".best.tmp-a1b2c3d4.pt"  # the pattern before temp names carried the writer's id
    older.write_bytes(b"half")
    code, out_text, err = cli(*seg_args(scenes, out, "--epochs", "2", "--resume"))
    assert code == 0 and read_metrics(out / "metrics.jsonl") == rows
    assert not killed.exists() and f"{killed}: removed" in out_text
    assert older.exists() and f"{older}: left in place" in out_text


def test_seeds_report_the_median(scenes, tmp_path, cli):
    code, stdout, err = cli(*seg_args(scenes, tmp_path, "--epochs", "1", "--seeds", "0,1,2"))
    assert code == 0, err
    summary = json.loads((tmp_path / "seeds.json").read_text())
    finals = [read_metrics(tmp_path / f"seed-{s}" / "metrics.jsonl")[-1]["val_miou"] for s in (0, 1, 2)]
    assert summary["median"]["val_miou"] == pytest.approx(sorted(finals)[1])
    assert json.loads(stdout.strip().splitlines()[-1])["seeds"] == [0, 1, 2]


def test_ddp_two_processes_match_one(scenes, tmp_path, cli):
    code, _, err = cli(*seg_args(scenes, tmp_path / "one", "--epochs", "2", "--device", "cpu"))
    assert code == 0, err
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "nlseg", *map(str, seg_args(scenes, tmp_path / "two", "--epochs", "2", "--device", "cpu"))],
                         capture_output=True, text=True, timeout=300, env=ENV)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("epoch 2/2") == 1  # only rank 0 reports
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2
    assert_same_rows(read_metrics(tmp_path / "two" / "metrics.jsonl"), read_metrics(tmp_path / "one" / "metrics.jsonl"),
                     rel=2e-3)
    a = torch.load(tmp_path / "two" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "one" / "last.pt", weights_only=True)["state_dict"]
    for key in b:
        torch.testing.assert_close(a[key].float(), b[key].float(), rtol=2e-3, atol=2e-4)


def test_qtips_classification_and_eval(tmp_path, cli):
    out = tmp_path / "q"
    code, _, err = cli("train", "qtips", "--epochs", "1", "--batch-size", "64", "--train-fraction", "0.25",
                       "--out", out, *TINY)
    assert code == 0, err
    code, stdout, err = cli("eval", out / "last.pt", "--json", "--batch-size", "128")
    assert code == 0, err
    metrics = json.loads(stdout.strip().splitlines()[-1])
    assert metrics["images"] == 512 and 0 <= metrics["accuracy"] <= 1
    assert metrics["accuracy"] == pytest.approx(read_metrics(out / "metrics.jsonl")[-1]["val_accuracy"])


@pytest.mark.parametrize(
    "args,flag",
    [
        (["train", "bdd100k"], "--data-dir"),
        (["train", "cifar10", "--data-dir", "{empty}"], "--data-dir"),
        (["train", "bdd100k", "--data-dir", "{empty}"], "images/10k"),
        (["train", "stl10", "--data-dir", "{missing}"], "--data-dir"),
        (["train", "qtips", "--data-dir", "{empty}"], "--data-dir"),
        (["train", "imagenet"], "DATASET"),
        (["train", "qtips", "--epochs", "0"], "--epochs"),
        (["train", "qtips", "--train-fraction", "1.5"], "--train-fraction"),
        (["train", "qtips", "--lr", "-1"], "--lr"),
        (["train", "qtips", "--seeds", "0,x"], "--seeds"),
        (["train", "qtips", "--seed", "1", "--seeds", "0,1"], "--seeds"),
        (["train", "cifar10", "--size", "64x64"], "--size"),
        (["train", "synthetic", "--size", "90"], "--size"),
        (["train", "qtips", "--device", "tpu"], "--device"),
        (["train", "qtips", "--blocks", "1-x-1"], "--blocks"),
        (["train", "qtips", "--model", "resnet44", "--nonlocal", "frac"], "--nonlocal"),
        (["eval", "{missing}"], "checkpoint not found"),
        (["eval", "{empty}/x.pt", "--noise-sigma", "-1"], "--noise-sigma"),
    ],
)
def test_bad_input_is_one_line(args, flag, tmp_path, cli):
    (tmp_path / "empty").mkdir()
    args = [a.format(empty=tmp_path / "empty", missing=tmp_path / "missing") for a in args]
    code, _, err = cli(*args, "--out", tmp_path / "out") if args[0] == "train" else cli(*args)
    err = err.strip().splitlines()
    assert code == 2 and len(err) == 1 and flag in err[0] and err[0].startswith("error: ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("signals", [("SIGTERM",), ("SIGINT", "SIGTERM")])
def test_signals_end_training_in_one_line_and_resume_is_identical(scenes, tmp_path, cli, signals):
    code, _, err = cli(*seg_args(scenes, tmp_path / "full", "--seed", "3"))
    assert code == 0, err
    stopped = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, "-m", "nlseg", *map(str, seg_args(scenes, stopped, "--seed", "3"))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 240
    while not (stopped / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    for name in signals:  # mid-way through epoch 2 (or its checkpoint writes), then again at once
        proc.send_signal(getattr(signal, name))
        time.sleep(0.05)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1 and "--resume" in lines[0], err
    done = torch.load(stopped / "last.pt", weights_only=True)["epoch"]
    code, _, err = cli(*seg_args(scenes, stopped, "--seed", "3", "--resume"))
    assert code == 0, err
    assert 1 <= done and len(read_metrics(stopped / "metrics.jsonl")) == 4
    assert_same_rows(read_metrics(stopped / "metrics.jsonl"), read_metrics(tmp_path / "full" / "metrics.jsonl"))
    assert not [p.name for p in stopped.iterdir() if ".tmp-" in p.name]
