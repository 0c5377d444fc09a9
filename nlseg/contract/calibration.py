"""Frames for INT8 calibration on the CPU (ONNX Runtime static quantization, OpenVINO with NNCF).

Calibration sees real frames, prepared exactly as inference prepares them (:func:`preprocess`
with the model's :class:`ModelInfo`): by default evenly spaced frames of the bundled sample
clip, else those of a video file or the images of a folder (a CamVid split's ``images/train``,
say). TensorRT's calibrator reads folders through :mod:`nlseg.tensorrt.calibration`.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from nlseg.contract.info import ModelInfo
from nlseg.contract.preprocess import preprocess, read_image, to_bgr8
from nlseg.errors import InputError
from nlseg.io import IMAGE_SUFFIXES

DEFAULT_FRAMES = 32


def _spaced(count: int, total: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)`` (all of them when ``total <= count``)."""
    if total <= count:
        return list(range(total))
    return sorted({int(i) for i in np.linspace(0, total - 1, count).round()})


def _video_frames(path: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        ok, frame = capture.read()
        while ok and frame is not None:
            frames.append(frame)
            ok, frame = capture.read()
    finally:
        capture.release()
    if not frames:
        raise InputError(f"{path}: no frames could be decoded for calibration", param="calib_data")
    return [to_bgr8(frames[i]) for i in _spaced(count, len(frames))]


def _folder_frames(root: Path, count: int) -> list[np.ndarray]:
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}", param="calib_data")
    frames = []
    for i in _spaced(count, len(paths)):
        image = read_image(paths[i])
        if image is None:
            raise InputError(f"{paths[i]}: not a readable image", param="calib_data")
        frames.append(image)
    return frames


def calibration_frames(source: str | os.PathLike[str] | None, count: int = DEFAULT_FRAMES) -> list[np.ndarray]:
    """``count`` BGR uint8 frames of ``source``: a video file, a folder of images, or (None) the bundled clip."""
    if count < 1:
        raise InputError(f"need at least 1 calibration frame, got {count}", param="calib_frames")
    if source is None:
        from nlseg.assets import SAMPLE_CLIP

        source = SAMPLE_CLIP
    path = Path(source)
    if path.is_dir():
        return _folder_frames(path, count)
    if not path.is_file():
        raise InputError(f"{path}: no such video or folder of images", param="calib_data")
    return _video_frames(path, count)


def calibration_inputs(frames: list[np.ndarray], size: tuple[int, int], info: ModelInfo) -> list[np.ndarray]:
    """Each frame as a (1, 3, H, W) float32 model input at ``size``."""
    return [preprocess([frame], size, info) for frame in frames]


def describe_source(source: str | os.PathLike[str] | None) -> str:
    """How the calibration source is recorded in the model's metadata."""
    if source is None:
        return "bundled sample clip (sample_drive.mp4)"
    return str(source)
