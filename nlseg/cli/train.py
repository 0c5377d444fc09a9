"""``nlseg train DATASET``: the thesis recipe on one dataset, one or several seeds, resumable
(:func:`nlseg.api.training.train`)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from nlseg.api.training import train as train_model
from nlseg.cli import app
from nlseg.cli import options as opt
from nlseg.cli.signals import signals_stop_once
from nlseg.data.registry import DATASETS, dataset_info
from nlseg.data.split import DataWarning
from nlseg.errors import InputError
from nlseg.train.class_balance import WEIGHTINGS
from nlseg.train.recipe import OPTIMIZERS, SCHEDULES

DatasetArg = Annotated[str, typer.Argument(help=f"One of {', '.join(DATASETS)}.", show_default=False)]
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Folder holding the dataset (not needed for "
                                                  "qtips, qtips-seg and synthetic).")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N (under torchrun: one GPU per process).")]
Workers = Annotated[int, typer.Option("--workers", help="Threads / processes that read or render the dataset.")]
Size = Annotated[Optional[str], typer.Option("--size", help="HxW of segmentation inputs (default: the dataset's "
                                             "frames for CamVid, 360x480, else the preset's, 90x160 for BDD100K).")]


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; InputError naming --seeds otherwise."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise InputError(f"--seeds: expected distinct non-negative integers such as 0,1,2,3,4, got {text!r}")
    return seeds


def parse_scale(text: str | None) -> tuple[float, float] | None:
    """'0.5-2.0' -> (0.5, 2.0); InputError naming --scale otherwise."""
    if text is None:
        return None
    try:
        low, high = (float(v) for v in text.split("-"))
    except ValueError:
        raise InputError(f"--scale: expected LOW-HIGH such as 0.5-2.0, got {text!r}") from None
    return low, high


def show_warnings() -> None:
    """Print data warnings as one ``warning:`` line each."""
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 (warnings API)
        typer.echo(f"warning: {message}", err=True)

    warnings.showwarning = show
    warnings.simplefilter("always", DataWarning)


@app.command()
@opt.flag_names(dataset="DATASET")
@opt.with_model_flags
def train(
    model_flags: opt.ModelFlags,
    dataset: DatasetArg,
    data_dir: DataDir = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Epochs (default: the recipe's; the "
                                                  "×0.1 milestones scale with it).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size",
                                                      help="Global batch size (default: the recipe's).")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Learning rate after warm-up (default: the recipe's).")] = None,
    init: Annotated[Optional[Path], typer.Option("--init", help="Start from this checkpoint's weights (fine-tuning); "
                                                 "the architecture is the checkpoint's, so no model flags.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Run directory (default: runs/DATASET).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last.pt.")] = False,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of initialisation, data order and "
                                                "augmentation (default 0).")] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="Several seeds, e.g. 0,1,2,3,4: one run each "
                                                 "in OUT/seed-N, median reported.")] = None,
    device: Device = "auto",
    workers: Workers = 4,
    train_fraction: Annotated[float, typer.Option("--train-fraction", help="Train on this random fraction of the "
                                                  "training set (thesis Table 5.7).")] = 1.0,
    synthetic_scenes: Annotated[int, typer.Option("--synthetic-scenes", help="Add this many generated driving scenes "
                                                  "to the training split (street scenes in train ids; for the "
                                                  "classes the dataset lacks).")] = 0,
    size: Size = None,
    crop: Annotated[Optional[str], typer.Option("--crop", help="HxW of the random training crops of street scenes "
                                                "(default: the recipe's; camvid: 224x384 of 360x480).")] = None,
    infer_size: Annotated[Optional[str], typer.Option("--infer-size", help="HxW the network runs at by default in "
                                                      "nlseg infer (default: --size).")] = None,
    class_weights: Annotated[Optional[bool], typer.Option("--class-weights/--no-class-weights", help="Weigh the loss "
                                                          "by median-frequency class balancing (default: off).")] = None,
    schedule: Annotated[Optional[str], typer.Option("--schedule", help=f"Learning-rate schedule: {', '.join(SCHEDULES)} "
                                                    "(default: the recipe's; camvid: poly).")] = None,
    class_weighting: Annotated[Optional[str], typer.Option("--class-weighting", help=f"{' or '.join(WEIGHTINGS)}: "
                                                           "median-frequency or ENet's 1/ln(1.10 + p) class "
                                                           "weights (turns --class-weights on; default median).")] = None,
    logit_adjustment: Annotated[Optional[bool], typer.Option("--logit-adjustment", help="Real-time layout: lower "
                                                             "the classifier bias by log w and train the weighted "
                                                             "loss on the logits + log w, so the run trains as "
                                                             "without it and predicts as if unweighted.")] = None,
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", help=f"{' or '.join(OPTIMIZERS)} (default: the "
                                                     "recipe's, sgd with momentum 0.9).")] = None,
    scale: Annotated[Optional[str], typer.Option("--scale", help="LOW-HIGH random scale of street-scene training "
                                                 "frames, e.g. 0.5-2.0 (default: the recipe's; camvid: 0.75-1.5).")] = None,
    jitter: Annotated[Optional[float], typer.Option("--jitter", help="Colour jitter of street-scene training frames: "
                                                    "brightness, contrast and saturation factors in [1 - J, 1 + J] "
                                                    "(default: the recipe's; camvid: 0.25).")] = None,
    colour_cast: Annotated[Optional[float], typer.Option("--colour-cast", help="Colour cast of street-scene "
                                                         "training frames: per-channel gains in [1 - C, 1 + C], "
                                                         "a grey pixel's brightness kept (default 0: none).")] = None,
    loss_stride: Annotated[Optional[int], typer.Option("--loss-stride", help="Score the training loss on every "
                                                       "N-th pixel of each crop (real-time layout; the logits are "
                                                       "upsampled to 1/N of it; default 1, every pixel).")] = None,
    ema: Annotated[Optional[float], typer.Option("--ema", help="Validate and save the exponential moving average of "
                                                 "the weights with this decay per step, e.g. 0.999 (default 0: "
                                                 "the weights themselves).")] = None,
    train_split: Annotated[str, typer.Option("--train-split", help="The split to train on; camvid: also drive "
                                             "splits such as train+val:-0006R0 (every drive but 0006R0) or "
                                             "train+val:0001TP,0016E5.")] = "train",
    val_split: Annotated[str, typer.Option("--val-split", help="The split to validate on, or none (then last.pt "
                                           "is the result); camvid: also drive splits such as train+val:0006R0.")] = "val",
    holdout: Annotated[Optional[str], typer.Option("--holdout", help="CamVid drives (e.g. 0006R0, or 0001TP,Seq05VD) "
                                                   "to hold out of train+val and validate on: a drive the network "
                                                   "never saw.")] = None,
    val_every: Annotated[int, typer.Option("--val-every", help="Validate every N-th epoch and the last (default 1: "
                                           "every epoch); the weights do not depend on it.")] = 1,
) -> None:
    """Train a network with the thesis recipe; writes config.json, metrics.jsonl, curves.png, last.pt, best.pt."""
    if seeds is not None and seed is not None:
        raise InputError("--seeds: give either --seed or --seeds, not both")
    if init is not None and model_flags != opt.ModelFlags():
        raise InputError("--init: the architecture comes from the checkpoint; drop the model flags")
    show_warnings()
    folder = out if out is not None else Path("runs") / dataset
    try:
        with signals_stop_once(f"stopping; {folder} keeps the last finished epoch (last.pt)"):
            result = train_model(
                dataset, None if init is not None else model_flags.config(dataset_info(dataset).preset), init=init,
                data_dir=data_dir,
                size=opt.parse_hw(size, "--size"), crop=opt.parse_hw(crop, "--crop"),
                infer_size=opt.parse_hw(infer_size, "--infer-size"), epochs=epochs, batch_size=batch_size, lr=lr,
                schedule=schedule, class_weights=class_weights, class_weighting=class_weighting,
                logit_adjustment=logit_adjustment, optimizer=optimizer, scale=parse_scale(scale), jitter=jitter,
                colour_cast=colour_cast, loss_stride=loss_stride, ema=ema,
                seeds=parse_seeds(seeds) if seeds is not None else [seed or 0],
                seed_dirs=seeds is not None, out=out, resume=resume, device=device, workers=workers,
                train_fraction=train_fraction, synthetic_scenes=synthetic_scenes, train_split=train_split,
                val_split=None if val_split == "none" else val_split,
                holdout=tuple(d for d in holdout.split(",") if d) if holdout is not None else (), val_every=val_every)
    except KeyboardInterrupt:
        print(f"interrupted: {folder} keeps the last finished epoch (last.pt); continue with the same command and "
              "--resume", file=sys.stderr)
        raise typer.Exit(130) from None
    if "median" in result:
        median = result["median"]
        print("median over seeds " + ", ".join(map(str, result["histories"])) + ": " +
              "  ".join(f"{k} {v:.4f}" for k, v in median.items()))
        print(json.dumps({"seeds": list(result["histories"]), "median": median}))
