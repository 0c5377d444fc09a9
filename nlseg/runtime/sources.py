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
    names: list[str] | None = None  # output names (default: the stems), unique within the run

    def frames(self, stride: int = 1) -> Iterator[tuple[str, np.ndarray]]:
        names = self.names or [p.stem for p in self.paths]
        for path, name in zip(self.paths, names):
            image = read_image(path)
            if image is None:
                self.unreadable.append(path)
                continue
            yield name, image


Input = VideoInput | ImageInput


@dataclass
class Sources:
    """What SOURCE holds: the inputs to run, the entries passed over and why, and the renamed outputs."""

    inputs: list[Input]
    skipped: list[str] = field(default_factory=list)  # "PATH (why)": sub-folders, broken links, other files
    renamed: dict[str, str] = field(default_factory=dict)  # file -> output name, where stems collide


def unique_names(files: list[Path]) -> list[str]:
    """An output name per file, unique within the run (case-insensitively: a.jpg and A.png collide too).

    A file keeps its stem unless another file of the run has the same stem; colliding files are
    named by their path relative to the folder the files share (``day1__clip``, separators as
    ``__``), and if that still collides, with their suffix added (``a_jpg``, ``a_png``).
    """
    def clashes(names: list[str]) -> set[str]:
        seen: dict[str, int] = {}
        for name in names:
            seen[name.lower()] = seen.get(name.lower(), 0) + 1
        return {n for n, count in seen.items() if count > 1}

    names = [f.stem for f in files]
    clash = clashes(names)
    if not clash:
        return names
    root = Path(os.path.commonpath([str(f.parent.absolute()) for f in files]))
    for i, f in enumerate(files):
        if names[i].lower() in clash:
            names[i] = "__".join(f.absolute().relative_to(root).with_suffix("").parts)
    clash = clashes(names)
    return [f"{n}_{f.suffix.lstrip('.').lower()}" if n.lower() in clash else n for n, f in zip(names, files)]


def _from_files(files: list[Path], what: str, skipped: list[str]) -> Sources:
    media = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES]
    skipped += [f"{f} (not an image or video: {f.suffix or 'no suffix'})" for f in files if f not in media]
    if not media:
        raise InputError(f"{what}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) or videos found")
    names = dict(zip(media, unique_names(media)))
    images = [f for f in media if f.suffix.lower() in IMAGE_SUFFIXES]
    inputs: list[Input] = [VideoInput(str(v), names[v]) for v in media if v not in images]
    if images:
        inputs.insert(0, ImageInput(images, names=[names[f] for f in images]))
    return Sources(inputs, skipped, {str(f): n for f, n in names.items() if n != f.stem})


def _passed_over(entries: list[Path]) -> list[str]:
    """Why each of ``entries`` (not regular files) is not read: a folder (not searched) or a broken link."""
    return [f"{p} (a sub-folder: not searched; pass a glob such as 'DIR/**/*.jpg')" if p.is_dir()
            else f"{p} (a broken symbolic link)" if p.is_symlink() else f"{p} (not a regular file)" for p in entries]


def resolve_source(source: str) -> Sources:
    """Classify SOURCE; InputError naming it when nothing can be read from it."""
    if source.isdigit():
        return Sources([VideoInput(int(source), f"webcam{source}", live=True)])
    if source.lower().startswith(STREAM_PREFIXES):
        stem = Path(source.split("?")[0].rstrip("/")).stem or "stream"
        return Sources([VideoInput(source, stem, live=True)])
    path = Path(source)
    if path.is_dir():
        entries = sorted(path.iterdir())
        if not entries:
            raise InputError(f"{path}: empty folder")
        files = [p for p in entries if p.is_file()]
        return _from_files(files, str(path), _passed_over([p for p in entries if not p.is_file()]))
    if any(ch in source for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(source, recursive=True))
        files = [p for p in matches if p.is_file()]
        if not files:
            raise InputError(f"{source}: the pattern matches no files")
        return _from_files(files, source, _passed_over([p for p in matches if not p.is_file() and not p.is_dir()]))
    if not path.exists():
        if path.is_symlink():
            raise InputError(f"{path}: a broken symbolic link (its target {os.readlink(path)} does not exist)")
        raise InputError(f"{path}: no such file or directory")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        if read_image(path) is None:
            raise InputError(f"{path}: unreadable image (corrupt or not an image)")
        return Sources([ImageInput([path])])
    if suffix in VIDEO_SUFFIXES:
        return Sources([VideoInput(str(path), path.stem)])
    if read_image(path) is not None:
        return Sources([ImageInput([path])])
    return Sources([VideoInput(str(path), path.stem)])
