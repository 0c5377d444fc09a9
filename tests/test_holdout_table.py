"""``benchmarks/holdout.py``: the held-out-drive table from real (tiny) fold runs, and its refusals."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nlseg.analysis.cost import model_cost
from nlseg.checkpoint import load_model
from nlseg.cli import main as nlseg_main
from tests.test_camvid_drives import drives_data, train_args  # noqa: F401 (drives_data is a fixture)
from tests.test_train_camvid import _keep_global_rng  # noqa: F401 (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]
SIZE = "24x32"


def train(*args) -> None:
    """``nlseg train`` in this process; fails the test unless it succeeds."""
    try:
        nlseg_main([str(a) for a in args])
    except SystemExit as exc:
        assert exc.code in (0, None)


def table(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "holdout.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def last_val(run: Path) -> dict:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])


@pytest.fixture(scope="module")
def folds(drives_data, tmp_path_factory) -> tuple[Path, Path]:  # noqa: F811
    """Fold runs of one epoch: 0006R0 with seeds 0 and 1, 0001TP with seed 0; and a run on train/val."""
    root, _ = drives_data
    runs = tmp_path_factory.mktemp("folds")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for drive, seed in (("0006R0", 0), ("0006R0", 1), ("0001TP", 0)):
            train(*train_args(root, runs / f"holdout-{drive}" / f"seed-{seed}", "--holdout", drive, "--seed", str(seed)))
        train(*train_args(root, runs / "plain"))
    finally:
        torch.set_num_threads(threads)
    return root, runs


def cells(stdout: str, label: str) -> list[str]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_the_table_is_the_runs_last_validation(folds):
    _, runs = folds
    result = table(f"tiny={runs}/holdout-*/seed-*", "--size", SIZE, "--repeats", "2", "--json")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "held out 0001TP" in out and "held out 0006R0" in out
    row = cells(out, "tiny")
    a, b, c = (last_val(runs / f"holdout-{d}" / f"seed-{s}") for d, s in (("0006R0", 0), ("0006R0", 1), ("0001TP", 0)))
    median_0006 = statistics.median([a["val_miou"], b["val_miou"]])
    assert row[1] == "0,1"
    assert row[2] == f"{100 * c['val_miou']:.1f} / {100 * c['val_pixel_accuracy']:.1f}"  # drives in sorted order
    lo, hi = sorted([a["val_miou"], b["val_miou"]])
    assert row[3].startswith(f"{100 * median_0006:.1f} ({100 * lo:.1f}–{100 * hi:.1f}) / ")
    assert row[4] == f"**{100 * (median_0006 + c['val_miou']) / 2:.1f}**"
    # one epoch: the last fifth of the epochs is the last one
    assert row[5] == f"{100 * c['val_miou']:.1f} ({100 * c['val_miou']:.1f}–{100 * c['val_miou']:.1f})"
    assert row[6] == f"{100 * median_0006:.1f} ({100 * lo:.1f}–{100 * hi:.1f})"
    assert row[7] == f"{100 * (median_0006 + c['val_miou']) / 2:.1f}"
    model, _, _ = load_model(runs / "holdout-0006R0" / "seed-0" / "last.pt")
    assert row[8] == f"{model_cost(model, (1, 3, 24, 32)).params / 1e6:.3f}M"
    assert float(row[10]) > 0
    record = json.loads(next(ln for ln in out.splitlines() if ln.startswith("json: "))[6:])
    assert record["mean_miou"] == pytest.approx((median_0006 + c["val_miou"]) / 2)
    assert "ESPNet, *theirs, test split*" in out and "| 55.6 |  |  |  | 0.36M |" in out
    per_class = cells(out.split("Median IoU per class")[1], "tiny")
    assert per_class[1] == "0001TP"  # the first drive's row; one seed: its own IoUs
    assert per_class[2:] == ["" if v is None else f"{100 * v:.1f}" for v in c["val_per_class_iou"]]


def test_late_is_the_validations_of_the_last_fifth_of_the_epochs(drives_data, tmp_path):  # noqa: F811
    root, _ = drives_data
    run = tmp_path / "holdout-0001TP"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(*train_args(root, run, "--holdout", "0001TP", "--epochs", "10", "--val-every", "3"))
    finally:
        torch.set_num_threads(threads)
    rows = {r["epoch"]: r["val_miou"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "val_miou" in r}
    assert sorted(rows) == [3, 6, 9, 10]
    result = table(f"ten={run}", "--size", SIZE, "--repeats", "1", "--json")
    assert result.returncode == 0, result.stderr
    late = (rows[9] + rows[10]) / 2  # epochs 9 and 10 of 10; not 3 or 6
    lo, hi = sorted([rows[9], rows[10]])
    assert cells(result.stdout, "ten")[4] == f"{100 * late:.1f} ({100 * lo:.1f}–{100 * hi:.1f})"
    record = json.loads(next(ln for ln in result.stdout.splitlines() if ln.startswith("json: "))[6:])
    assert record["late_mean_miou"] == pytest.approx(late)
    assert record["runs"][0]["late_miou"] == pytest.approx([rows[9], rows[10]])


def test_repeats_zero_leaves_the_speed_column_empty(folds):
    _, runs = folds
    result = table(f"tiny={runs}/holdout-0006R0/seed-0", "--size", SIZE, "--repeats", "0", "--json")
    assert result.returncode == 0, result.stderr
    row = cells(result.stdout, "tiny")
    assert row[-1] == "" and row[-2].endswith("G")  # no fps; the MACs column still there
    record = json.loads(next(ln for ln in result.stdout.splitlines() if ln.startswith("json: "))[6:])
    assert record["forward_fps"] is None and record["params"] == row[-3]


@pytest.mark.parametrize("argument, message", [
    ("none", "expected LABEL=GLOB"),
    ("x={runs}/nothing-*", "matches nothing"),
    ("x={runs}/plain", "not a held-out-drive run"),
])
def test_bad_arguments_are_one_line(folds, argument, message):
    _, runs = folds
    result = table(argument.format(runs=runs), "--size", SIZE)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and message in lines[0], result.stderr


def test_two_runs_of_one_drive_and_seed_are_refused(folds, tmp_path):
    _, runs = folds
    for name in ("a", "b"):
        shutil.copytree(runs / "holdout-0006R0" / "seed-1", tmp_path / name)
    result = table(f"x={tmp_path}/*", "--size", SIZE)
    assert result.returncode != 0 and "two runs of drive 0006R0 with seed 1" in result.stderr


def test_an_unfinished_run_is_refused(folds, tmp_path):
    _, runs = folds
    payload = torch.load(runs / "holdout-0006R0" / "seed-0" / "last.pt", weights_only=True)
    payload["run"]["recipe"]["epochs"] = 5  # as if it had stopped after its first of five epochs
    torch.save(payload, tmp_path / "last.pt")
    result = table(f"x={tmp_path / 'last.pt'}", "--size", SIZE)
    assert result.returncode != 0 and "stopped after epoch 1 of 5" in result.stderr and "--resume" in result.stderr


def test_against_pairs_the_rows_by_seed(folds, tmp_path):
    root, runs = folds
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for seed in (0, 1, 2):  # seed 2 has no partner in the reference row
            train(*train_args(root, tmp_path / f"seed-{seed}", "--holdout", "0006R0", "--seed", str(seed),
                              "--nonlocal", "none"))
    finally:
        torch.set_num_threads(threads)
    result = table(f"ref={runs}/holdout-*/seed-*", f"other={tmp_path}/seed-*", "--against", "ref",
                   "--size", SIZE, "--repeats", "1", "--json")
    assert result.returncode == 0, result.stderr
    paired = result.stdout.split("Against ref, paired by seed")[1]
    assert "| ref − ref |" not in paired and "| other − ref | 0001TP |" not in paired  # no 0001TP run in other
    diffs = [100 * (last_val(tmp_path / f"seed-{s}")["val_miou"]
                    - last_val(runs / "holdout-0006R0" / f"seed-{s}")["val_miou"]) for s in (0, 1)]
    row = cells(paired, "other − ref")
    assert row[1:] == ["0006R0", "0,1", f"{diffs[0]:+.1f}, {diffs[1]:+.1f}", f"{sum(d > 0 for d in diffs)} of 2",
                       f"{(diffs[0] + diffs[1]) / 2:+.1f}"]
    record = json.loads([ln for ln in paired.splitlines() if ln.startswith("json: ")][-1][6:])
    assert record["against"] == "ref" and record["drive"] == "0006R0"
    assert [100 * v for v in record["differences"].values()] == pytest.approx(diffs)


@pytest.mark.parametrize("arguments, message", [
    (("a={runs}/holdout-0006R0/seed-*", "--against", "b"), "--against 'b': no row has that label (rows: a)"),
    (("a={runs}/holdout-0006R0/seed-0", "a={runs}/holdout-0006R0/seed-1"), "two rows are labelled 'a'"),
    (("a={runs}/holdout-0006R0/seed-*", "--against", "a"), "--against 'a': no other row ran a drive and seed"),
    (("a={runs}/holdout-0006R0/seed-0", "b={runs}/holdout-0006R0/seed-1", "--against", "a"),
     "--against 'a': no other row ran a drive and seed that 'a' ran"),
    (("a={runs}/holdout-0006R0/seed-0", "--repeats", "-1"), "--repeats: need 0 or more, got -1"),
])
def test_against_without_pairs_twice_a_label_and_negative_repeats_are_refused(folds, arguments, message):
    _, runs = folds
    result = table(*(a.format(runs=runs) for a in arguments), "--size", SIZE)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and message in lines[0], result.stderr
