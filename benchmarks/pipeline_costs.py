"""The pipeline's own CPU costs per frame, and where the arg-max runs: full resolution or the model's 1/4.

The real-time segmenter computes its class logits at 1/4 of the input and upsamples them bilinearly
to the input size inside the graph, so every backend hands the arg-max 19 x H x W floats, and the
pipeline then resizes the labels (nearest) to the frame. This script times, per frame of a
960x540 video at the model's input size (default 270x480):

- ``preprocess``: :func:`nlseg.contract.preprocess` (resize, RGB, normalise);
- the model's trunk (everything up to the 1/4 logits) and three heads from those logits:
  ``full`` bilinear to the input then arg-max (today), ``half`` bilinear to 1/2 then arg-max,
  ``quarter`` arg-max at 1/4; each followed by the nearest resize of the labels to the frame;
- the arg-max of ONNX Runtime's full-resolution logits in NumPy (what ``OrtBackend`` does
  without a ``labels`` output) against torch's;
- ``draw``: palette overlay at the frame's size; ``encode``: the H.264 writer (libx264 via PyAV).

With ``--camvid DIR`` it scores the three heads on CamVid val at 360x480 (mIoU in CamVid's 11
classes; not held out: val shares drive 0016E5 with the default weights' train split). Prints Markdown.

    python benchmarks/pipeline_costs.py [--camvid DIR] [--frames 60] [--imgsz 270x480]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from nlseg.assets import DEFAULT_WEIGHTS, SAMPLE_CLIP
from nlseg.contract import normalise, preprocess
from nlseg.contract.calibration import calibration_frames
from nlseg.runtime.device import describe_device
from nlseg.runtime.frames import labels_to_frame, overlay, palette_lut
from nlseg.runtime.torch_backend import TorchBackend
from nlseg.runtime.video_writer import VideoWriter
from nlseg.train.metrics import class_labels, confusion_matrix, grouped_labels, mean_iou

FRAME = (540, 960)
HEADS = ("full", "half", "quarter")


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


class Split:
    """The default weights' trunk (to the 1/4 logits) and the three heads."""

    def __init__(self) -> None:
        self.backend = TorchBackend.from_checkpoint(DEFAULT_WEIGHTS, torch.device("cpu"))
        self.model = self.backend.model
        self._captured: list[torch.Tensor] = []
        self.model.classifier.register_forward_hook(lambda m, i, o: self._captured.append(o))

    @torch.inference_mode()
    def quarter_logits(self, x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(the 1/4 logits, the full-resolution logits) of one forward pass."""
        self._captured.clear()
        full = self.model(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
        return self._captured[-1], full

    @staticmethod
    @torch.inference_mode()
    def head(logits: torch.Tensor, kind: str, size: tuple[int, int]) -> np.ndarray:
        """Labels (B, h, w) uint8 at the head's resolution, from the 1/4 logits."""
        if kind != "quarter":
            target = size if kind == "full" else (size[0] // 2, size[1] // 2)
            logits = F.interpolate(logits, size=target, mode="bilinear", align_corners=False)
        return class_labels(logits).to(torch.uint8).numpy()


def costs(split: Split, frames: list[np.ndarray], size: tuple[int, int], repeat: int) -> list[tuple[str, float]]:
    frame = frames[0]
    info = split.backend.info
    x = preprocess([frame], size, info)
    rows = [("preprocess (960x540 -> model input)", median_ms(lambda: preprocess([frame], size, info), repeat))]
    quarter, full = split.quarter_logits(x)
    rows.append(("forward, the whole model (torch fp32)", median_ms(lambda: split.quarter_logits(x), repeat)))
    for kind in HEADS:
        rows.append((f"head `{kind}`: logits -> labels", median_ms(lambda: split.head(quarter, kind, size), repeat)))
        labels = split.head(quarter, kind, size)[0]
        rows.append((f"  + labels (nearest) to 960x540", median_ms(lambda: labels_to_frame(labels, frame.shape), repeat)))
    host = full.float().contiguous().numpy()
    rows.append(("arg-max of full logits, NumPy (OrtBackend without `labels`)",
                 median_ms(lambda: host.argmax(axis=1), repeat)))
    rows.append(("arg-max of full logits, torch channels-last", median_ms(lambda: class_labels(full), repeat)))
    labels = labels_to_frame(split.head(quarter, "full", size)[0], frame.shape)
    lut = palette_lut(info.palette)
    rows.append(("draw: palette overlay at 960x540", median_ms(lambda: overlay(frame, labels, lut, 0.5), repeat)))
    drawn = overlay(frame, labels, lut, 0.5)
    with tempfile.TemporaryDirectory() as tmp, VideoWriter(Path(tmp) / "o.mp4", 30.0, FRAME[::-1], "h264") as writer:
        rows.append(("encode: H.264 (PyAV) at 960x540", median_ms(lambda: writer.write(drawn), repeat)))
    return rows


def camvid_scores(split: Split, data_dir: Path) -> dict[str, float]:
    from nlseg.data.camvid import load_camvid
    from nlseg.data.labels import CAMVID_SCORING

    size = (360, 480)
    data = load_camvid(data_dir, "val", size, workers=2)
    mean, std = split.backend.info.normalization.tensors
    conf = {kind: torch.zeros(11, 11, dtype=torch.int64) for kind in HEADS}
    for start in range(0, len(data), 8):
        x = normalise(data.images[start:start + 8], mean, std).numpy()
        quarter, _ = split.quarter_logits(x)
        target = grouped_labels(data.targets[start:start + 8], CAMVID_SCORING)
        for kind in HEADS:
            labels = split.head(quarter, kind, size)
            up = np.stack([labels_to_frame(lab, size) for lab in labels])
            conf[kind] += confusion_matrix(grouped_labels(torch.from_numpy(up), CAMVID_SCORING), target, 11)
    return {kind: mean_iou(c) for kind, c in conf.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--camvid", type=Path, help="CamVid folder: score the heads on val at 360x480")
    parser.add_argument("--frames", type=int, default=60, help="repetitions per timing (median)")
    parser.add_argument("--imgsz", default="270x480", help="model input HxW")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.imgsz.split("x"))
    frames = [cv2.resize(f, FRAME[::-1], interpolation=cv2.INTER_LINEAR) for f in calibration_frames(SAMPLE_CLIP, 4)]
    split = Split()
    print(f"{describe_device('cpu')}, torch {torch.__version__}, model input {size[0]}x{size[1]}, frames 960x540\n")
    print("| stage | p50 ms per frame |\n|---|---:|")
    for name, ms in costs(split, frames, size, args.frames):  # type: ignore[arg-type]
        print(f"| {name} | {ms:.2f} |")
    if args.camvid is not None:
        scores = camvid_scores(split, args.camvid)
        print("\n| head | CamVid val mIoU (360x480, 101 frames) | Δ vs full (points) |\n|---|---:|---:|")
        for kind, value in scores.items():
            print(f"| {kind} | {value:.4f} | {100 * (value - scores['full']):+.2f} |")


if __name__ == "__main__":
    main()
