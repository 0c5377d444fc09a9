"""``nlseg export``: a checkpoint (or an untrained architecture) to ONNX, or to a TensorRT engine."""

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
from nlseg.tensorrt.build import BuildResult
from nlseg.tensorrt.compat import import_tensorrt
from nlseg.tensorrt.export import EngineRequest, export_engine, write_triton_repository
from nlseg.tensorrt.triton_server import serve_command

FORMATS: tuple[str, ...] = ("onnx", "engine")
SUFFIXES = {"onnx": (".onnx",), "engine": (".engine", ".plan")}
ENGINE_FLAGS: tuple[str, ...] = ("int8", "calib_data", "min_shape", "opt_shape", "max_shape", "workspace",
                                 "timing_cache")
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


def _check_out(out: Path, fmt: str = "onnx") -> None:
    """InputError naming --out when the file cannot be written there (checked before exporting)."""
    if out.suffix.lower() not in SUFFIXES[fmt]:
        raise InputError(f"--out: {out}: expected a file name ending in {' or '.join(SUFFIXES[fmt])} for --format {fmt}")
    if out.is_dir():
        raise InputError(f"--out: {out} is a directory")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as exc:
        raise InputError(f"--out: cannot write to {out.parent} ({exc.strerror or exc})") from None


Weights = Annotated[Optional[Path], typer.Argument(
    help="Checkpoint .pt (default: the bundled demo weights); with --format engine also an nlseg .onnx export.")]
