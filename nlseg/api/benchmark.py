"""``benchmark``: every export format of one model, judged on accuracy and speed side by side (``nlseg benchmark``).

Each row is a format at a precision (``onnx-int8``: ONNX Runtime running the QDQ INT8 export).
For each, the model is exported into the run folder, loaded, and checked against the torch fp32
model on the same frames: the share of pixels whose arg-max agrees, the largest logit
difference, and with labelled data the mIoU (CamVid: its 11 classes) and its drop against torch
fp32. Then the forward pass is timed (p50 / p99 over ``iters`` passes on random input of the
benchmark's size) and ``nlseg infer`` runs end to end on a clip (decode, preprocess, forward,
labels, drawing, encoding; ``fps``). A format that cannot run here is a row with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from nlseg.contract import normalise, preprocess
from nlseg.contract.calibration import DEFAULT_FRAMES, calibration_frames
from nlseg.contract.limits import check_size
from nlseg.data.labels import ClassGroups
from nlseg.errors import InputError
from nlseg.io import output_dir, write_image, write_text
from nlseg.runtime.backend import Backend
from nlseg.runtime.device import describe_device, resolve_device
from nlseg.runtime.load import open_backend
from nlseg.runtime.timing import latency_stats
from nlseg.train.metrics import confusion_matrix, grouped_labels, mean_iou

#: row name -> (export format, backend, precision)
FORMATS: dict[str, tuple[str, str, str]] = {
    "torch": ("torch", "torch", "fp32"),
    "torch-bf16": ("torch", "torch", "bf16"),
    "onnx": ("onnx", "onnxruntime", "fp32"),
    "onnx-int8": ("onnx", "onnxruntime", "int8"),
    "openvino": ("openvino", "openvino", "fp32"),
    "openvino-bf16": ("openvino", "openvino", "bf16"),
    "openvino-int8": ("openvino", "openvino", "int8"),
    "engine-fp16": ("engine", "tensorrt", "fp16"),
    "engine-int8": ("engine", "tensorrt", "int8"),
}
DEFAULT_FORMATS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-bf16", "openvino-int8", "engine-fp16")
#: the arg-max agreement with torch fp32 a row needs to pass, by precision
AGREEMENT_FLOOR = {"fp32": 0.999, "fp16": 0.99, "bf16": 0.99, "int8": 0.95}
STATUSES = ("passed", "validation failed", "export failed", "skipped")
DATA_KINDS = ("camvid", "folder")
LOGIT_FRAMES = 2  # frames whose full logits are compared (the arg-max is compared on every frame)
ROUNDS = 5  # the timed passes of all formats are interleaved in this many rounds
INFER_ROUNDS = 2  # nlseg infer runs per format, interleaved; the row shows the best


@dataclass
class Row:
    """One format's result; None where it was not measured (see ``note``)."""

    format: str
    precision: str
    status: str
    size_mb: float | None = None
    miou: float | None = None
    miou_drop: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    min_ms: float | None = None
    fps: float | None = None
    note: str = ""


@dataclass
class EvalFrames:
    """Frames to score: (N, 3, H, W) float32 model input, masks (N, H, W) or None, and what they are."""

    inputs: np.ndarray
    masks: torch.Tensor | None
    groups: ClassGroups | None
    description: str
    calibration: Path | None = None  # a folder of training images for INT8 calibration, when the data has one


@dataclass
class BenchmarkResult:
    """The rows, the run folder and the files written there."""

    rows: list[Row]
    out_dir: Path
    markdown: Path
    json_file: Path
    header: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"rows": [asdict(r) for r in self.rows], **self.header}


def parse_formats(text: str | None) -> list[str]:
    """Comma-separated row names (default :data:`DEFAULT_FORMATS`); InputError naming ``formats``."""
    names = list(DEFAULT_FORMATS) if text is None else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise InputError(f"unknown format {unknown[0] if unknown else text!r}; expected a comma-separated list of "
                         f"{', '.join(FORMATS)}", param="formats")
    return list(dict.fromkeys(names))


