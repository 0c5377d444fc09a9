"""``nlseg train DATASET``: the thesis recipe on one dataset, one or several seeds, resumable."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from nlseg.cli import app
from nlseg.cli import options as opt
from nlseg.data.registry import DATASETS, Request, dataset_info, load_split
from nlseg.data.split import DataWarning
from nlseg.data.synthetic import COUNTS
from nlseg.errors import InputError
from nlseg.train import distributed
from nlseg.train.loop import RunSpec, fit, median_summary
from nlseg.train.recipe import RECIPES, SCHEDULES
from nlseg.train.rundir import write_json

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


def segmentation_size(text: str | None, task: str, default: tuple[int, int], dataset: str,
                      flag: str = "--size") -> tuple[int, int]:
    """--size (or ``flag``) for segmentation sets; InputError when given for a fixed-size dataset."""
    if text is None:
        return default
    if task != "segment" or dataset == "qtips-seg":
        raise InputError(f"{flag}: {dataset} images have a fixed size ({default[0]}x{default[1]})")
    size = opt.parse_size(text, flag)
    if len(size) != 2:
        raise InputError(f"{flag}: expected HxW such as 90x160, got {text!r}")
    return size[0], size[1]


def show_warnings() -> None:
    """Print data warnings as one ``warning:`` line each."""
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 (warnings API)
        typer.echo(f"warning: {message}", err=True)

    warnings.showwarning = show
    warnings.simplefilter("always", DataWarning)


@app.command()
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
    size: Size = None,
    crop: Annotated[Optional[str], typer.Option("--crop", help="HxW of the random training crops of street scenes "
                                                "(default: the recipe's; camvid: 224x384 of 360x480).")] = None,
    infer_size: Annotated[Optional[str], typer.Option("--infer-size", help="HxW the network runs at by default in "
                                                      "nlseg infer (default: --size).")] = None,
    class_weights: Annotated[Optional[bool], typer.Option("--class-weights/--no-class-weights", help="Weigh the loss "
                                                          "by median-frequency class balancing (default: off).")] = None,
    schedule: Annotated[Optional[str], typer.Option("--schedule", help=f"Learning-rate schedule: {', '.join(SCHEDULES)} "
                                                    "(default: the recipe's; camvid: poly).")] = None,
) -> None:
    """Train a network with the thesis recipe; writes config.json, metrics.jsonl, curves.png, last.pt, best.pt."""
    info = dataset_info(dataset)
    config = model_flags.config(info.preset)
    image_size = segmentation_size(size, config.task, info.size or config.image_size, dataset)
    recipe = RECIPES[dataset]
    if schedule is not None and schedule not in SCHEDULES:
        raise InputError(f"--schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}")
    for flag, value in (("--crop", crop), ("--class-weights", class_weights or None), ("--infer-size", infer_size)):
        if value is not None and (config.task != "segment" or dataset == "qtips-seg"):
            raise InputError(f"{flag}: for street-scene segmentation sets, not {dataset}")
    crop_size = segmentation_size(crop, config.task, image_size, dataset, "--crop") if crop is not None else recipe.crop
    if crop is None and crop_size is not None and info.size is not None and image_size != info.size:
        crop_size = (round(crop_size[0] * image_size[0] / info.size[0]), round(crop_size[1] * image_size[1] / info.size[1]))
    recipe = replace(recipe, crop=crop_size, schedule=schedule or recipe.schedule,
                     class_weights=recipe.class_weights if class_weights is None else class_weights)
    # The network's input size (nlseg infer's default): the training frames' unless told otherwise.
    config = replace(config, image_size=segmentation_size(infer_size, config.task, image_size, dataset, "--infer-size"))
    for flag, value, ok in (("--epochs", epochs, epochs is None or epochs >= 1),
                            ("--batch-size", batch_size, batch_size is None or batch_size >= 1),
                            ("--lr", lr, lr is None or lr > 0),
                            ("--train-fraction", train_fraction, 0 < train_fraction <= 1),
                            ("--workers", workers, workers >= 1),
                            ("--seed", seed, seed is None or seed >= 0)):
        if not ok:
            raise InputError(f"{flag}: invalid value {value}")
    recipe = replace(recipe, **{k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr))
                                if v is not None})
    if seeds is not None and seed is not None:
        raise InputError("--seeds: give either --seed or --seeds, not both")
    seed_list = parse_seeds(seeds) if seeds is not None else [seed or 0]
    out = out if out is not None else Path("runs") / dataset
    ctx = distributed.setup(device)
    show_warnings()
    log = print if ctx.is_main else (lambda _: None)
    try:
        if recipe.batch_size < ctx.world:
            raise InputError(f"--batch-size {recipe.batch_size}: smaller than the {ctx.world} processes")
        request = Request("train", data_dir, image_size, workers)
        if dataset == "synthetic" and data_dir is None:
            log(f"rendering {COUNTS['train']} + {COUNTS['val']} synthetic scenes at {image_size[0]}x{image_size[1]} "
                f"with {workers} processes (to render once: nlseg synth DIR, then --data-dir DIR) ...")
        else:
            log(f"loading {dataset} ({'generated' if data_dir is None else data_dir}) ...")
        train_split = load_split(dataset, request)
        val_split = load_split(dataset, replace(request, split="val"))
        if train_split.task != config.task:
            raise InputError(f"--model: a {config.task} network cannot train on {dataset} ({train_split.task})")
        decay = (f"with ×{recipe.gamma} after epochs {list(recipe.milestone_epochs())}" if recipe.schedule == "step"
                 else f"with {recipe.schedule} decay")
        log(f"{dataset}: {len(train_split)} training and {len(val_split)} validation images "
            f"{train_split.image_size[0]}x{train_split.image_size[1]}; {ctx.world} process(es) on {ctx.device}; "
            f"lr {recipe.lr} {decay} over {recipe.epochs} epochs")
        histories = {}
        for run_seed in seed_list:
            run_out = out / f"seed-{run_seed}" if seeds is not None else out
            spec = RunSpec(dataset, None if data_dir is None else str(data_dir.resolve()), image_size, config,
                           recipe, run_seed, train_fraction)
            histories[run_seed] = fit(spec, train_split, val_split, run_out, ctx, resume, info.class_names, log,
                                      info.scored_as)
        if seeds is not None and ctx.is_main:
            result = median_summary(histories)
            write_json(out / "seeds.json", result)
            log("median over seeds " + ", ".join(map(str, seed_list)) + ": " +
                "  ".join(f"{k} {v:.4f}" for k, v in result["median"].items()))
            print(json.dumps({"seeds": seed_list, "median": result["median"]}))
    finally:
        distributed.teardown()
