"""``nlseg eval CHECKPOINT``: accuracy, or pixel accuracy, mIoU, per-class IoU and the thesis's soft IoU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from nlseg.analysis.confusion import plot_confusion
from nlseg.api.training import evaluate
from nlseg.cli import app
from nlseg.cli import options as opt
from nlseg.cli.console import table_console
from nlseg.cli.train import DataDir, Device, Size, Workers, show_warnings
from nlseg.data.registry import DATASETS
from nlseg.errors import InputError


@app.command("eval")
def eval_command(
    checkpoint: Annotated[Path, typer.Argument(help="A last.pt or best.pt written by nlseg train.", show_default=False)],
    data_dir: DataDir = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help=f"Evaluate on another dataset: "
                                                   f"{', '.join(DATASETS)} (default: the training set's).")] = None,
    split: Annotated[Optional[str], typer.Option("--split", help="train or val (default: the split the run "
                                                 "validated on, else val); camvid: also test, and drive splits "
                                                 "such as train+val:0006R0 (only that drive) or train+val:-0006R0 "
                                                 "(every drive but it).")] = None,
    noise_sigma: Annotated[float, typer.Option("--noise-sigma", help="Add Gaussian noise N(0, σ²) to the [0, 1] "
                                               "inputs (thesis Table 5.6: 0.02).")] = 0.0,
    size: Size = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")] = 16,
    device: Device = "auto",
    workers: Workers = 4,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of the metrics.")] = False,
    confusion: Annotated[Optional[Path], typer.Option("--confusion", help="Also write the confusion matrix "
                                                      "(each label's row in % of its pixels) as this PNG.",
                                                      show_default=False)] = None,
) -> None:
    """Evaluate a checkpoint on the validation (test) split of its dataset or of --dataset / --data-dir."""
    show_warnings()
    if confusion is not None and confusion.suffix.lower() != ".png":
        raise InputError(f"{confusion}: the confusion matrix is written as PNG; give a .png path", param="confusion")
    result = evaluate(checkpoint, dataset=dataset, data_dir=data_dir, split=split, size=opt.parse_hw(size, "--size"),
                      noise_sigma=noise_sigma, batch_size=batch_size, device=device, workers=workers)
    name, input_noise = result["dataset"], result["input_noise"]
    console = table_console()
    console.print(f"{checkpoint} on {name} {result['split']}: {result['images']} images, noise σ = {noise_sigma}"
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
    if confusion is not None:
        matrix = result["confusion"]
        plot_confusion(matrix["counts"], matrix["classes"], confusion,
                       f"{checkpoint} on {name} {result['split']} ({result['images']} images)")
        console.print(f"wrote {confusion}")
    if as_json:
        print(json.dumps(result))
