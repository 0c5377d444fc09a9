"""``nlseg export``: a checkpoint (or an untrained architecture) to ONNX, an OpenVINO IR (either also INT8), or
a TensorRT engine (:func:`nlseg.api.export_model`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nlseg.api.export import FORMATS, Exported, export_model
from nlseg.assets import default_weights
from nlseg.cli import app
from nlseg.cli import options as opt
from nlseg.errors import InputError
from nlseg.onnx.export import DEFAULT_OPSET
from nlseg.onnx.source_model import SourceModel, random_init
from nlseg.tensorrt.compat import import_tensorrt
from nlseg.tensorrt.model_repository import serve_command

Weights = Annotated[Optional[Path], typer.Argument(
    help="Checkpoint .pt (default: the bundled default weights); with --format engine also an nlseg .onnx export.")]
Out = Annotated[Optional[Path], typer.Option("--out", help="Output file: .onnx, .xml (OpenVINO; its .bin beside it), or "
                                             ".engine / .plan (default model.onnx / model.xml / model.engine).")]
Format = Annotated[str, typer.Option("--format", help="Output format: onnx, openvino (IR, needs nlseg[openvino]) or engine (TensorRT).")]
Trt = Annotated[bool, typer.Option("--trt", help="Build a TensorRT engine (same as --format engine); needs TensorRT >= 10.9 and a GPU.")]
Int8 = Annotated[bool, typer.Option("--int8", help="INT8 model calibrated on --calib-data: onnx (ONNX Runtime QDQ), "
                                               "openvino (NNCF), engine (TensorRT 10 only).")]
CalibData = Annotated[Optional[Path], typer.Option("--calib-data", help="Representative images for --int8: a folder (engines: "
                                                     "required), or for onnx/openvino also a video (default: the bundled clip).")]
CalibFrames = Annotated[Optional[int], typer.Option("--calib-frames", help="Frames that calibrate an INT8 onnx/openvino model "
                                                      "(default 32, evenly spaced).")]
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
    "--size", "--input-size", help="HxW recorded as the input size (segmenters; the fixed size with --no-dynamic; "
                                   "--input-size: the former name).")]


@app.command()
@opt.with_model_flags
def export(
    ctx: typer.Context,
    model_flags: opt.ModelFlags,
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
    calib_frames: CalibFrames = None,
    min_shape: MinShape = None,
    opt_shape: OptShape = None,
    max_shape: MaxShape = None,
    workspace: Workspace = None,
    timing_cache: TimingCache = None,
    triton_repo: TritonRepo = None,
    dataset: opt.Dataset = "bdd100k",
) -> None:
    """Export a model to ONNX: a portable graph of standard operators, or with --plugin one
    nlseg::PairwiseKernel node per pairwise update; metadata for nlseg infer / profile / check.
    --format openvino: an OpenVINO IR (.xml + .bin) with the same metadata. --int8: INT8 calibrated on real frames.
    With --trt (--format engine): a TensorRT engine with the PairwiseKernel plugin, and its .engine.json."""
    if trt and fmt != "engine" and _given(ctx, "fmt"):
        raise InputError(f"--trt builds an engine; it contradicts --format {fmt}")
    fmt = "engine" if trt else fmt
    if fmt not in FORMATS:
        raise InputError(f"--format: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "engine":
        import_tensorrt("--trt" if trt else "--format engine")  # before anything else: say what is missing
    result = export_model(
        _source(ctx, weights, random, seed, model_flags, dataset), out, fmt, opset=opset, dynamic=dynamic, half=half,
        simplify=simplify, with_argmax=with_argmax, plugin=plugin, input_size=opt.parse_hw(input_size, "--size"),
        int8=int8, calib_data=calib_data, calib_frames=calib_frames, min_shape=_shape(min_shape, "--min-shape"),
        opt_shape=_shape(opt_shape, "--opt-shape"), max_shape=_shape(max_shape, "--max-shape"), workspace=workspace,
        timing_cache=timing_cache, triton_repo=triton_repo, dataset=dataset if random else None)
    _report(result, opset)
    if triton_repo is not None:
        models = sorted({p.relative_to(triton_repo).parts[0] for p in result.repository})
        print(f"wrote Triton model repository {triton_repo}: {', '.join(models)}; serve it with: "
              f"{serve_command(triton_repo)}")


def _source(ctx: typer.Context, weights: Path | None, random: bool, seed: int, flags: opt.ModelFlags,
            dataset: str) -> SourceModel | Path:
    """What to export: WEIGHTS (a checkpoint, or an ONNX export for an engine), the bundled weights, or the
    model flags' architecture under ``seed``."""
    if random:
        if weights is not None:
            raise InputError(f"{weights}: pass either WEIGHTS or --random-init, not both")
        return random_init(flags.config(dataset), seed)
    given = [name for name in (*opt.MODEL_FLAG_NAMES, "dataset") if _given(ctx, name)]
    if given:
        flag = "--nonlocal" if given[0] == "nonlocal_op" else f"--{given[0].replace('_', '-')}"
        raise InputError(f"{flag}: model flags describe an untrained architecture; add --random-init "
                         "(a checkpoint carries its own architecture)")
    return weights if weights is not None else default_weights()


