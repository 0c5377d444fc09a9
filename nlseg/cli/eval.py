"""``nlseg eval CHECKPOINT``: accuracy, or pixel accuracy, mIoU, per-class IoU and the thesis's soft IoU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import torch
import typer
from rich.table import Table

from nlseg.checkpoint import load_model
from nlseg.cli import app
from nlseg.cli.console import table_console
from nlseg.cli.train import DataDir, Device, Size, Workers, segmentation_size, show_warnings
from nlseg.data.registry import DATASETS, Request, dataset_info, load_split
from nlseg.errors import InputError
from nlseg.runtime.device import resolve_device
from nlseg.train.distributed import Context
from nlseg.train.loop import evaluate


@app.command("eval")
def eval_command(
    checkpoint: Annotated[Path, typer.Argument(help="A last.pt or best.pt written by nlseg train.", show_default=False)],
    data_dir: DataDir = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help=f"Evaluate on another dataset: "
                                                   f"{', '.join(DATASETS)} (default: the training set's).")] = None,
    split: Annotated[str, typer.Option("--split", help="train or val (camvid: also test).")] = "val",
    noise_sigma: Annotated[float, typer.Option("--noise-sigma", help="Add Gaussian noise N(0, σ²) to the [0, 1] "
                                               "inputs (thesis Table 5.6: 0.02).")] = 0.0,
    size: Size = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")] = 16,
    device: Device = "auto",
    workers: Workers = 4,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of the metrics.")] = False,
) -> None:
    """Evaluate a checkpoint on the validation (test) split of its dataset or of --dataset / --data-dir."""
    if noise_sigma < 0:
        raise InputError(f"--noise-sigma: must be >= 0, got {noise_sigma}")
    if batch_size < 1:
        raise InputError(f"--batch-size: need at least 1, got {batch_size}")
    model, config, payload = load_model(checkpoint)
    meta = payload.get("meta", {})
    mean = payload.get("input_mean")
    if not isinstance(mean, torch.Tensor):
        raise InputError(f"{checkpoint}: no input_mean entry (not written by nlseg train)")
    name = dataset or meta.get("dataset")
    if name is None:
        raise InputError(f"--dataset: {checkpoint} does not name its dataset; pass --dataset")
    info = dataset_info(name, "--dataset")
    if split not in info.splits:
        raise InputError(f"--split: {name} has {' and '.join(info.splits)}, not {split!r}")
    if data_dir is None and dataset is None and meta.get("data_dir"):
        data_dir = Path(meta["data_dir"])
    # Its training frames' size; on another dataset with frames of its own size (CamVid), those.
    trained_size = tuple(meta.get("image_size", config.image_size))
    image_size = segmentation_size(size, config.task, info.size if info.size and name != meta.get("dataset")
                                   else trained_size, name)
    show_warnings()
    data = load_split(name, Request(split, data_dir, image_size, workers))
    if data.task != config.task or data.num_classes != config.num_classes:
        raise InputError(f"--dataset: {checkpoint} is a {config.num_classes}-class {config.task} network; "
                         f"{name} is a {data.num_classes}-class {data.task} set")
    ctx = Context(0, 1, resolve_device(device))
    # Noise its recipe draws every epoch (Q-tips: σ = 0.3, clipped): here one fixed draw of it.
    input_noise = float(payload.get("run", {}).get("recipe", {}).get("input_noise", 0.0)) if name == meta.get(
        "dataset") else 0.0
    scores = evaluate(model.to(ctx.device), data, mean, batch_size, ctx, noise_sigma, per_class=True,
                      groups=info.scored_as, input_noise=input_noise)
    result = {"checkpoint": str(checkpoint), "dataset": name, "split": split, "images": len(data),
              "noise_sigma": noise_sigma, "input_noise": input_noise, **scores}
    class_names = (info.scored_as.names if info.scored_as else info.class_names) or tuple(
        str(i) for i in range(config.num_classes))
    if "per_class_iou" in result:
        result["per_class_iou"] = dict(zip(class_names, result["per_class_iou"]))

    console = table_console()
    console.print(f"{checkpoint} on {name} {split}: {len(data)} images, noise σ = {noise_sigma}"
                  + (f", the recipe's input noise σ = {input_noise} (clipped, one fixed draw)" if input_noise else ""))
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key in ("loss", "accuracy", "pixel_accuracy", "miou", "soft_iou"):
            table.add_row(key + (" (thesis, soft)" if key == "soft_iou" else ""),
                          "n/a" if value is None else f"{value:.4f}")
    for cls, value in result.get("per_class_iou", {}).items():
        table.add_row(f"  IoU {cls}", "n/a" if value is None else f"{value:.4f}")
    console.print(table)
    if as_json:
        print(json.dumps(result))
