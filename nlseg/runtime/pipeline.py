"""The segmentation pipeline: a decoding thread, batched inference, an encoding thread.

decode thread ──(bounded queue)──> main thread: preprocess + backend.predict
             ──(bounded queue)──> encode thread: labels to frame size, palette overlay,
                                   video (H.264 MP4 by default) / image / mask writing.

Queues are bounded, so memory stays flat on a two-hour video. Every output is written under
a temporary name and renamed when complete; on Ctrl-C the frames already decoded are
finished, the video is closed (so it plays) and renamed, and the report says ``interrupted``;
a Ctrl-C while that happens is absorbed once (``nlseg infer`` defers later signals itself). Shutting
down never blocks on a queue: an encoder that fails stops the run with its error.
"""

from __future__ import annotations

import queue
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from nlseg.io import atomic_path, write_image
from nlseg.runtime.backend import Backend, BackendLost
from nlseg.runtime.frames import labels_to_frame, overlay, palette_lut
from nlseg.runtime.sources import ImageInput, Input, VideoInput
from nlseg.runtime.timing import StageTimes
from nlseg.runtime.video_writer import CODECS, VideoWriter, resolve_codec

_DONE = object()


class Interrupted(Exception):
    """Ctrl-C during inference; outputs written so far are complete."""


@dataclass(frozen=True)
class InferOptions:
    """User choices for one ``nlseg infer`` run."""

    out_dir: Path
    imgsz: tuple[int, int]
    batch: int = 1
    opacity: float = 0.5
    save_masks: bool = False
    write_video: bool = True
    vid_stride: int = 1
    queue_frames: int = 16
    codec: str = "h264"  # of the annotated video: h264 | vp9 | mp4v (nlseg.runtime.video_writer)


@dataclass
class RunReport:
    """What a run did: frame count, wall time, files written, problems met."""

    frames: int = 0
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    interrupted: bool = False
    times: StageTimes = field(default_factory=StageTimes)


class _Sink:
    """Where annotated frames go: one video file for a video, one file per image, plus masks."""

    def __init__(self, stack: ExitStack, options: InferOptions, report: RunReport, video: VideoInput | None) -> None:
        self.options, self.report = options, report
        self.writer: VideoWriter | None = None
        if video is not None and options.write_video:
            codec, _ = resolve_codec(options.codec)
            final = options.out_dir / f"{video.name}{CODECS[codec]}"
            tmp = stack.enter_context(atomic_path(final))
            self.writer = VideoWriter(tmp, video.fps / options.vid_stride, video.size, codec)
            stack.callback(self.writer.close)  # runs before the rename: the file is finished and plays
            report.outputs.append(final)
        self.images = video is None
        if options.save_masks:
            (options.out_dir / "masks").mkdir(parents=True, exist_ok=True)

    def write(self, name: str, frame: np.ndarray, labels: np.ndarray, lut: np.ndarray) -> tuple[float, float]:
        """Post-process and write one frame; returns (postprocess ms, encode ms)."""
        t0 = time.perf_counter()
        full = labels_to_frame(labels, frame.shape)
        annotated = overlay(frame, full, lut, self.options.opacity) if (self.writer or self.images) else None
        t1 = time.perf_counter()
        if self.writer is not None:
            self.writer.write(annotated)
        elif self.images:
            path = self.options.out_dir / f"{name}.jpg"
            self._imwrite(path, annotated)
            self.report.outputs.append(path)
        if self.options.save_masks:
            self._imwrite(self.options.out_dir / "masks" / f"{name}.png", full)
        return (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3

    @staticmethod
    def _imwrite(path: Path, image: np.ndarray) -> None:
        write_image(path, image)  # a full disk or a read-only folder: an OSError naming ``path``


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Blocking put that gives up when ``stop`` is set."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event) -> object:
    """Blocking get that returns ``_DONE`` once ``stop`` is set and nothing is queued."""
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _DONE


def _finish(stop: threading.Event, q_out: queue.Queue, encoder: threading.Thread, decoder: threading.Thread) -> None:
    """Stop the threads: the encoder writes the frames queued for it, then ends; the decoder stops reading.

    The end marker is put only while the encoder lives (one that died with a full queue reads
    nothing), so this never blocks for good.
    """
    stop.set()
    while encoder.is_alive():
        try:
            q_out.put(_DONE, timeout=0.1)
            break
        except queue.Full:
            continue
    encoder.join()
    decoder.join(timeout=5)


def _decode(frames: Iterator[tuple[str, np.ndarray]], q: queue.Queue, stop: threading.Event,
            times: StageTimes, errors: list[BaseException]) -> None:
    try:
        while not stop.is_set():
            t0 = time.perf_counter()
            item = next(frames, None)
            if item is None:
                break
            times.add("decode", (time.perf_counter() - t0) * 1e3)
            if not _put(q, item, stop):
                break
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)
    finally:
        _put(q, _DONE, stop)  # after a stop nobody reads the queue: a blocking put would hang the join


