"""Video encoding cost per codec: the writer alone, and ``nlseg infer`` end to end.

1. The writer alone (:class:`nlseg.runtime.video_writer.VideoWriter`): the frames of a video
   (default: the bundled sample clip, 640x360) decoded once, then encoded with each codec; ms per
   frame of wall time and of CPU time over all threads (libx264 and libvpx encode on threads of
   their own), close (flush, trailer, faststart rewrite) included, and the file size.
2. ``nlseg infer`` on the same video with the bundled weights and each ``--codec``: end-to-end
   frames/s and the decode / inference / encode p50 of its ``summary.json`` (the three-thread
   pipeline: the encoder runs beside inference, so only its share of the CPU counts).

Prints Markdown.

    python benchmarks/video_encode.py [--video PATH] [--codecs mp4v,h264,vp9] [--repeats 3] [--no-infer]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from infer import run as run_infer  # benchmarks/infer.py: nlseg infer in a subprocess
from nlseg.assets import SAMPLE_CLIP, default_weights
from nlseg.runtime.video_writer import CODECS, VideoWriter



def decode(path: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise SystemExit(f"{path}: no frames")
    return frames, fps


def encode_ms(frames: list[np.ndarray], fps: float, codec: str, out: Path) -> tuple[float, float, int]:
    """(wall ms per frame, CPU ms per frame over all threads, bytes) of writing ``frames`` with ``codec``."""
    height, width = frames[0].shape[:2]
    start, cpu = time.perf_counter(), time.process_time()
    with VideoWriter(out, fps, (width, height), codec) as writer:
        for frame in frames:
            writer.write(frame)
    n = len(frames)
    return (time.perf_counter() - start) * 1e3 / n, (time.process_time() - cpu) * 1e3 / n, out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=SAMPLE_CLIP)
    parser.add_argument("--codecs", default=",".join(CODECS))
    parser.add_argument("--repeats", type=int, default=3, help="writer runs per codec; the best is shown")
    parser.add_argument("--no-infer", action="store_true", help="skip the end-to-end nlseg infer runs")
    args = parser.parse_args()
    codecs = args.codecs.split(",")
    frames, fps = decode(args.video)
    height, width = frames[0].shape[:2]
    print(f"# video encoding, {len(frames)} frames {width}x{height} of {args.video.name}; {platform.processor() or platform.machine()}, "
          f"PyAV {av.__version__} (FFmpeg {'.'.join(map(str, av.library_versions['libavcodec']))} libavcodec), "
          f"OpenCV {cv2.__version__}\n")
    print(f"| codec | writer wall ms/frame (best of {args.repeats}) | CPU ms/frame, all threads | file KiB |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="nlseg-encode-") as tmp_name:
        tmp = Path(tmp_name)
        for codec in codecs:
            runs = [encode_ms(frames, fps, codec, tmp / f"{codec}{CODECS[codec]}") for _ in range(args.repeats)]
            wall, cpu, size = min(runs)
            print(f"| {codec} | {wall:.2f} | {cpu:.2f} | {size / 1024:.0f} |", flush=True)
        if args.no_infer:
            return
        print("\n| codec | nlseg infer frames/s | decode p50 ms | inference p50 ms | encode p50 ms |")
        print("|---|---:|---:|---:|---:|")
        for codec in codecs:
            s = run_infer(args.video, default_weights(), "torch", "cpu", tmp / f"infer-{codec}", ["--codec", codec])
            st = s["stages"]
            print(f"| {codec} | {s['fps']:.1f} | {st['decode']['p50_ms']:.2f} | {st['inference']['p50_ms']:.1f} | "
                  f"{st['encode']['p50_ms']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
