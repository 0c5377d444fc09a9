"""Short driving clips from synthetic scenes, for demos and pipeline benchmarks.

The scene generator draws still frames; a clip shows ``scenes`` of them in turn, each with a
slow zoom towards the road ahead (an approximation of driving forward) and a short
cross-fade into the next. The frames are deterministic by seed (:func:`clip_frames`); the
file (H.264 MP4 by default, see :mod:`nlseg.runtime.video_writer`) is written under a
temporary name and is lossy, so its decoded frames approximate them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from nlseg.data.synthetic import _scenes
from nlseg.io import atomic_path
from nlseg.runtime.video_writer import VideoWriter

ZOOM = 0.35  # how far each scene zooms in over its duration
FADE_SECONDS = 0.3


def _zoomed(image: np.ndarray, zoom: float) -> np.ndarray:
    """``image`` magnified by ``zoom`` about the centre of the road ahead (middle column, 45% height)."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, 0.45 * height), 0.0, zoom)
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def clip_frames(scenes: int = 4, seconds_per_scene: float = 2.0, size: tuple[int, int] = (360, 640),
                fps: float = 15.0, seed: int = 0, workers: int = 1) -> Iterator[np.ndarray]:
    """The BGR uint8 frames of the clip, (H, W) = ``size``, the same for the same arguments."""
    per_scene = max(1, round(seconds_per_scene * fps))
    fade = min(per_scene // 2, round(FADE_SECONDS * fps))
    stills = [image[..., ::-1].copy() for image, _ in _scenes("clip", scenes, size, seed, workers)]
    for k, still in enumerate(stills):
        for t in range(per_scene):
            frame = _zoomed(still, 1.0 + ZOOM * t / per_scene)
            if k + 1 < len(stills) and t >= per_scene - fade:
                alpha = (t - (per_scene - fade) + 1) / (fade + 1)
                frame = cv2.addWeighted(frame, 1.0 - alpha, stills[k + 1], alpha, 0.0)
            yield frame


def write_clip(out: str | os.PathLike[str], scenes: int = 4, seconds_per_scene: float = 2.0,
               size: tuple[int, int] = (360, 640), fps: float = 15.0, seed: int = 0, workers: int = 1,
               progress: Callable[[int], None] | None = None, codec: str = "h264") -> Path:
    """Encode :func:`clip_frames` into a video at ``fps``."""
    height, width = size
    with atomic_path(out) as tmp, VideoWriter(tmp, fps, (width, height), codec) as writer:
        for frame in clip_frames(scenes, seconds_per_scene, size, fps, seed, workers):
            writer.write(frame)
            if progress is not None:
                progress(writer.frames)
    return Path(out)