Out = Annotated[Optional[Path], typer.Option("--out", help="Output file: .onnx, or .engine / .plan (default model.onnx / model.engine).")]
Format = Annotated[str, typer.Option("--format", help="Output format: onnx or engine (TensorRT).")]
Trt = Annotated[bool, typer.Option("--trt", help="Build a TensorRT engine (same as --format engine); needs TensorRT >= 10.9 and a GPU.")]
Int8 = Annotated[bool, typer.Option("--int8", help="INT8 engine calibrated on --calib-data (TensorRT 10 only).")]
CalibData = Annotated[Optional[Path], typer.Option("--calib-data", help="Folder of representative images for --int8.")]
MinShape = Annotated[Optional[str], typer.Option("--min-shape", help="Smallest input BxCxHxW the engine accepts (default: --opt-shape).")]
OptShape = Annotated[Optional[str], typer.Option("--opt-shape", help="Input BxCxHxW the engine is tuned for (default: 1xC and the input size).")]
MaxShape = Annotated[Optional[str], typer.Option("--max-shape", help="Largest input BxCxHxW the engine accepts (default: --opt-shape).")]
Workspace = Annotated[Optional[int], typer.Option("--workspace", help="TensorRT workspace limit in MiB (default: TensorRT's).")]
TimingCache = Annotated[Optional[Path], typer.Option("--timing-cache", help="TensorRT timing cache file: read if present, updated after the build.")]
TritonRepo = Annotated[Optional[Path], typer.Option(
    "--triton-repo", help="Also write a Triton Inference Server model repository here (ONNX model, and the engine).")]
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
    out: Out = None,
    fmt: Format = "onnx",
    trt: Trt = False,
    opset: Opset = DEFAULT_OPSET,
    dynamic: Dynamic = None,
    half: Half = False,
    simplify: Simplify = False,
    with_argmax: WithArgmax = False,
    plugin: Plugin = False,
    random: RandomInit = False,
    seed: Seed = 0,
    input_size: InputSize = None,
    int8: Int8 = False,
    calib_data: CalibData = None,
    min_shape: MinShape = None,
    opt_shape: OptShape = None,
    max_shape: MaxShape = None,
    workspace: Workspace = None,
    timing_cache: TimingCache = None,
    triton_repo: TritonRepo = None,
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
    nlseg::PairwiseKernel node per pairwise update; metadata for nlseg infer / profile / check.
    With --trt (--format engine): a TensorRT engine with the PairwiseKernel plugin, and its .engine.json."""
    if fmt not in FORMATS:
        raise InputError(f"--format: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if trt and fmt != "engine" and _given(ctx, "fmt"):
        raise InputError(f"--trt builds an engine; it contradicts --format {fmt}")
    fmt = "engine" if trt else fmt
    if fmt == "engine":
        trt_module = import_tensorrt("--trt" if trt else "--format engine")
    else:
        engine_only = [name for name in ENGINE_FLAGS if _given(ctx, name)]
        if engine_only:
            raise InputError(f"--{engine_only[0].replace('_', '-')}: applies to TensorRT engines (--trt)")
    out = out if out is not None else Path("model.engine" if fmt == "engine" else "model.onnx")
    _check_out(out, fmt)
    if weights is not None and weights.suffix.lower() == ".onnx":
        if fmt != "engine":
            raise InputError(f"{weights}: already an ONNX export; --trt builds it into an engine")
        if random:
            raise InputError(f"{weights}: pass either an ONNX export or --random-init, not both")
        request = _engine_request(half, int8, calib_data, min_shape, opt_shape, max_shape, workspace, timing_cache)
        result = export_engine(trt_module, out, request, onnx_path=weights)
        _report_engine(result)
        if triton_repo is not None:
            _report_repo(triton_repo, write_triton_repository(triton_repo, out.stem, None, result.metadata.model,
                                                              ExportOptions(opset=opset)))
        return
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
    if fmt == "engine":
        request = _engine_request(half, int8, calib_data, min_shape, opt_shape, max_shape, workspace, timing_cache)
        built = export_engine(trt_module, out, request, source=source, options=options,
                              dataset=dataset if random else None)
        _report_engine(built)
        if triton_repo is not None:
            _report_repo(triton_repo, write_triton_repository(triton_repo, out.stem, source, built.metadata.model,
                                                              options, built, dataset if random else None))
        return
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
    if triton_repo is not None:
        _report_repo(triton_repo, write_triton_repository(triton_repo, out.stem, source, meta, options,
                                                          dataset=dataset if random else None))


def _given(ctx: typer.Context, name: str) -> bool:
    return getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")


def _shape(text: str | None, flag: str) -> tuple[int, ...] | None:
    return None if text is None else opt.parse_size(text, flag)


def _engine_request(half: bool, int8: bool, calib_data: Path | None, min_shape: str | None, opt_shape: str | None,
                    max_shape: str | None, workspace: int | None, timing_cache: Path | None) -> EngineRequest:
    if calib_data is not None and not int8:
        raise InputError("--calib-data: calibration data is for --int8")
    return EngineRequest(half=half, int8=int8, calib_data=calib_data, min_shape=_shape(min_shape, "--min-shape"),
                         opt_shape=_shape(opt_shape, "--opt-shape"), max_shape=_shape(max_shape, "--max-shape"),
                         workspace_mb=workspace, timing_cache=timing_cache)


def _report_engine(result: BuildResult) -> None:
    meta = result.metadata
    major, minor = meta.compute_capability
    typing = "strongly typed" if meta.strongly_typed else "builder flags"
    print(f"wrote {result.engine}: TensorRT {meta.tensorrt_version}, {meta.precision} ({typing}), "
          f"{meta.gpu_name} (sm_{major}{minor}), input {meta.profile.describe()}, built in {result.seconds:.1f} s")
    plugin = meta.plugin
    if plugin is not None:
        print(f"{plugin.count} {plugin.namespace}::{plugin.name} v{plugin.version} plugin nodes "
              f"({', '.join(plugin.kernels)}, {plugin.dtype}, ahead-of-time kernel); {len(meta.plugin_layers)} "
              f"plugin layers of {meta.layers} in the engine")
    if meta.lowered_pairwise:
        print(f"{meta.lowered_pairwise} pairwise updates (dot / gaussian) as standard TensorRT layers")
    print(f"metadata {result.metadata_file}; graph TensorRT parsed {result.onnx_file}")


def _report_repo(root: Path, files: list[Path]) -> None:
    models = sorted({p.relative_to(root).parts[0] for p in files})
    print(f"wrote Triton model repository {root}: {', '.join(models)}; serve it with: {serve_command(root)}")