def parse_data(text: str) -> tuple[str, Path]:
    """``camvid:DIR`` or ``folder:DIR`` -> (kind, folder); InputError naming ``data``."""
    kind, sep, folder = text.partition(":")
    if not sep or kind not in DATA_KINDS or not folder:
        raise InputError(f"expected camvid:DIR or folder:DIR, got {text!r}", param="data")
    path = Path(folder)
    if not path.is_dir():
        raise InputError(f"{path}: no such folder", param="data")
    return kind, path


def eval_frames(data: str | None, split: str, size: tuple[int, int], info: Any, limit: int,
                clip: Path) -> EvalFrames:
    """Up to ``limit`` frames (evenly spread) of ``data``'s ``split`` with masks, or of ``clip`` without."""
    if data is None:
        frames = calibration_frames(clip, limit)
        return EvalFrames(preprocess(frames, size, info), None, None, f"{len(frames)} frames of {clip.name} (no labels)")
    kind, folder = parse_data(data)
    try:
        return _labelled_frames(kind, folder, split, size, info, limit)
    except InputError as exc:
        if exc.param == "data_dir":  # the loaders' name for the folder ``data`` names here
            exc.param = "data"
        raise


def _labelled_frames(kind: str, folder: Path, split: str, size: tuple[int, int], info: Any, limit: int) -> EvalFrames:
    if kind == "camvid":
        from nlseg.data.camvid import camvid_layout, load_camvid
        from nlseg.data.labels import CAMVID_SCORING

        loaded, groups = load_camvid(folder, split, size, workers=2, param="split"), CAMVID_SCORING
        try:
            train: Path | None = camvid_layout(folder, "train").images
        except InputError:  # a copy without the train split: INT8 calibrates on the clip
            train = None
    else:
        from nlseg.data.segfolder import folder_layout, load_pairs

        loaded, groups = load_pairs(folder_layout(folder, split), size, 19, workers=2), None
        train = folder_layout(folder, "train").images
    index = torch.from_numpy(np.unique(np.linspace(0, len(loaded) - 1, min(limit, len(loaded))).round().astype(np.int64)))
    chosen = loaded.subset(index)
    mean, std = info.normalization.tensors
    inputs = normalise(chosen.images, mean, std).numpy()
    calibration = train if train is not None and train.is_dir() and split != "train" else None
    return EvalFrames(inputs, chosen.targets, groups, f"{kind} {split}: {len(chosen)} of {len(loaded)} frames at "
                      f"{size[0]}x{size[1]}", calibration)


def score(labels: np.ndarray, frames: EvalFrames, num_classes: int) -> float | None:
    """mIoU (in ``frames.groups`` when set) of predicted labels against the frames' masks; None without masks."""
    if frames.masks is None:
        return None
    pred, target = torch.from_numpy(labels.astype(np.int64)), frames.masks
    classes = num_classes
    if frames.groups is not None:
        pred, target = grouped_labels(pred, frames.groups), grouped_labels(target, frames.groups)
        classes = len(frames.groups.names)
    return mean_iou(confusion_matrix(pred, target, classes))


def _predict(backend: Backend, inputs: np.ndarray) -> np.ndarray:
    return np.concatenate([backend.predict(inputs[i:i + 1]) for i in range(len(inputs))])


def _size_mb(path: Path) -> float:
    files = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]
    return round(sum(f.stat().st_size for f in files if f.is_file()) / 2**20, 3)


def _calibration_folder(frames: EvalFrames, calib: Path | None, clip: Path, out_dir: Path, count: int) -> Path:
    """A folder of calibration images for TensorRT (which reads folders): ``calib``, the data's train images,
    or ``count`` frames of ``clip`` written to ``out_dir/calib``."""
    if calib is not None and calib.is_dir():
        return calib
    if calib is None and frames.calibration is not None:
        return frames.calibration
    folder = out_dir / "calib"
    for i, frame in enumerate(calibration_frames(calib or clip, count)):
        write_image(folder / f"{i:04d}.png", frame)
    return folder


