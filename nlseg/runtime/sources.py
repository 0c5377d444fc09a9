"""What ``nlseg infer SOURCE`` reads: a video, an image, a folder, a glob, a webcam or a URL."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from nlseg.errors import InputError
from nlseg.io import IMAGE_SUFFIXES
from nlseg.contract import read_image, to_bgr8

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".ts", ".flv"}
STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://")


@dataclass
class VideoInput:
    """A video file, a stream URL or a webcam index, decoded frame by frame."""

    target: str | int
    name: str
    live: bool = False
    capture: cv2.VideoCapture | None = field(default=None, repr=False)
    fps: float = 30.0
    size: tuple[int, int] = (0, 0)  # (width, height)
    frame_count: int = 0  # 0 when unknown (streams)
    first: np.ndarray | None = field(default=None, repr=False)

    def open(self) -> None:
        """Open and decode the first frame, so a bad file fails before any output exists."""
        label = self.target if isinstance(self.target, str) else f"webcam {self.target}"
        if isinstance(self.target, str) and not self.live:
            path = Path(self.target)
            if path.stat().st_size == 0:
                raise InputError(f"{path}: empty file")
        capture = cv2.VideoCapture(self.target)
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if not ok or frame is None:
            capture.release()
            raise InputError(f"{label}: {_why_no_frames(self.target) if not self.live else 'no frames from the stream'}")
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else 30.0
        self.frame_count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        self.size = (frame.shape[1], frame.shape[0])
        self.capture, self.first = capture, frame

    def frames(self, stride: int = 1) -> Iterator[tuple[str, np.ndarray]]:
        """(name, BGR frame) for every ``stride``-th frame."""
        assert self.capture is not None, "open() first"
        index = 0
        frame = self.first
        try:
            while frame is not None:
                if index % stride == 0:
                    yield f"{self.name}_{index:06d}", to_bgr8(frame)
                ok, frame = self.capture.read()
                frame = frame if ok else None
                index += 1
        finally:
            self.decoded = index
            self.capture.release()


def _why_no_frames(target: str | int) -> str:
    """Why OpenCV decodes no frame from ``target``: a container without a video track or frames, or not a video."""
    if isinstance(target, str):
        try:
            import av  # PyAV (the [video] extra) tells a valid but empty container from a foreign file
        except ImportError:
            av = None
        if av is not None:
            try:
                with av.open(target) as container:
                    streams = container.streams.video
                    if not streams:
                        return "a media container with no video track (0 frames)"
                    return "a video with no decodable frames (0 frames, or a codec this build cannot decode)"
            except (av.error.FFmpegError, OSError, ValueError):
                pass
    return "cannot open as a video (not a video file, an unsupported codec, or truncated)"


@dataclass
class ImageInput:
    """Still images, each written as its own overlay (and mask)."""

    paths: list[Path]
    unreadable: list[Path] = field(default_factory=list)

    def frames(self, stride: int = 1) -> Iterator[tuple[str, np.ndarray]]:
        for path in self.paths:
            image = read_image(path)
            if image is None:
                self.unreadable.append(path)
                continue
            yield path.stem, image


Input = VideoInput | ImageInput


def _from_files(files: list[Path], what: str) -> list[Input]:
    images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
    if not images and not videos:
        raise InputError(f"{what}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) or videos found")
    inputs: list[Input] = [VideoInput(str(v), v.stem) for v in videos]
    if images:
        inputs.insert(0, ImageInput(images))
    return inputs


def resolve_source(source: str) -> list[Input]:
    """Classify SOURCE; InputError naming it when nothing can be read from it."""
    if source.isdigit():
        return [VideoInput(int(source), f"webcam{source}", live=True)]
    if source.lower().startswith(STREAM_PREFIXES):
        stem = Path(source.split("?")[0].rstrip("/")).stem or "stream"
        return [VideoInput(source, stem, live=True)]
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        if not files:
            raise InputError(f"{path}: empty folder")
        return _from_files(files, str(path))
    if any(ch in source for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(source, recursive=True) if os.path.isfile(p))
        if not files:
            raise InputError(f"{source}: the pattern matches no files")
        return _from_files(files, source)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        if read_image(path) is None:
            raise InputError(f"{path}: unreadable image (corrupt or not an image)")
        return [ImageInput([path])]
    if suffix in VIDEO_SUFFIXES:
        return [VideoInput(str(path), path.stem)]
    if read_image(path) is not None:
        return [ImageInput([path])]
    return [VideoInput(str(path), path.stem)]
