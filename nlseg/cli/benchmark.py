"""``nlseg benchmark``: every export format of a model, accuracy next to speed (:func:`nlseg.api.benchmark.benchmark`)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from nlseg.api.benchmark import COLUMNS, DEFAULT_FORMATS, FORMATS, benchmark, table_cells
from nlseg.cli import app
from nlseg.cli.console import table_console
from nlseg.cli.infer import next_run_dir
from nlseg.cli.options import parse_hw
from nlseg.contract.calibration import DEFAULT_FRAMES


@app.command("benchmark")
def benchmark_command(
    weights: Annotated[Optional[Path], typer.Argument(help="Checkpoint .pt (default: the bundled weights).")] = None,
    data: Annotated[Optional[str], typer.Option("--data", help="camvid:DIR or folder:DIR (images/SPLIT with masks/SPLIT) "
                                                "to score mIoU on (default: the bundled clip, unscored).")] = None,
    split: Annotated[str, typer.Option("--split", help="Split of --data to score (camvid: also drive splits).")] = "val",
    imgsz: Annotated[Optional[str], typer.Option("--imgsz", help="HxW every format runs at (default: the model's size).")] = None,
    formats: Annotated[Optional[str], typer.Option("--formats", help=f"Comma-separated rows, of {', '.join(FORMATS)} "
                                                   f"(default: {','.join(DEFAULT_FORMATS)}).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or cuda:N for torch and TensorRT "
                                                  "(default: cuda if available).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Run folder (default: a new runs/benchmark/N).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Frames scored and compared with torch fp32 (evenly spread).")] = 30,
    iters: Annotated[int, typer.Option("--iters", help="Timed forward passes per format.")] = 50,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed forward passes first.")] = 10,
    clip: Annotated[Optional[Path], typer.Option("--clip", help="Video nlseg infer runs on end to end (default: the "
                                                 "bundled clip).")] = None,
    no_infer: Annotated[bool, typer.Option("--no-infer", help="Skip the end-to-end nlseg infer run (no fps).")] = False,
    calib: Annotated[Optional[Path], typer.Option("--calib", help="INT8 calibration frames: a folder or a video (default: "
                                                  "the data's train images when another split is scored, else the clip).")] = None,
    calib_frames: Annotated[int, typer.Option("--calib-frames", help="Frames INT8 rows calibrate on.")] = DEFAULT_FRAMES,
    as_json: Annotated[bool, typer.Option("--json", help='End with one JSON line {"rows": [...]}.')] = False,
) -> None:
    """Export the model to every format, check each against torch fp32, score mIoU, time it, run nlseg infer."""
    out_dir = out if out is not None else next_run_dir(Path("runs/benchmark"))
    command = "nlseg " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = benchmark(weights, data=data, split=split, imgsz=parse_hw(imgsz, "--imgsz"),
                       formats=None if formats is None else formats.split(","), device=device, out=out_dir, limit=limit,
                       iters=iters, warmup=warmup, clip=clip, infer=not no_infer, calib=calib, calib_frames=calib_frames,
                       on_row=lambda row: print(f"{row.format}: {row.status}", file=sys.stderr), command=command)
    header = result.header
    table = Table(title=f"{Path(header['weights']).name} at {header['imgsz'][0]}x{header['imgsz'][1]} on "
                        f"{header['device']}; accuracy on {header['data']}", title_justify="left")
    for title, key, _ in COLUMNS:
        table.add_column(title, justify="left" if key in ("format", "precision", "status", "note") else "right")
    for row in result.rows:
        table.add_row(*table_cells(row))
    table_console().print(table)
    print(f"wrote {result.markdown} and {result.json_file}")
    if as_json:
        print(json.dumps({"rows": result.to_json()["rows"]}))
