"""The held-out-drive table: CamVid segmenters scored on drives they never saw, next to the anchors.

Reads finished fold runs of ``nlseg train camvid --holdout DRIVE`` (their run directories, or
``last.pt`` files), grouped into rows by ``LABEL=GLOB`` arguments. A fold run validates every epoch
on all frames of its held-out drive and no epoch is chosen on them, so the score of a run is its
last epoch's validation (what ``nlseg eval RUN/last.pt`` prints: the 11 CamVid classes, void
ignored). Per row and drive the median over the row's seeds (with their range), the mean of the
drives' medians, parameters, executed multiply-adds and the torch CPU forward pass (batch 1, arg-max
included, median of ``--repeats``; ``--repeats 0`` leaves the column empty, for when training shares
the cores) at ``--size``; then the median IoU per class and drive. The
anchors' published numbers follow, marked as theirs, on CamVid's test split, which is not ours.

How much that one number owes to the epoch it stopped at: *late* is the mean held-out mIoU of the
run's validations in the last fifth of its epochs (``--val-every 5`` over 110 epochs: epochs 90–110),
per drive the median over seeds with the range of every such validation, and its mean over the
drives. It averages weights the run passed through; it is a recipe's noise, not a model's score.

With ``--against LABEL`` the rows are also compared with that row run by run: per drive, the
difference of each seed that both rows ran (paired by seed), how many of them are ahead, and their mean.

    python benchmarks/holdout.py 'none=runs/claim/none/holdout-*/seed-*' \\
        '𝓛=runs/claim/diffusion/holdout-*/seed-*' [--against none] [--size 360x480] [--repeats 20] [--json]
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import cost, forward_fps, parse_hw  # noqa: E402 (this folder's scripts)

import nlseg  # noqa: E402
from nlseg.checkpoint import read_checkpoint  # noqa: E402
from nlseg.data.camvid import CamVidSplit, holdout_splits  # noqa: E402
from nlseg.data.labels import CAMVID_CLASSES  # noqa: E402
from nlseg.errors import InputError  # noqa: E402
from nlseg.runtime.device import describe_device  # noqa: E402

# Published CamVid test-split mIoU (11 classes, 360x480, trained from scratch on train+val): name, params, mIoU.
ANCHORS = (("ENet", "0.36M", 51.3), ("ESPNet", "0.36M", 55.6), ("CGNet", "0.5M", 65.6),
           ("DABNet", "0.76M", 66.4), ("FBSNet", "0.62M", 68.9), ("LETNet", "0.95M", 70.5))


@dataclass(frozen=True)
class FoldRun:
    """One finished fold run: the drive it held out, its seed and its last epoch's validation."""

    path: Path
    drive: str
    seed: int
    miou: float
    pixel_accuracy: float
    per_class: tuple[float | None, ...]
    late: tuple[float, ...]  # the held-out mIoU of each validation in the last fifth of the epochs


