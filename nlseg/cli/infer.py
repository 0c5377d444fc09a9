"""``nlseg infer SOURCE``: segment a video, image, folder, glob, webcam or stream."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nlseg.assets import demo_weights
from nlseg.cli import app
from nlseg.cli.options import parse_size
from nlseg.errors import InputError
from nlseg.io import atomic_path
from nlseg.runtime.device import resolve_device
from nlseg.runtime.load import open_backend
from nlseg.runtime.pipeline import InferOptions, run_inference
from nlseg.runtime.sources import ImageInput, VideoInput, resolve_source


def next_run_dir(root: Path) -> Path:
    """runs/infer/1, runs/infer/2, …: the first number not taken."""
    root.mkdir(parents=True, exist_ok=True)
    taken = {int(p.name) for p in root.iterdir() if p.name.isdigit()}
    return root / str(next(i for i in range(1, len(taken) + 2) if i not in taken))


@app.command()
def infer(
    source: Annotated[str, typer.Argument(help="Video file, image, folder, glob, webcam index or rtsp/http URL.")],
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Checkpoint .pt or .onnx (default: the bundled demo weights).")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="torch | onnxruntime | tensorrt (default: from the weights file).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda if available).")] = None,
    half: Annotated[bool, typer.Option("--half", help="fp16 on CUDA, bf16 on CPU (torch backend).")] = False,
    imgsz: Annotated[Optional[str], typer.Option("--imgsz", help="Inference size HxW (default: the model's training size).")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Frames per forward pass.")] = 1,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: a new runs/infer/N).")] = None,
    opacity: Annotated[float, typer.Option("--opacity", help="Overlay opacity in [0, 1].")] = 0.5,
    save_masks: Annotated[bool, typer.Option("--save-masks", help="Also write uint8 train-id PNGs to OUT/masks/.")] = False,
    no_video: Annotated[bool, typer.Option("--no-video", help="Do not write the annotated MP4.")] = False,
    vid_stride: Annotated[int, typer.Option("--vid-stride", help="Segment every N-th video frame.")] = 1,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="Capture the forward pass as a CUDA graph (torch and tensorrt backends).")] = False,
) -> None:
    """Segment SOURCE and write annotated video/images, optional masks and OUT/summary.json."""
    # Ctrl-C and SIGTERM finish the outputs written so far, even where SIGINT was inherited ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if batch < 1:
        raise InputError(f"--batch: need at least 1, got {batch}")
    if vid_stride < 1:
        raise InputError(f"--vid-stride: need at least 1, got {vid_stride}")
    if not 0.0 <= opacity <= 1.0:
        raise InputError(f"--opacity: need a value in [0, 1], got {opacity}")
    inputs = resolve_source(source)
    for inp in inputs:
        if isinstance(inp, VideoInput) and len(inputs) == 1:
            inp.open()
    weights_path = weights if weights is not None else demo_weights()
    engine = open_backend(weights_path, backend, resolve_device(device), half=half, cuda_graph=cuda_graph)
    size = engine.info.input_size
    if imgsz is not None:
        parsed = parse_size(imgsz, "--imgsz")
        if len(parsed) != 2:
            raise InputError(f"--imgsz: expected HxW such as 360x640, got {imgsz!r}")
        if not engine.info.dynamic and parsed != engine.info.input_size:
            raise InputError(f"--imgsz: {weights_path} has a fixed input size "
                             f"{engine.info.input_size[0]}x{engine.info.input_size[1]}")
        size = (parsed[0], parsed[1])
    out_dir = out if out is not None else next_run_dir(Path("runs/infer"))
    options = InferOptions(out_dir=out_dir, imgsz=size, batch=batch, opacity=opacity, save_masks=save_masks,
                           write_video=not no_video, vid_stride=vid_stride)

    err = Console(stderr=True)
    for inp in inputs:  # several videos in a folder: open each before any output, so bad files fail early
        if isinstance(inp, VideoInput) and inp.capture is None:
            inp.open()
    total = sum(len(i.paths) if isinstance(i, ImageInput) else (i.frame_count + vid_stride - 1) // vid_stride
                for i in inputs) or None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, console=err, disable=not err.is_terminal) as progress:
        task = progress.add_task("segmenting", total=total, rate="")

        def advance(n: int) -> None:
            progress.advance(task, n)
            speed = progress.tasks[task].speed
            if speed:
                progress.update(task, rate=f"{speed:.1f} frames/s")

        report = run_inference(inputs, engine, options, advance)

    fps = report.frames / report.seconds if report.seconds > 0 else 0.0
    summary = {
        "source": source,
        "frames": report.frames,
        "fps": round(fps, 3),
        "seconds": round(report.seconds, 3),
        "stages": report.times.summary(),
        "backend": engine.name,
        "device": engine.device,
        "device_name": engine.device_name(),
        "precision": engine.precision,
        "weights": str(weights_path),
        "imgsz": list(size),
        "batch": batch,
        "outputs": [str(p) for p in report.outputs],
        "problems": report.problems,
        "interrupted": report.interrupted,
    }
    with atomic_path(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    for problem in report.problems:
        print(f"warning: {problem}", file=sys.stderr)
    videos = [p for p in report.outputs if p.suffix == ".mp4"]
    what = ", ".join(str(p) for p in videos) if videos else f"{out_dir}"
    print(f"{'Interrupted: ' if report.interrupted else ''}segmented {report.frames} frames at {fps:.1f} frames/s "
          f"end to end; saved {what}; summary {out_dir / 'summary.json'}")
    if report.interrupted:
        raise typer.Exit(130)
    if report.problems or report.frames == 0:
        if report.frames == 0:
            raise InputError(f"{source}: nothing could be read")
        raise typer.Exit(1)
