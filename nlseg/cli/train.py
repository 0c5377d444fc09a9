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
from nlseg.train.recipe import RECIPES
from nlseg.train.rundir import write_json

DatasetArg = Annotated[str, typer.Argument(help=f"One of {', '.join(DATASETS)}.", show_default=False)]
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Folder holding the dataset (not needed for "
                                                  "qtips, qtips-seg and synthetic).")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N (under torchrun: one GPU per process).")]
Workers = Annotated[int, typer.Option("--workers", help="Threads / processes that read or render the dataset.")]
Size = Annotated[Optional[str], typer.Option("--size", help="HxW of segmentation inputs (default: the preset's, "
                                             "90x160 for BDD100K).")]


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; InputError naming --seeds otherwise."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise InputError(f"--seeds: expected distinct non-negative integers such as 0,1,2,3,4, got {text!r}")
    return seeds


def segmentation_size(text: str | None, task: str, default: tuple[int, int], dataset: str) -> tuple[int, int]:
    """--size for segmentation sets; InputError when given for a fixed-size dataset."""
    if text is None:
        return default
    if task != "segment" or dataset == "qtips-seg":
        raise InputError(f"--size: {dataset} images have a fixed size ({default[0]}x{default[1]})")
    size = opt.parse_size(text, "--size")
    if len(size) != 2:
        raise InputError(f"--size: expected HxW such as 90x160, got {text!r}")
    return size[0], size[1]


def show_warnings() -> None:
    """Print data warnings as one ``warning:`` line each."""
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 (warnings API)
        typer.echo(f"warning: {message}", err=True)

    warnings.showwarning = show
    warnings.simplefilter("always", DataWarning)


@app.command()
def train(
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
    model: opt.Model = "hamiltonian",
    blocks: opt.Blocks = None,
    channels: opt.Channels = None,
    nonlocal_op: opt.Nonlocal = None,
    layout: opt.Layout = "thesis",
    s: opt.S = None,
    stages: opt.Stages = None,
    pool: opt.Pool = None,
    h: opt.H = None,
) -> None:
    """Train a network with the thesis recipe; writes config.json, metrics.jsonl, curves.png, last.pt, best.pt."""
    info = dataset_info(dataset)
    config = opt.model_config(info.preset, model, blocks, channels, nonlocal_op, s, stages, pool, h, layout=layout)
    image_size = segmentation_size(size, config.task, config.image_size, dataset)
    config = replace(config, image_size=image_size)
    recipe = RECIPES[dataset]
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
        log(f"{dataset}: {len(train_split)} training and {len(val_split)} validation images "
            f"{train_split.image_size[0]}x{train_split.image_size[1]}; {ctx.world} process(es) on {ctx.device}; "
            f"lr {recipe.lr} with ×{recipe.gamma} after epochs {list(recipe.milestone_epochs())} of {recipe.epochs}")
        histories = {}
        for run_seed in seed_list:
            run_out = out / f"seed-{run_seed}" if seeds is not None else out
            spec = RunSpec(dataset, None if data_dir is None else str(data_dir.resolve()), image_size, config,
                           recipe, run_seed, train_fraction)
            histories[run_seed] = fit(spec, train_split, val_split, run_out, ctx, resume, info.class_names, log)
        if seeds is not None and ctx.is_main:
            result = median_summary(histories)
            write_json(out / "seeds.json", result)
            log("median over seeds " + ", ".join(map(str, seed_list)) + ": " +
                "  ".join(f"{k} {v:.4f}" for k, v in result["median"].items()))
            print(json.dumps({"seeds": seed_list, "median": result["median"]}))
    finally:
        distributed.teardown()
