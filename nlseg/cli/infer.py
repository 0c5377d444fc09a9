"""``nlseg infer SOURCE``: segment a video, image, folder, glob, webcam or stream (:meth:`Segmenter.infer`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nlseg.api import load
from nlseg.assets import SAMPLE_CLIP, default_weights
from nlseg.cli import app
from nlseg.cli.options import parse_hw
from nlseg.cli.signals import signals_stop_once
from nlseg.errors import InputError
from nlseg.runtime.device import resolve_device
from nlseg.runtime.load import half_for
from nlseg.runtime.video_writer import CODECS
from nlseg.serve.client import is_server_url


def next_run_dir(root: Path) -> Path:
    """runs/infer/1, runs/infer/2, …: the first number not taken."""
    taken = {int(p.name) for p in root.iterdir() if p.name.isdigit()} if root.is_dir() else set()
    return root / str(next(i for i in range(1, len(taken) + 2) if i not in taken))


@app.command()
def infer(
    source: Annotated[Optional[str], typer.Argument(
        help="Video file, image, folder, glob, webcam index or rtsp/http URL (default: the bundled sample clip).",
        show_default=False)] = None,
    weights: Annotated[Optional[str], typer.Option("--weights", help="Checkpoint .pt, .onnx, OpenVINO .xml or .engine (default: the bundled weights), or a served model grpc://HOST:8001/nlseg, http://HOST:8000/nlseg (nlseg serve).")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="torch | onnxruntime | openvino | tensorrt (default: from the weights file; openvino also runs .onnx).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda if available).")] = None,
    half: Annotated[bool, typer.Option("--half", help="fp16 on CUDA, bf16 on CPU (checkpoints on the torch backend, and openvino: bf16; refused for onnxruntime and .engine files).")] = False,
    imgsz: Annotated[Optional[str], typer.Option("--imgsz", help="Inference size HxW (default: the model's training size).")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Frames per forward pass.")] = 1,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: a new runs/infer/N).")] = None,
    opacity: Annotated[float, typer.Option("--opacity", help="Overlay opacity in [0, 1].")] = 0.5,
    save_masks: Annotated[bool, typer.Option("--save-masks", help="Also write uint8 train-id PNGs to OUT/masks/.")] = False,
    no_video: Annotated[bool, typer.Option("--no-video", help="Do not write the annotated video.")] = False,
    codec: Annotated[str, typer.Option("--codec", help="Annotated video: h264 (MP4 that browsers play), vp9 (WebM) "
                                                       "or mp4v (OpenCV's MPEG-4 Part 2).")] = "h264",
    vid_stride: Annotated[int, typer.Option("--vid-stride", help="Segment every N-th video frame.")] = 1,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="Capture the forward pass as a CUDA graph (torch and tensorrt backends).")] = False,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Seconds a served model (grpc:// or http:// --weights) may take per request (default: no limit).")] = None,
) -> None:
    """Segment SOURCE and write annotated video/images, optional masks and OUT/summary.json."""
    with signals_stop_once("finishing the frames done so far; a third signal quits without them"):
        _infer(source, weights, backend, device, half, imgsz, batch, out, opacity, save_masks, no_video, codec,
               vid_stride, cuda_graph, timeout)


def _infer(source: Optional[str], weights: Optional[str], backend: Optional[str], device: Optional[str], half: bool,
           imgsz: Optional[str], batch: int, out: Optional[Path], opacity: float, save_masks: bool, no_video: bool,
           codec: str, vid_stride: int, cuda_graph: bool, timeout: Optional[float]) -> None:
    """The body of :func:`infer`."""
    source = source if source is not None else str(SAMPLE_CLIP)
    size = parse_hw(imgsz, "--imgsz")
    remote = is_server_url(weights)
    segmenter = load(weights if remote or weights is None else Path(weights), backend=backend, device=device,
                     precision=None if remote and not half else _half(half, weights, backend, device),
                     cuda_graph=cuda_graph, timeout=timeout)
    out_dir = out if out is not None else next_run_dir(Path("runs/infer"))
    err = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, console=err, disable=not err.is_terminal) as progress:
        task = progress.add_task("segmenting", total=None, rate="")

        def advance(n: int) -> None:
            progress.advance(task, n)
            speed = progress.tasks[task].speed
            if speed:
                progress.update(task, rate=f"{speed:.1f} frames/s")

        result = segmenter.infer(source, out_dir, imgsz=size, batch=batch, opacity=opacity, save_masks=save_masks,
                                 video=not no_video, vid_stride=vid_stride, codec=codec, on_frames=advance,
                                 on_start=lambda total: progress.update(task, total=total))
    report = result.report
    for problem in report.problems:
        print(f"warning: {problem}", file=sys.stderr)
    for skipped in result.summary["skipped"]:
        print(f"note: skipped {skipped}", file=sys.stderr)
    for note in result.summary["stale_temps"]:
        print(f"note: {note}", file=sys.stderr)
    for file, name in result.summary["renamed"].items():
        print(f"note: {file} is written as {name} (another input has the same name)", file=sys.stderr)
    videos = [p for p in report.outputs if p.suffix in CODECS.values()]
    what = ", ".join(str(p) for p in videos) if videos else f"{out_dir}"
    print(f"{'Interrupted: ' if report.interrupted else ''}segmented {report.frames} frames at {result.fps:.1f} "
          f"frames/s end to end; saved {what}; summary {result.summary_path}")
    if report.interrupted:
        raise typer.Exit(130)
    if report.frames == 0:
        raise InputError(f"{source}: nothing could be read")
    if report.problems:
        raise typer.Exit(1)


def _half(half: bool, weights: str | None, backend: str | None, device: str | None) -> str | None:
    """``--half``'s precision: fp16 on CUDA, bf16 on the CPU for a checkpoint, bf16 on OpenVINO; refused for
    ONNX Runtime exports, engines and servers."""
    if not half:
        return None
    if is_server_url(weights):
        raise InputError(f"--half: {weights} is a served model; its precision is the server's (nlseg serve WEIGHTS)")
    return half_for(Path(weights) if weights is not None else default_weights(), backend, resolve_device(device))
