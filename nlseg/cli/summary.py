"""``nlseg summary``: parameters and multiply-adds of an architecture, per layer."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from nlseg.analysis import model_cost
from nlseg.cli import app
from nlseg.cli.console import table_console
from nlseg.cli import options as opt
from nlseg.errors import InputError
from nlseg.nn.config import build_model


def _count(value: int) -> str:
    """1234567 -> '1.23M', 1234567890 -> '1.23G'."""
    if value >= 1e9:
        return f"{value / 1e9:,.2f}G"
    return f"{value / 1e6:,.2f}M" if value >= 10_000 else f"{value:,}"


@app.command()
@opt.with_model_flags
def summary(
    model_flags: opt.ModelFlags,
    dataset: opt.Dataset = "cifar10",
    input_size: Annotated[Optional[str], typer.Option(
        "--size", "--input-size", help="HxW to count at (default: the preset's size; --input-size: the former name).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line: params, macs, macs_executed.")] = False,
) -> None:
    """Print parameters and multiply-adds per layer: 'MACs' counts pairwise products as if the
    N×M matrix were formed (thesis Tables 6.1, 6.2), 'executed' what nlseg actually runs."""
    config = model_flags.config(dataset)
    size = config.image_size
    parsed = opt.parse_hw(input_size, "--size")
    if parsed is not None:
        if config.task == "classify" and parsed != config.image_size:
            raise InputError(f"--size: the {dataset} classifier's dense head is fixed to "
                             f"{config.image_size[0]}x{config.image_size[1]}")
        size = parsed
    net = build_model(config)
    cost = model_cost(net, (1, config.in_channels, *size))

    console = table_console()
    nonlocal_text = "none" if config.nonlocal_kernel is None else (
        f"{config.nonlocal_kernel} (s={config.s}, stages={config.stages}, pool={config.pool})")
    title = f"{config.arch} ({config.layout}) on {dataset} {size[0]}x{size[1]}, Nonlocal: {nonlocal_text}"
    table = Table(title=title, title_justify="left")
    for column in ("layer", "type", "output", "params", "MACs", "MACs executed"):
        table.add_column(column, justify="right" if column in ("params", "MACs", "MACs executed") else "left")
    for row in cost.layers:
        table.add_row(row.name, row.kind, "x".join(map(str, row.output_shape[1:])), f"{row.params:,}",
                      _count(row.macs), _count(row.macs_executed))
    table.add_section()
    table.add_row("total", "", "", f"{cost.params:,}", _count(cost.macs), _count(cost.macs_executed))
    console.print(table)
    if as_json:
        print(json.dumps({"params": cost.params, "macs": cost.macs, "macs_executed": cost.macs_executed}))