class _Exporter:
    """Exports the model once per export format and precision into the run folder, keeping what it wrote."""

    def __init__(self, weights: Path, out_dir: Path, size: tuple[int, int], calib: Path | None, calib_frames: int,
                 frames: EvalFrames, clip: Path) -> None:
        self.weights, self.out_dir, self.size = weights, out_dir, size
        self.calib, self.calib_frames, self.frames, self.clip = calib, calib_frames, frames, clip
        self.done: dict[tuple[str, str], Path] = {}

    def __call__(self, fmt: str, precision: str) -> Path:
        from nlseg.api.export import export_model

        if fmt == "torch":
            return self.weights
        int8 = precision == "int8"
        key = (fmt, precision if fmt == "engine" or int8 else "float")  # fp32 and bf16 OpenVINO rows share one IR
        if key in self.done:
            return self.done[key]
        if fmt == "openvino":
            for package in ("openvino", "nncf") if int8 else ("openvino",):
                if importlib.util.find_spec(package) is None:
                    raise _Skip(f"{package} is not installed: pip install 'nlseg[openvino]'")
        suffix = {"onnx": ".onnx", "openvino": ".xml", "engine": ".engine"}[fmt]
        target = self.out_dir / f"model{'-' + precision if fmt == 'engine' or int8 else ''}{suffix}"
        calib_source = self.calib if self.calib is not None else self.frames.calibration
        if fmt == "engine":
            _needs_gpu()
            h, w = self.size
            options: dict[str, Any] = {"half": precision == "fp16", "opt_shape": (1, 3, h, w)}
            if int8:
                options.update(int8=True, calib_data=_calibration_folder(self.frames, self.calib, self.clip,
                                                                         self.out_dir, self.calib_frames))
        else:
            options = {"int8": True, "calib_data": calib_source, "calib_frames": self.calib_frames} if int8 else {}
        path = export_model(self.weights, target, fmt, input_size=self.size, **options).path
        self.done[key] = path
        return path


def _needs_gpu() -> None:
    from nlseg.tensorrt.compat import import_tensorrt

    if not torch.cuda.is_available():
        raise _Skip("TensorRT engines need an NVIDIA GPU; this machine has none")
    try:
        import_tensorrt("TensorRT engines")
    except InputError as exc:
        raise _Skip(str(exc)) from None


class _Skip(Exception):
    """A format that cannot run on this machine, and why."""


def benchmark(
    weights: str | os.PathLike | None = None,
    *,
    data: str | None = None,
    split: str = "val",
    imgsz: tuple[int, int] | None = None,
    formats: list[str] | None = None,
    device: str | None = None,
    out: str | os.PathLike | None = None,
    limit: int = 30,
    iters: int = 50,
    warmup: int = 10,
    clip: str | os.PathLike | None = None,
    infer: bool = True,
    calib: str | os.PathLike | None = None,
    calib_frames: int = DEFAULT_FRAMES,
    on_row: Callable[[Row], None] | None = None,
    command: str = "",
) -> BenchmarkResult:
    """Benchmark ``weights`` (a checkpoint; default the bundled weights) in each of ``formats`` (row names of
    :data:`FORMATS`; default :data:`DEFAULT_FORMATS`) at ``imgsz`` (default: the model's input size).

    ``data``: ``camvid:DIR`` or ``folder:DIR`` (image + mask folders) to score mIoU on ``split`` (``limit``
    frames, evenly spread); without it ``limit`` frames of ``clip`` (default: the bundled clip) are compared
    with torch fp32, unscored. INT8 rows calibrate on ``calib_frames`` frames of ``calib`` (a folder or a
    video), else the data's train images (when another split is scored), else the clip. ``infer``: run
    ``nlseg infer`` on ``clip`` per row (``fps``, the best of :data:`INFER_ROUNDS` interleaved runs). Writes the
    exports, each row's ``infer/<format>/<run>`` outputs,
    ``benchmark.md`` and ``benchmark.json`` into the folder ``out``. ``on_row`` is called with each row at the end.
    """
    from nlseg.assets import SAMPLE_CLIP, default_weights

    for name, value in (("limit", limit), ("iters", iters), ("calib_frames", calib_frames)):
        if value < 1:
            raise InputError(f"need at least 1, got {value}", param=name)
    if warmup < 0:
        raise InputError(f"need 0 or more, got {warmup}", param="warmup")
    weights_path = Path(weights) if weights is not None else default_weights()
    if weights_path.suffix.lower() not in (".pt", ".pth"):
        raise InputError(f"{weights_path}: the benchmark exports a checkpoint (.pt) into every format")
    names = parse_formats(None if formats is None else ",".join(formats))
    clip_path = Path(clip) if clip is not None else SAMPLE_CLIP
    if not clip_path.is_file():
        raise InputError(f"{clip_path}: no such video", param="clip")
    calib_path = Path(calib) if calib is not None else None
    if calib_path is not None and not calib_path.exists():
        raise InputError(f"{calib_path}: no such folder or video", param="calib")
    if out is None:
        raise InputError("name the run folder", param="out")
    torch_device = resolve_device(device)
    reference = open_backend(weights_path, "torch", torch_device, "fp32")
    try:
        size = check_size(imgsz or reference.info.input_size, reference.info.min_side, "imgsz")
        if not reference.info.dynamic and size != reference.info.input_size:
            raise InputError(f"{weights_path} has a fixed input size", param="imgsz")
        frames = eval_frames(data, split, size, reference.info, limit, clip_path)
        num_classes = len(reference.info.class_names)
        ref_labels = _predict(reference, frames.inputs)
        ref_logits = reference.logits(frames.inputs[:LOGIT_FRAMES])
    finally:
        reference.close()
    ref_miou = score(ref_labels, frames, num_classes)
    with output_dir(out) as out_dir:  # a run that fails before writing anything leaves no empty folder
        return _run(names, weights_path, out_dir, size, calib_path, calib_frames, frames, clip_path, ref_labels,
                    ref_logits, ref_miou, num_classes, torch_device, iters, warmup, infer, on_row, command)


