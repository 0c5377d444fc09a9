"""``nlseg.load(...)`` → :class:`Segmenter`: segment images in Python, run the video pipeline, export, profile."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, Union

import numpy as np

from nlseg.assets import default_weights
from nlseg.contract import ModelInfo, read_image, to_bgr8
from nlseg.contract.limits import check_size, parse_shape
from nlseg.errors import InputError
from nlseg.io import output_dir, remove_stale_temps, write_text
from nlseg.runtime.backend import Backend
from nlseg.runtime.device import resolve_device
from nlseg.runtime.frames import labels_to_frame, overlay, palette_lut
from nlseg.runtime.load import backend_for, half_precision, open_backend
from nlseg.runtime.pipeline import InferOptions, RunReport, run_inference
from nlseg.runtime.probabilities import PROBABILITY_DTYPES, probabilities_to_frame, softmax, store_as
from nlseg.runtime.sources import Sources, VideoInput, resolve_source
from nlseg.runtime.video_writer import resolve_codec

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

Image = Union[str, os.PathLike, np.ndarray, "PILImage"]


def _is_pil(image: Any) -> bool:
    return type(image).__module__.startswith("PIL.")


def to_bgr(image: Image) -> np.ndarray:
    """An image file, a BGR array as OpenCV reads it (gray, BGRA, 16-bit too) or an RGB PIL image → BGR uint8."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if path.is_dir():
            raise InputError(f"{path} is a folder; predict takes image files or arrays (pass a list of paths, or use "
                             "Segmenter.infer for folders)", param="source")
        decoded = read_image(path) if path.is_file() else None
        if decoded is None:
            raise InputError(f"{path}: {'unreadable image' if path.is_file() else 'no such file'}", param="source")
        return decoded
    if _is_pil(image):
        rgb = np.asarray(image.convert("RGB"))
        return np.ascontiguousarray(rgb[:, :, ::-1])
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or image.size == 0 or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise InputError(f"expected an HxW or HxWx{{1,3,4}} image array, got shape {image.shape}", param="source")
        return to_bgr8(image)
    raise InputError(f"expected an image path, a numpy array or a PIL image, got {type(image).__name__}",
                     param="source")


@dataclass(frozen=True)
class InferResult:
    """What :meth:`Segmenter.infer` did: the pipeline's report, the summary it wrote and where."""

    report: RunReport
    summary: dict[str, Any]
    summary_path: Path

    @property
    def fps(self) -> float:
        return self.summary["fps"]


