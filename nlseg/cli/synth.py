"""``nlseg synth OUT``: write synthetic driving scenes with BDD100K train-id masks to disk."""

from __future__ import annotations

import math

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nlseg.cli import app
from nlseg.cli.options import parse_size
from nlseg.data.synthetic import COUNTS, write_scenes
from nlseg.data.synthetic.clip import write_clip
from nlseg.contract.limits import check_size
from nlseg.errors import InputError
from nlseg.io import output_dir
from nlseg.runtime.video_writer import CODECS, resolve_codec


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Output folder: OUT/images/{train,val}, OUT/masks/{train,val}.",
                                        show_default=False)],
    train_count: Annotated[int, typer.Option("--train", help="Training scenes.")] = COUNTS["train"],
    val_count: Annotated[int, typer.Option("--val", help="Validation scenes.")] = COUNTS["val"],
    size: Annotated[str, typer.Option("--size", help="HxW, e.g. 90x160 or 720x1280.")] = "90x160",
    seed: Annotated[int, typer.Option("--seed", help="Scene i of a split is a function of (seed, split, i).")] = 0,
    workers: Annotated[int, typer.Option("--workers", help="Rendering processes.")] = 4,
) -> None:
    """Render scenes (PNG) in the image-folder + mask-folder layout that `nlseg train synthetic
    --data-dir OUT` and `nlseg train folder --data-dir OUT` read."""
    hw = parse_size(size, "--size")
    if len(hw) != 2:
        raise InputError(f"--size: expected HxW such as 90x160, got {size!r}")
    for flag, value in (("--train", train_count), ("--val", val_count), ("--workers", workers)):
        if value < (1 if flag == "--workers" else 0):
            raise InputError(f"{flag}: invalid value {value}")
    if seed < 0:
        raise InputError(f"--seed: must be >= 0, got {seed}")
    check_size((hw[0], hw[1]), 1, "size")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress, output_dir(out) as folder:
        for split, count in (("train", train_count), ("val", val_count)):
            task = progress.add_task(f"{split} scenes {hw[0]}x{hw[1]}", total=count)
            write_scenes(folder, split, count, (hw[0], hw[1]), seed, workers,
                         progress=lambda done, t=task: progress.update(t, completed=done))
    print(f"wrote {train_count} training and {val_count} validation scenes ({hw[0]}x{hw[1]}) to {out}")


@app.command("synth-clip")
def synth_clip(
    out: Annotated[Path, typer.Argument(help="Output video (.mp4; .webm for --codec vp9).", show_default=False)],
    scenes: Annotated[int, typer.Option("--scenes", help="Scenes shown in turn.")] = 4,
    seconds: Annotated[float, typer.Option("--seconds", help="Seconds per scene.")] = 2.0,
    size: Annotated[str, typer.Option("--size", help="HxW of the video.")] = "360x640",
    fps: Annotated[float, typer.Option("--fps", help="Frames per second.")] = 15.0,
    seed: Annotated[int, typer.Option("--seed", help="Scenes are a function of (seed, i).")] = 0,
    workers: Annotated[int, typer.Option("--workers", help="Rendering processes.")] = 2,
    codec: Annotated[str, typer.Option("--codec", help="h264 (MP4), vp9 (WebM) or mp4v (MP4).")] = "h264",
) -> None:
    """Render a short synthetic driving clip (each scene slowly zoomed, cross-faded into the next)."""
    hw = parse_size(size, "--size")
    if len(hw) != 2:
        raise InputError(f"--size: expected HxW such as 360x640, got {size!r}")
    for flag, value in (("--seconds", seconds), ("--fps", fps)):
        if not math.isfinite(value) or value <= 0:
            raise InputError(f"{flag}: must be a positive finite number, got {value}")
    if fps > 240:
        raise InputError(f"--fps: at most 240, got {fps:g}")
    if scenes < 1 or workers < 1 or seed < 0:
        raise InputError("--scenes and --workers must be positive, --seed >= 0")
    if hw[0] % 2 or hw[1] % 2:
        raise InputError(f"--size: height and width must be even (MP4 video codecs store 4:2:0 colour in 2x2 "
                         f"blocks), got {hw[0]}x{hw[1]}")
    check_size((hw[0], hw[1]), 16, "size")
    written, _ = resolve_codec(codec)
    if out.suffix.lower() != CODECS[written]:
        raise InputError(f"{out}: --codec {written} writes {CODECS[written]}; give a {CODECS[written]} path")
    path = write_clip(out, scenes, seconds, (hw[0], hw[1]), fps, seed, workers, codec=written)
    print(f"wrote {path}: {scenes} scenes, {hw[0]}x{hw[1]}, {fps:g} fps")