def _encode(sink: _Sink, q: queue.Queue, lut: np.ndarray, times: StageTimes, errors: list[BaseException],
            advance: Callable[[int], None], report: RunReport, stop: threading.Event) -> None:
    try:
        while (got := q.get()) is not _DONE:
            items, labels = got
            for (name, frame), lab in zip(items, labels):
                post_ms, enc_ms = sink.write(name, frame, lab, lut)
                times.add("postprocess", post_ms)
                times.add("encode", enc_ms)
                report.frames += 1
                advance(1)
    except BaseException as exc:
        errors.append(exc)
        stop.set()  # the decoder and the main loop stop too, rather than wait on queues nobody reads


def _run_stream(inp: Input, backend: Backend, options: InferOptions, report: RunReport,
                advance: Callable[[int], None]) -> None:
    """Segment every frame of one input, with decode and encode threads around the main loop."""
    lut = palette_lut(backend.info.palette)
    stop = threading.Event()
    errors: list[BaseException] = []
    q_in: queue.Queue = queue.Queue(maxsize=options.queue_frames)
    q_out: queue.Queue = queue.Queue(maxsize=max(2, options.queue_frames // options.batch))
    interrupted = False
    lost: BackendLost | None = None
    with ExitStack() as stack:
        sink = _Sink(stack, options, report, inp if isinstance(inp, VideoInput) else None)
        decoder = threading.Thread(target=_decode, args=(inp.frames(options.vid_stride), q_in, stop, report.times, errors),
                                   name="nlseg-decode", daemon=True)
        encoder = threading.Thread(target=_encode, args=(sink, q_out, lut, report.times, errors, advance, report, stop),
                                   name="nlseg-encode", daemon=True)
        decoder.start()
        encoder.start()
        try:
            done = False
            while not done and not errors:
                items = []
                while len(items) < options.batch:
                    item = _get(q_in, stop)
                    if item is _DONE:
                        done = True
                        break
                    items.append(item)
                if not items:
                    break
                t0 = time.perf_counter()
                batch = backend.prepare([frame for _, frame in items], options.imgsz)
                t1 = time.perf_counter()
                labels = backend.predict(batch)
                t2 = time.perf_counter()
                report.times.add("preprocess", (t1 - t0) * 1e3, len(items))
                report.times.add("inference", (t2 - t1) * 1e3, len(items))
                if not _put(q_out, (items, labels), stop):
                    break
        except KeyboardInterrupt:
            interrupted = True
        except BackendLost as exc:  # the frames done so far are finished and kept, like an interrupt
            lost = exc
        finally:
            try:
                _finish(stop, q_out, encoder, decoder)
            except KeyboardInterrupt:  # a Ctrl-C while finishing is absorbed once: the frames done so far are kept
                interrupted = True
                _finish(stop, q_out, encoder, decoder)
        if errors:
            raise errors[0]
    if lost is not None:
        raise lost
    if isinstance(inp, VideoInput) and not inp.live and not interrupted:
        decoded = getattr(inp, "decoded", 0)
        if inp.frame_count and decoded < inp.frame_count - 1 and options.vid_stride == 1:
            report.problems.append(f"{inp.target}: truncated: decoded {decoded} of {inp.frame_count} frames")
    if isinstance(inp, ImageInput):
        report.problems += [f"{p}: unreadable image, skipped" for p in inp.unreadable]
    if interrupted:
        raise Interrupted()


def run_inference(inputs: list[Input], backend: Backend, options: InferOptions,
                  advance: Callable[[int], None] = lambda n: None) -> RunReport:
    """Segment every input; videos must already be opened (:meth:`VideoInput.open`)."""
    report = RunReport()
    options.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        for inp in inputs:
            _run_stream(inp, backend, options, report, advance)
    except Interrupted:
        report.interrupted = True
    except BackendLost as exc:
        report.problems.append(f"{exc}; stopped after {report.frames} frames")
    finally:
        report.seconds = time.perf_counter() - start
    return report