def _run(names: list[str], weights_path: Path, out_dir: Path, size: tuple[int, int], calib_path: Path | None,
         calib_frames: int, frames: EvalFrames, clip_path: Path, ref_labels: np.ndarray, ref_logits: np.ndarray,
         ref_miou: float | None, num_classes: int, torch_device: torch.device, iters: int, warmup: int, infer: bool,
         on_row: Callable[[Row], None] | None, command: str) -> BenchmarkResult:
    """The rows of :func:`benchmark` once the reference is computed, written into ``out_dir``."""
    from nlseg.api.segmenter import Segmenter

    export = _Exporter(weights_path, out_dir, size, calib_path, calib_frames, frames, clip_path)
    rows: list[Row] = []
    opened: list[tuple[Row, Backend]] = []
    try:
        for name in names:
            fmt, backend_name, precision = FORMATS[name]
            row, backend = _validate(name, fmt, backend_name, precision, export, frames, ref_labels, ref_logits,
                                     ref_miou, num_classes, torch_device)
            rows.append(row)
            if backend is not None:
                opened.append((row, backend))
        _time_side_by_side(opened, (1, 3, *size), warmup, iters)
        for run in range(INFER_ROUNDS if infer else 0):  # interleaved, as the forward passes: best of the rounds
            for row, backend in opened:
                fps = Segmenter(backend).infer(clip_path, out_dir / "infer" / row.format / str(run + 1), imgsz=size).fps
                row.fps = max(row.fps or 0.0, round(fps, 2))
    finally:
        for _, backend in opened:
            backend.close()
    for row in rows if on_row is not None else ():
        on_row(row)
    header = {"weights": str(weights_path), "imgsz": list(size), "data": frames.description,
              "device": describe_device(torch_device), "command": command,
              "calibration": str(calib_path or frames.calibration or clip_path), "torch_fp32_miou": ref_miou,
              "timing": f"{iters} forward passes per format in {ROUNDS} interleaved rounds; nlseg infer: best of "
                        f"{INFER_ROUNDS} interleaved runs on {clip_path.name}"}
    markdown = write_text(out_dir / "benchmark.md", to_markdown(rows, header))
    result = BenchmarkResult(rows, out_dir, markdown, out_dir / "benchmark.json", header)
    write_text(result.json_file, json.dumps(result.to_json(), indent=2) + "\n")
    return result