class Segmenter:
    """A segmentation model on a backend (torch, onnxruntime or tensorrt), ready to run.

    Made by :func:`load`. ``predict`` segments images in memory (``predict_proba``: class
    probabilities instead of labels); ``infer`` runs the video
    pipeline on files, folders and streams (what ``nlseg infer`` does); ``export`` and
    ``profile`` do what ``nlseg export`` and ``nlseg profile`` do for this model.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._lut = palette_lut(backend.info.palette)

    @property
    def info(self) -> ModelInfo:
        """What the model expects: classes, palette, input size, normalisation, precision."""
        return self.backend.info

    @property
    def weights(self) -> Path:
        return Path(self.backend.weights)

    def __repr__(self) -> str:
        h, w = self.info.input_size
        return (f"Segmenter({self.weights.name}, backend={self.backend.name}, device={self.backend.device}, "
                f"precision={self.backend.precision}, input {h}x{w}, {len(self.info.class_names)} classes)")

    def input_size(self, imgsz: tuple[int, int] | None = None) -> tuple[int, int]:
        """The size the model runs at: ``imgsz`` if the model accepts it, else its own input size."""
        if imgsz is None:
            return self.info.input_size
        if isinstance(imgsz, str):
            imgsz = parse_shape(imgsz, "imgsz")  # type: ignore[assignment]
        if not isinstance(imgsz, Sequence) or len(imgsz) != 2:
            raise InputError(f"expected (height, width) such as (270, 480), got {imgsz!r}", param="imgsz")
        size = check_size(parse_shape(imgsz, "imgsz"), self.info.min_side, "imgsz")  # type: ignore[arg-type]
        if not self.info.dynamic and size != self.info.input_size:
            h, w = self.info.input_size
            raise InputError(f"{self.weights} has a fixed input size {h}x{w}", param="imgsz")
        return size

    def _batches(self, source: Image | Sequence[Image], imgsz: tuple[int, int] | None,
                 batch: int) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
        """(BGR images, their normalised model input) ``batch`` images at a time."""
        images = [to_bgr(image) for image in source] if isinstance(source, (list, tuple)) else [to_bgr(source)]
        if batch < 1:
            raise InputError(f"need at least 1, got {batch}", param="batch")
        size = self.input_size(imgsz)
        for start in range(0, len(images), batch):
            chunk = images[start:start + batch]
            yield chunk, self.backend.prepare(chunk, size)

    def predict(self, source: Image | Sequence[Image], *, imgsz: tuple[int, int] | None = None,
                batch: int = 8) -> np.ndarray | list[np.ndarray]:
        """Per-pixel train ids (uint8, each at its image's own size) of one image or a list of images.

        An image is a file path, a BGR ``numpy`` array as OpenCV reads it, or an RGB PIL image.
        ``imgsz`` (H, W) is the size the model runs at (default: its own); ``batch`` images run per pass.
        """
        masks: list[np.ndarray] = []
        for chunk, x in self._batches(source, imgsz, batch):
            masks += [labels_to_frame(lab, image.shape) for lab, image in zip(self.backend.predict(x), chunk)]
        return masks if isinstance(source, (list, tuple)) else masks[0]

    def predict_proba(self, source: Image | Sequence[Image], *, imgsz: tuple[int, int] | None = None,
                      batch: int = 8, size: str = "image", dtype: str = "float16") -> np.ndarray | list[np.ndarray]:
        """Class probabilities (the softmax of the logits), (K, H, W) per image, K = ``len(info.class_names)``.

        Same images, ``imgsz`` and ``batch`` as :meth:`predict`. ``size``: ``"image"`` (each image's own
        size; the probabilities are resized bilinearly, so they still sum to one) or ``"model"`` (the size
        the model ran at). ``dtype``: ``"float16"`` (half the memory of float32), ``"uint8"`` (round(p · 255),
        a quarter) or ``"float32"``. At the model's size their argmax over K is :meth:`predict`'s labels;
        at an image's own size :meth:`predict` resizes labels (nearest), so pixels on class borders may differ.
        """
        if size not in ("image", "model"):
            raise InputError(f"expected 'image' or 'model', got {size!r}", param="size")
        if dtype not in PROBABILITY_DTYPES:
            raise InputError(f"expected one of {', '.join(PROBABILITY_DTYPES)}, got {dtype!r}", param="dtype")
        maps: list[np.ndarray] = []
        for chunk, x in self._batches(source, imgsz, batch):
            probs = softmax(self.backend.logits(x))
            for p, image in zip(probs, chunk):
                maps.append(store_as(probabilities_to_frame(p, image.shape) if size == "image" else p, dtype))
        return maps if isinstance(source, (list, tuple)) else maps[0]

    def overlay(self, image: Image, labels: np.ndarray, opacity: float = 0.5) -> Any:
        """``labels`` in the palette's colours over ``image``: BGR array for a path or array, PIL for a PIL image."""
        if not 0.0 <= opacity <= 1.0:
            raise InputError(f"need a value in [0, 1], got {opacity}", param="opacity")
        frame = to_bgr(image)
        blended = overlay(frame, labels_to_frame(np.asarray(labels, np.uint8), frame.shape), self._lut, opacity)
        if _is_pil(image):
            from PIL import Image as PIL

            return PIL.fromarray(np.ascontiguousarray(blended[:, :, ::-1]))
        return blended

    def infer(self, source: str | os.PathLike, out: str | os.PathLike, *, imgsz: tuple[int, int] | None = None,
              batch: int = 1, opacity: float = 0.5, save_masks: bool = False, video: bool = True,
              vid_stride: int = 1, codec: str = "h264", on_frames: Callable[[int], None] | None = None,
              on_start: Callable[[int | None], None] | None = None) -> InferResult:
        """Segment a video, image, folder, glob, webcam index or stream URL into ``out`` (what ``nlseg infer`` does).

        Writes the overlay video (videos; ``codec`` h264: MP4 that browsers play, the default; vp9:
        WebM; mp4v: OpenCV's MPEG-4 Part 2, also the fallback where no H.264 encoder exists) or JPEGs
        (images), with ``save_masks`` uint8 PNGs, and ``out/summary.json``. Ctrl-C finishes the
        frames in flight and closes the outputs (``result.report.interrupted``). Temporary files that
        a killed run left in ``out`` are removed first (:func:`nlseg.io.remove_stale_temps`;
        ``summary['stale_temps']``). ``on_start(total frames or None)`` and ``on_frames(n)`` report progress.
        """
        if not isinstance(source, (str, os.PathLike)):
            raise InputError(f"infer reads a file, folder, glob, webcam index or URL, not a {type(source).__name__}; "
                             "use predict for images in memory", param="source")
        for name, value, ok in (("batch", batch, batch >= 1), ("vid_stride", vid_stride, vid_stride >= 1),
                                ("opacity", opacity, 0.0 <= opacity <= 1.0)):
            if not ok:
                raise InputError(f"invalid value {value}", param=name)
        written_codec, _ = resolve_codec(codec)
        size = self.input_size(imgsz)
        sources = resolve_source(str(source))
        inputs = sources.inputs
        for inp in inputs:  # open every video before any output exists, so bad files fail early
            if isinstance(inp, VideoInput):
                inp.open()
                if 0 < inp.frame_count < vid_stride:
                    raise InputError(f"{vid_stride} is more than the {inp.frame_count} frames of {inp.target}; "
                                     f"at most {inp.frame_count}", param="vid_stride")
        with output_dir(out) as out_dir:  # a run that fails before writing anything leaves no empty folder
            stale = remove_stale_temps(out_dir)  # what a killed run left (SIGKILL, power loss)
            return self._run(source, sources, out_dir, size, batch, opacity, save_masks, video, vid_stride,
                             written_codec, on_frames, on_start, stale)

    def _run(self, source: str | os.PathLike, sources: Sources, out_dir: Path, size: tuple[int, int], batch: int,
             opacity: float, save_masks: bool, video: bool, vid_stride: int, written_codec: str,
             on_frames: Callable[[int], None] | None, on_start: Callable[[int | None], None] | None,
             stale: list[str]) -> InferResult:
        """The pipeline and summary.json of :meth:`infer`, once its inputs are checked and ``out_dir`` exists."""
        inputs = sources.inputs
        options = InferOptions(out_dir=out_dir, imgsz=size, batch=batch, opacity=opacity, save_masks=save_masks,
                               write_video=video, vid_stride=vid_stride, codec=written_codec)
        if on_start is not None:
            total = sum(len(i.paths) if not isinstance(i, VideoInput) else (i.frame_count + vid_stride - 1) // vid_stride
                        for i in inputs)
            on_start(total or None)
        report = run_inference(inputs, self.backend, options, on_frames or (lambda n: None))
        fps = report.frames / report.seconds if report.seconds > 0 else 0.0
        summary = {
            "source": str(source), "frames": report.frames, "fps": round(fps, 3), "seconds": round(report.seconds, 3),
            "stages": report.times.summary(), "backend": self.backend.name, "device": self.backend.device,
            "device_name": self.backend.device_name(), "precision": self.backend.precision,
            "weights": str(getattr(self.backend, "url", self.weights)), "imgsz": list(size), "batch": batch, "codec": written_codec if video else None,
            "outputs": [str(p) for p in report.outputs], "problems": report.problems,
            "interrupted": report.interrupted, "renamed": sources.renamed, "skipped": sources.skipped,
            "stale_temps": stale,
        }
        summary_path = write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        return InferResult(report, summary, summary_path)

    def export(self, format: str = "onnx", out: str | os.PathLike | None = None, **options: Any) -> Path:
        """Export this model (a checkpoint to ONNX or an engine; an ONNX export to an engine); returns the file.

        ``options`` are those of :func:`nlseg.api.export.export_model` (``opset``, ``half``, ``plugin``,
        ``dynamic``, ``simplify``, ``with_argmax``, engine shapes, ``int8``/``calib_data``, ``triton_repo``, …).
        """
        from nlseg.api.export import export_model

        return export_model(self.weights, out, format, **options).path

    def profile(self, shape: tuple[int, int, int, int] | None = None, *, warmup: int = 10,
                iters: int = 50) -> dict[str, Any]:
        """Latency of the forward pass on this backend: p50/p90/p95/p99/mean/min/max ms and images/s."""
        from nlseg.api.profile import profile_backend

        return profile_backend(self.backend, shape, warmup=warmup, iters=iters)

    def close(self) -> None:
        """Release the backend's device resources."""
        self.backend.close()

    def __enter__(self) -> "Segmenter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(weights: str | os.PathLike | None = None, *, backend: str | None = None, device: str | None = None,
         precision: str | None = None, cuda_graph: bool = False, half: bool = False,
         timeout: float | None = None) -> Segmenter:
    """A :class:`Segmenter` for ``weights`` (.pt checkpoint, .onnx export or TensorRT .engine; default: the
    bundled weights) on ``backend`` (default: the one the file needs) and ``device`` ('cpu', 'cuda',
    'cuda:N'; default: CUDA when available).

    ``weights`` may also be a model served by ``nlseg serve`` (``"grpc://HOST:8001/nlseg"``,
    ``"http://HOST:8000/nlseg"``): ``predict`` and ``infer`` then run on that server, ``timeout`` is how
    many seconds a request may take (default: no limit), and the other options belong to the server.

    ``precision``: ``'fp32'``, ``'fp16'`` or ``'bf16'``, what a checkpoint runs at on the torch backend
    (default fp32). An ONNX export or an engine runs at the precision it was built with (``nlseg export
    --half``); naming another one is an InputError.

    ``half``: deprecated, use ``precision``. ``half=True`` selects fp16 on CUDA and bf16 on the CPU for a
    checkpoint (with a DeprecationWarning); for an ONNX export or an engine it changes nothing, and a
    UserWarning says so.
    """
    from nlseg.serve.client import RemoteBackend, is_server_url

    if is_server_url(weights):
        given = [n for n, v in (("backend", backend), ("device", device), ("precision", precision)) if v is not None]
        if given or cuda_graph or half:
            raise InputError(f"{weights} is a served model; {', '.join(given) or 'cuda_graph/half'} is the server's "
                             "choice (nlseg serve --backend/--device)", param=(given or ["weights"])[0])
        return Segmenter(RemoteBackend(str(weights), timeout))
    if timeout is not None:
        raise InputError("applies to a served model (grpc:// or http:// weights), not a file", param="timeout")
    path = Path(weights) if weights is not None else default_weights()
    torch_device = resolve_device(device)
    if half:
        if precision is not None:
            raise InputError(f"pass precision={precision!r} or the deprecated half=True, not both", param="half")
        name = backend_for(path, backend)
        if name == "torch":
            precision = half_precision(torch_device)
            warnings.warn(f"load(half=True) is deprecated; pass precision={precision!r} (half=True means fp16 on "
                          "CUDA, bf16 on the CPU)", DeprecationWarning, stacklevel=2)
        else:
            kind = "an ONNX export" if name == "onnxruntime" else f"a {name} model"
            warnings.warn(f"half=True has no effect on {path}: {kind} runs at the precision it was built with "
                          "(nlseg export --half makes a float16 ONNX export)", UserWarning, stacklevel=2)
    return Segmenter(open_backend(path, backend, torch_device, precision, cuda_graph=cuda_graph))