def late_validations(history: list[dict], epochs: int) -> tuple[float, ...]:
    """``val_miou`` of the validated epochs after ``epochs − max(1, epochs // 5)``."""
    first = epochs - max(1, epochs // 5)
    return tuple(row["val_miou"] for row in history if row["epoch"] > first and row.get("val_miou") is not None)


def read_fold_run(path: Path) -> FoldRun:
    """The fold run in ``path`` (a run directory or its ``last.pt``); InputError if it is not a finished one."""
    last = path / "last.pt" if path.is_dir() else path
    if not last.is_file():
        raise InputError(f"{path}: no last.pt")
    payload = read_checkpoint(last)
    meta, run = payload.get("meta", {}), payload.get("run", {})
    val = meta.get("val_split")
    drives = () if val is None else CamVidSplit.parse(val).drives
    if meta.get("dataset") != "camvid" or not drives or holdout_splits(drives) != (meta.get("train_split"), val):
        raise InputError(f"{last}: not a held-out-drive run (nlseg train camvid --holdout DRIVE); "
                         f"it trained on {meta.get('train_split')} and validated on {val}")
    if len(drives) != 1:
        raise InputError(f"{last}: held out {len(drives)} drives ({', '.join(drives)}); the table has one per column")
    epochs = run.get("recipe", {}).get("epochs")
    if meta.get("epoch") != epochs:
        raise InputError(f"{last}: stopped after epoch {meta.get('epoch')} of {epochs}; finish it (--resume) "
                         "or leave it out")
    row = meta["metrics"]
    return FoldRun(last, drives[0], int(meta.get("seed", 0)), row["val_miou"], row["val_pixel_accuracy"],
                   tuple(row["val_per_class_iou"]), late_validations(payload.get("history", [row]), epochs))


def parse_group(text: str) -> tuple[str, list[FoldRun]]:
    """``LABEL=GLOB`` → the label and the fold runs its glob matches; InputError naming the argument."""
    label, sep, pattern = text.partition("=")
    if not sep or not label or not pattern:
        raise InputError(f"{text!r}: expected LABEL=GLOB, e.g. 'none=runs/claim/none/holdout-*/seed-*'")
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise InputError(f"{text!r}: {pattern} matches nothing")
    runs = [read_fold_run(Path(p)) for p in paths]
    seen = [(r.drive, r.seed) for r in runs]
    twice = next((k for k in seen if seen.count(k) > 1), None)
    if twice is not None:
        raise InputError(f"{text!r}: two runs of drive {twice[0]} with seed {twice[1]}")
    return label, runs


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _median_range(values: list[float]) -> str:
    text = _pct(statistics.median(values))
    return text if len(values) == 1 else f"{text} ({_pct(min(values))}–{_pct(max(values))})"


def paired(runs: list[FoldRun], reference: list[FoldRun], drive: str) -> list[tuple[int, float]]:
    """(seed, mIoU − the reference's mIoU) for each seed both rows ran on ``drive``, in seed order."""
    ref = {r.seed: r.miou for r in reference if r.drive == drive}
    return sorted((r.seed, r.miou - ref[r.seed]) for r in runs if r.drive == drive and r.seed in ref)


def print_paired(groups: list[tuple[str, list[FoldRun]]], against: str, drives: list[str], as_json: bool) -> None:
    """The table of each row's per-seed differences against the row ``against`` (and a 'json:' line per cell)."""
    reference = dict(groups)[against]
    print(f"\nAgainst {against}, paired by seed (held-out mIoU, points):\n")
    print("| model | held out | seeds | difference per seed | ahead | mean difference |")
    print("|---|---|---|---|---:|---:|")
    for label, runs in groups:
        if label == against:
            continue
        for d in drives:
            pairs = paired(runs, reference, d)
            if not pairs:
                continue
            diffs = [100 * diff for _, diff in pairs]
            print(f"| {label} − {against} | {d} | {','.join(str(seed) for seed, _ in pairs)} | "
                  + ", ".join(f"{v:+.1f}" for v in diffs)
                  + f" | {sum(v > 0 for v in diffs)} of {len(diffs)} | {statistics.mean(diffs):+.1f} |")
            if as_json:
                print("json: " + json.dumps({"label": label, "against": against, "drive": d,
                                             "differences": {seed: diff for seed, diff in pairs}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("groups", nargs="+", help="LABEL=GLOB of fold run directories (or last.pt files), one row each")
    parser.add_argument("--size", default="360x480", help="HxW of the cost and speed columns (default 360x480)")
    parser.add_argument("--repeats", type=int, default=20, help="timed forward passes per row (default 20; 0: no speed column, "
                        "as when other jobs share the cores)")
    parser.add_argument("--json", action="store_true", help="also print one 'json: {...}' line per row")
    parser.add_argument("--against", metavar="LABEL", help="also compare every row with this one, paired by seed")
    args = parser.parse_args()
    if args.repeats < 0:
        raise InputError(f"--repeats: need 0 or more, got {args.repeats}")
    size = parse_hw(args.size, "--size")
    groups = [parse_group(g) for g in args.groups]
    labels = [label for label, _ in groups]
    if len(set(labels)) != len(labels):
        raise InputError(f"two rows are labelled {next(x for x in labels if labels.count(x) > 1)!r}")
    if args.against is not None and args.against not in labels:
        raise InputError(f"--against {args.against!r}: no row has that label (rows: {', '.join(labels)})")
    drives = sorted({r.drive for _, runs in groups for r in runs})
    if args.against is not None and not any(paired(runs, dict(groups)[args.against], d)
                                            for label, runs in groups if label != args.against for d in drives):
        raise InputError(f"--against {args.against!r}: no other row ran a drive and seed that {args.against!r} ran")
    frame = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    print(f"# CamVid, held-out drives: the last epoch of each fold run, 11 classes, void ignored; cost and speed at "
          f"{size[0]}x{size[1]}, torch CPU ({describe_device('cpu')}, {torch.get_num_threads()} threads)\n")
    print("| model | seeds | " + " | ".join(f"held out {d}: mIoU (range) / pixel acc." for d in drives)
          + " | mean mIoU | " + " | ".join(f"late, {d}" for d in drives) + " | late mean | params | MACs | forward fps |")
    print("|---|---:|" + "---:|" * (2 * len(drives) + 5))
    per_class: dict[tuple[str, str], list[float | None]] = {}
    for label, runs in groups:
        cells, medians, late_cells, late_medians = [], [], [], []
        for d in drives:
            fold = [r for r in runs if r.drive == d]
            if not fold:
                cells.append("")
                late_cells.append("")
                continue
            medians.append(statistics.median(r.miou for r in fold))
            late_medians.append(statistics.median(statistics.mean(r.late) for r in fold))
            every = [v for r in fold for v in r.late]
            late_cells.append(f"{_pct(late_medians[-1])} ({_pct(min(every))}–{_pct(max(every))})")
            cells.append(f"{_median_range([r.miou for r in fold])} / {_pct(statistics.median(r.pixel_accuracy for r in fold))}")
            per_class[label, d] = [None if any(r.per_class[i] is None for r in fold)
                                   else statistics.median(r.per_class[i] for r in fold) for i in range(len(CAMVID_CLASSES))]
        mean = sum(medians) / len(medians) if len(medians) == len(drives) else None
        late_mean = sum(late_medians) / len(late_medians) if len(late_medians) == len(drives) else None
        params, macs = cost(runs[0].path, size)
        fps = forward_fps(nlseg.load(runs[0].path, device="cpu"), frame, size, args.repeats) if args.repeats else None
        seeds = sorted({r.seed for r in runs})
        print(f"| {label} | {','.join(map(str, seeds))} | " + " | ".join(cells)
              + f" | {'**' + _pct(mean) + '**' if mean is not None else ''} | " + " | ".join(late_cells)
              + f" | {_pct(late_mean) if late_mean is not None else ''} | {params} | {macs} | "
              + (f"{fps:.1f}" if fps is not None else "") + " |", flush=True)
        if args.json:
            print("json: " + json.dumps({"label": label, "seeds": seeds, "mean_miou": mean, "late_mean_miou": late_mean,
                                         "params": params,
                                         "macs": macs, "forward_fps": fps,
                                         "runs": [{"path": str(r.path), "drive": r.drive, "seed": r.seed,
                                                   "miou": r.miou, "pixel_accuracy": r.pixel_accuracy,
                                                   "late_miou": list(r.late)}
                                                  for r in runs]}))
    for name, params, miou in ANCHORS:
        print(f"| {name}, *theirs, test split* (Seq05VD + later 0001TP) | | " + " | " * len(drives)
              + f"{miou} | " + " | " * (len(drives) + 1) + f"{params} | | |")
    print("\nMedian IoU per class (%):\n")
    print("| model | held out | " + " | ".join(CAMVID_CLASSES) + " |")
    print("|---|---|" + "---:|" * len(CAMVID_CLASSES))
    for (label, d), values in per_class.items():
        print(f"| {label} | {d} | " + " | ".join("" if v is None else _pct(v) for v in values) + " |")
    if args.against is not None:
        print_paired(groups, args.against, drives, args.json)


if __name__ == "__main__":
    try:
        main()
    except InputError as exc:
        raise SystemExit(f"error: {exc}") from None
