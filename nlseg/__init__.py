"""nlseg: Nonlocal Hamiltonian networks for classification and driving-scene segmentation."""

import os as _os

# nlseg reports unreadable media itself, in one line; keep FFmpeg and OpenCV from printing their own.
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

__version__ = "0.1.0"
