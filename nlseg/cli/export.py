"""``nlseg export``: a checkpoint (or an untrained architecture) to ONNX."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from nlseg.assets import demo_weights
from nlseg.cli import app
from nlseg.cli import options as opt
from nlseg.errors import InputError
from nlseg.onnx.export import DEFAULT_OPSET, ExportOptions, export_onnx
from nlseg.onnx.weights import SourceModel, from_checkpoint, random_init

FORMATS: tuple[str, ...] = ("onnx",)
MODEL_FLAGS: tuple[str, ...] = ("dataset", "model", "blocks", "channels", "nonlocal_op", "layout", "s", "stages", "pool", "h")


def _source(ctx: typer.Context, weights: Path | None, random: bool, seed: int, flags: dict[str, Any]) -> SourceModel:
    """The model to export: WEIGHTS, the demo weights, or the model flags' architecture under ``seed``."""
    if random:
        if weights is not None:
            raise InputError(f"{weights}: pass either WEIGHTS or --random-init, not both")
        try:
            arch = {k: v for k, v in flags.items() if k != "layout"}
            return random_init(opt.model_config(**arch, layout=flags["layout"]), seed)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    given = [name for name in MODEL_FLAGS
             if getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")]
    if given:
        flag = "--nonlocal" if given[0] == "nonlocal_op" else f"--{given[0].replace('_', '-')}"
        raise InputError(f"{flag}: model flags describe an untrained architecture; add --random-init "
                         "(a checkpoint carries its own architecture)")
    return from_checkpoint(weights if weights is not None else demo_weights())


def _check_out(out: Path) -> None:
    """InputError naming --out when the file cannot be written there (checked before exporting)."""
    if out.suffix.lower() != ".onnx":
        raise InputError(f"--out: {out}: expected a file name ending in .onnx")
    if out.is_dir():
        raise InputError(f"--out: {out} is a directory")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as exc:
        raise InputError(f"--out: cannot write to {out.parent} ({exc.strerror or exc})") from None


Weights = Annotated[Optional[Path], typer.Argument(help="Checkpoint .pt (default: the bundled demo weights).")]
Out = Annotated[Path, typer.Option("--out", help="Output file (.onnx).")]
Format = Annotated[str, typer.Option("--format", help="Output format: onnx.")]
Opset = Annotated[int, typer.Option("--opset", help="ONNX opset, 13 to 20.")]
Dynamic = Annotated[Optional[bool], typer.Option(
    "--dynamic/--no-dynamic", help="Dynamic batch, height, width (default: on for segmenters; classifiers: batch only).")]
Half = Annotated[bool, typer.Option("--half", help="float16 graph (input and logits); distance math stays float32.")]
Simplify = Annotated[bool, typer.Option(
    "--simplify", help="Fold constants and clean up (onnxsim if installed, else the onnxscript optimizer).")]
WithArgmax = Annotated[bool, typer.Option("--with-argmax", help="Add a uint8 'labels' output: the argmax over classes.")]
Plugin = Annotated[bool, typer.Option(
    "--plugin", help="One nlseg::PairwiseKernel node per pairwise update (the TensorRT plugin graph).")]
RandomInit = Annotated[bool, typer.Option("--random-init", help="Export the model flags' architecture, untrained.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of --random-init (recorded: nlseg check rebuilds the weights).")]
InputSize = Annotated[Optional[str], typer.Option(
    "--input-size", help="HxW recorded as the input size (segmenters; the fixed size with --no-dynamic).")]


@app.command()
def export(
    ctx: typer.Context,
    weights: Weights = None,
    out: Out = Path("model.onnx"),
    fmt: Format = "onnx",
    opset: Opset = DEFAULT_OPSET,
    dynamic: Dynamic = None,
    half: Half = False,
    simplify: Simplify = False,
    with_argmax: WithArgmax = False,
    plugin: Plugin = False,
    random: RandomInit = False,
    seed: Seed = 0,
    input_size: InputSize = None,
    dataset: opt.Dataset = "bdd100k",
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
    """Export a model to ONNX: a portable graph of standard operators, or with --plugin one
    nlseg::PairwiseKernel node per pairwise update; metadata for nlseg infer / profile / check."""
    if fmt not in FORMATS:
        raise InputError(f"--format: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    _check_out(out)
    flags = dict(dataset=dataset, model=model, blocks=blocks, channels=channels, nonlocal_op=nonlocal_op,
                 layout=layout, s=s, stages=stages, pool=pool, h=h)
    source = _source(ctx, weights, random, seed, flags)
    if input_size is not None:
        size = opt.parse_size(input_size, "--input-size")
        if len(size) != 2:
            raise InputError(f"--input-size: expected HxW such as 90x160, got {input_size!r}")
        if source.config.task == "classify" and size != source.config.image_size:
            raise InputError(f"--input-size: the classifier's dense head is fixed to "
                             f"{source.config.image_size[0]}x{source.config.image_size[1]}")
        source = replace(source, config=replace(source.config, image_size=(size[0], size[1])))
    options = ExportOptions(graph="plugin" if plugin else "portable", opset=opset, dynamic=dynamic,
                            half=half, simplify=simplify, with_argmax=with_argmax)
    try:
        result = export_onnx(source, out, options, dataset=dataset if random else None)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"--out: cannot write {out} ({exc.strerror or exc})") from None
    meta = result.metadata
    axes = "/".join(meta.dynamic_axes) or "none"
    ops = ", ".join(f"{n} {op}" for op, n in sorted(result.op_counts.items(), key=lambda kv: (-kv[1], kv[0])))
    print(f"wrote {result.path}: {meta.graph} graph, opset {opset}, {meta.precision}, dynamic axes {axes}, "
          f"outputs {', '.join(meta.outputs)}")
    if result.simplified is not None:
        print(result.simplified)
    print(f"{sum(result.op_counts.values())} nodes: {ops}")
