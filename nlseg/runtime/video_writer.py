"""Writing video: H.264 MP4 (the default), VP9 WebM, or OpenCV's MPEG-4 Part 2 (``mp4v``).

H.264 (yuv420p, moov atom at the front: ``+faststart``) and VP9 (yuv420p, WebM) go through
PyAV, whose wheels bundle FFmpeg with libx264 and libvpx; browsers, chat apps and previewers
play both. ``mp4v`` is the MPEG-4 Part 2 writer every opencv-python build has, which browsers do
not play: it is used when asked for, and, after a one-line warning, when no H.264 encoder can be
had. yuv420p needs an even width and height: an odd frame is padded by one replicated pixel
column or row, never cropped.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from nlseg.errors import InputError

# codec -> file suffix
CODECS: dict[str, str] = {"h264": ".mp4", "vp9": ".webm", "mp4v": ".mp4"}
# codec -> FFmpeg encoders to try, in order
_ENCODERS: dict[str, tuple[str, ...]] = {"h264": ("libx264", "h264"), "vp9": ("libvpx-vp9",)}
# Fast settings: the encoder runs on its own thread beside inference and must not become the slowest stage.
_ENCODER_OPTIONS: dict[str, dict[str, str]] = {
    "libx264": {"preset": "veryfast", "crf": "23"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "32", "b": "0"},
}
_BT601, _LIMITED_RANGE = 6, 1  # FFmpeg's AVCOL_SPC/PRI/TRC_SMPTE170M and AVCOL_RANGE_MPEG


def even_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) rounded up to even numbers, as yuv420p and MPEG-4 need."""
    return width + width % 2, height + height % 2


def fit_to(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A frame at the writer's (width, height): edge-padded by the odd pixel, resized if the stream changed size."""
    height, width = frame.shape[:2]
    if (width, height) == size:
        return frame
    if even_size(width, height) == size:
        return cv2.copyMakeBorder(frame, 0, size[1] - height, 0, size[0] - width, cv2.BORDER_REPLICATE)
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


@lru_cache(maxsize=None)
def resolve_codec(codec: str) -> tuple[str, str | None]:
    """(codec that will be written, FFmpeg encoder or None for OpenCV) for the ``codec`` asked for.

    ``h264`` without an H.264 encoder (no PyAV, or a PyAV built without one) becomes ``mp4v``
    with a one-line warning on stderr, once per process; ``vp9`` without libvpx is an InputError.
    """
    if codec not in CODECS:
        raise InputError(f"expected one of {', '.join(CODECS)}, got {codec!r}", param="codec")
    if codec == "mp4v":
        return codec, None
    try:
        import av
    except ImportError as exc:
        missing = f"PyAV is not importable ({exc})"
    else:
        for name in _ENCODERS[codec]:
            try:
                return codec, av.codec.Codec(name, "w").name
            except Exception:  # av.codec.codec.UnknownCodecError and kin: this build lacks it
                continue
        missing = f"this PyAV's FFmpeg has no {' or '.join(_ENCODERS[codec])} encoder"
    if codec == "vp9":
        raise InputError(f"vp9: {missing}; pick --codec h264 or mp4v", param="codec")
    print(f"warning: no H.264 encoder ({missing}); writing MPEG-4 Part 2 (mp4v), which browsers do not play",
          file=sys.stderr)
    return "mp4v", None


class VideoWriter:
    """One video file being written from BGR uint8 frames; a context manager, closed once.

    Frames of another size are fitted to ``size`` (:func:`fit_to`). ``frames`` counts the frames
    written; :meth:`close` finishes the file so that it plays and, for PyAV, checks that every
    frame reached the file.
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], codec: str = "h264") -> None:
        self.path = Path(path)
        self.codec, encoder = resolve_codec(codec)
        self.size = even_size(*size)
        self.frames = 0
        self._packets = 0
        self._closed = False
        self._cv: cv2.VideoWriter | None = None
        rate = Fraction(fps).limit_denominator(1001)
        if encoder is None:
            self._cv = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), float(rate), self.size)
            if not self._cv.isOpened():
                raise InputError(f"{self.path}: cannot open an mp4v video writer here")
            return
        import av

        options = {"movflags": "+faststart"} if CODECS[self.codec] == ".mp4" else {}
        try:
            self._container: Any = av.open(str(self.path), mode="w", container_options=options)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot open for writing ({exc})") from None
        self._stream = self._container.add_stream(encoder, rate=rate)
        self._stream.width, self._stream.height = self.size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = dict(_ENCODER_OPTIONS.get(encoder, {}))
        context = self._stream.codec_context  # what cv2's BGR->I420 computes: BT.601, limited range
        context.colorspace = context.color_primaries = context.color_trc = _BT601
        context.color_range = _LIMITED_RANGE
        self._frame_type = av.VideoFrame

    def write(self, frame: np.ndarray) -> None:
        """Append one BGR uint8 frame."""
        frame = fit_to(frame, self.size)
        if self._cv is not None:
            self._cv.write(frame)
        else:
            # OpenCV's conversion is ~50x faster than FFmpeg's swscale on one frame (0.1 ms vs 6 ms at 640x360)
            picture = self._frame_type.from_ndarray(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
            picture.pts = self.frames
            self._mux(self._stream.encode(picture))
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and write the trailer (moov atom / cues); RuntimeError if frames went missing."""
        if self._closed:
            return
        self._closed = True
        if self._cv is not None:
            self._cv.release()
            return
        try:
            self._mux(self._stream.encode(None))
        finally:
            self._container.close()
        if self._packets != self.frames:
            raise RuntimeError(f"{self.path}: the {self.codec} encoder wrote {self._packets} of {self.frames} frames")

    def _mux(self, packets: list[Any]) -> None:
        for packet in packets:
            self._container.mux(packet)
            self._packets += 1

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