def _given(ctx: typer.Context, name: str) -> bool:
    return getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")


def _quantized(record: dict | None) -> str:
    if record is None:
        return ""
    return (f", INT8 ({record['method']}: {record['weights']} weights, {record['activations']} activations) calibrated "
            f"on {record['frames']} frames of {record['calibration']}")


def _shape(text: str | None, flag: str) -> tuple[int, ...] | None:
    return None if text is None else opt.parse_size(text, flag)


def _report(result: Exported, opset: int) -> None:
    if result.openvino is not None:
        ir = result.openvino
        print(f"wrote {ir.path} and {ir.path.with_suffix('.bin').name}: OpenVINO {ir.openvino_version.split('-')[0]} IR "
              f"of the portable graph, float32 weights{_quantized(ir.metadata.quantization)}"
              + ("" if ir.metadata.quantization else "; it runs at fp32 or bf16, chosen when it is loaded"))
        return
    if result.onnx is not None:
        meta = result.onnx.metadata
        axes = "/".join(meta.dynamic_axes) or "none"
        counts = result.onnx.op_counts
        ops = ", ".join(f"{n} {op}" for op, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        print(f"wrote {result.path}: {meta.graph} graph, opset {opset}, {meta.precision}{_quantized(meta.quantization)}, "
              f"dynamic axes {axes}, outputs {', '.join(meta.outputs)}")
        if result.onnx.simplified is not None:
            print(result.onnx.simplified)
        print(f"{sum(counts.values())} nodes: {ops}")
        return
    built = result.engine
    assert built is not None
    meta = built.metadata
    major, minor = meta.compute_capability
    typing = "strongly typed" if meta.strongly_typed else "builder flags"
    print(f"wrote {built.engine}: TensorRT {meta.tensorrt_version}, {meta.precision} ({typing}), "
          f"{meta.gpu_name} (sm_{major}{minor}), input {meta.profile.describe()}, built in {built.seconds:.1f} s")
    plugin = meta.plugin
    if plugin is not None:
        print(f"{plugin.count} {plugin.namespace}::{plugin.name} v{plugin.version} plugin nodes "
              f"({', '.join(plugin.kernels)}, {plugin.dtype}, ahead-of-time kernel); {len(meta.plugin_layers)} "
              f"plugin layers of {meta.layers} in the engine")
    if meta.lowered_pairwise:
        print(f"{meta.lowered_pairwise} pairwise updates (dot / gaussian) as standard TensorRT layers")
    print(f"metadata {built.metadata_file}; graph TensorRT parsed {built.onnx_file}")