def _validate(name: str, fmt: str, backend_name: str, precision: str, export: _Exporter, frames: EvalFrames,
              ref_labels: np.ndarray, ref_logits: np.ndarray, ref_miou: float | None, num_classes: int,
              device: torch.device) -> tuple[Row, Backend | None]:
    """One row's export, load, check against torch fp32 and score; the open backend, None when it did not load."""
    try:
        path = export(fmt, precision)
    except _Skip as reason:
        return Row(name, precision, "skipped", note=str(reason)), None
    except Exception as exc:  # noqa: BLE001 - the row reports any exporter failure
        return Row(name, precision, "export failed", note=f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"), None
    row = Row(name, precision, "passed", size_mb=_size_mb(path))
    load_precision = precision if backend_name in ("torch", "openvino") else None
    try:
        backend = open_backend(path, backend_name, device, load_precision)
    except InputError as exc:  # this machine cannot run it at that precision (a CPU without bf16, say)
        row.status, row.note = "skipped", str(exc)
        return row, None
    labels = _predict(backend, frames.inputs)
    row.agreement = round(float((labels == ref_labels).mean()), 5)
    row.max_abs_diff = round(float(np.abs(backend.logits(frames.inputs[:LOGIT_FRAMES]) - ref_logits).max()), 5)
    miou = score(labels, frames, num_classes)
    if miou is not None:
        row.miou = round(miou, 4)
        row.miou_drop = round(100 * (ref_miou - miou), 2) if ref_miou is not None else None
    floor = AGREEMENT_FLOOR[backend.precision]
    if row.agreement < floor:
        row.status = "validation failed"
        row.note = f"arg-max agreement {row.agreement:.4f} < {floor} ({backend.precision})"
    return row, backend


def _time_side_by_side(opened: list[tuple[Row, Backend]], shape: tuple[int, int, int, int], warmup: int,
                       iters: int) -> None:
    """p50 / p99 of every backend's forward pass, timed in :data:`ROUNDS` interleaved rounds, so that on a
    shared machine every format meets the same load (ratios measured side by side)."""
    times: dict[int, list[float]] = {i: [] for i in range(len(opened))}
    for _, backend in opened:
        backend.time_forward(shape, warmup, 1)  # the warm-up (its one timed pass is not kept)
    per_round = [iters // ROUNDS + (1 if r < iters % ROUNDS else 0) for r in range(ROUNDS)]
    for count in (c for c in per_round if c):
        for i, (_, backend) in enumerate(opened):
            times[i] += backend.time_forward(shape, 0, count)
    for i, (row, _) in enumerate(opened):
        stats = latency_stats(times[i], 1)
        row.p50_ms, row.p99_ms, row.min_ms = (round(stats[k], 3) for k in ("p50_ms", "p99_ms", "min_ms"))


def _cell(value: Any, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


COLUMNS = (("format", "format", 0), ("precision", "precision", 0), ("status", "status", 0), ("size MB", "size_mb", 2),
           ("mIoU", "miou", 4), ("ΔmIoU (pts)", "miou_drop", 2), ("agreement", "agreement", 4),
           ("max Δlogit", "max_abs_diff", 4), ("p50 ms", "p50_ms", 2), ("p99 ms", "p99_ms", 2), ("min ms", "min_ms", 2),
           ("infer fps", "fps", 1), ("note", "note", 0))


def table_cells(row: Row) -> list[str]:
    """A row's cells in :data:`COLUMNS` order."""
    values = asdict(row)
    return [_cell(values[key], digits) for _, key, digits in COLUMNS]


def to_markdown(rows: list[Row], header: dict[str, Any]) -> str:
    """The benchmark table as markdown, under what was run where."""
    lines = [f"# nlseg benchmark: {Path(header['weights']).name} at {header['imgsz'][0]}x{header['imgsz'][1]}", ""]
    if header.get("command"):
        lines.append(f"- command: `{header['command']}`")
    lines += [f"- machine: {header['device']}", f"- accuracy on: {header['data']}",
             f"- INT8 calibration: {header['calibration']}", f"- timing: {header['timing']}",
             "- agreement: share of pixels whose arg-max equals torch fp32's; ΔmIoU: torch fp32 minus the row, "
             "in points; p50/p99: forward pass on 1 image; infer fps: `nlseg infer` end to end on the clip", "",
             "| " + " | ".join(c for c, _, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in table_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"
