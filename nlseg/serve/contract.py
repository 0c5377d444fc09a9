"""The served model's contract: one encoded image in, one PNG of train ids out, per batch entry.

Model ``nlseg`` (``--name``); input ``image``, BYTES, one encoded JPEG or PNG (any size) per batch entry;
output ``mask``, BYTES, a PNG of the uint8 train ids at that image's own size (what ``Segmenter.predict``
returns). The model config's ``parameters`` carry the classes, the palette and the input size
(:func:`config_parameters`), so a client knows what the ids mean without the weights file.
"""

from __future__ import annotations

import json

import cv2
import numpy as np

from nlseg.contract import ModelInfo, to_bgr8
from nlseg.contract.preprocess import READ_FLAGS

INPUT = "image"
OUTPUT = "mask"
#: The smallest side of an image the server segments (a 1x1 image has no content to segment).
MIN_SIDE = 2


class BadImage(ValueError):
    """A request entry that is not a segmentable image; the message names the problem."""


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Encoded JPEG/PNG bytes -> BGR uint8, decoded as ``nlseg.contract.read_image`` decodes files."""
    if not data:
        raise BadImage("empty bytes, expected an encoded JPEG or PNG image")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), READ_FLAGS)
    if image is None or image.size == 0:
        raise BadImage(f"not a JPEG or PNG image ({len(data)} bytes, starting {data[:8]!r})")
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise BadImage(f"a {width}x{height} image is too small; at least {MIN_SIDE}x{MIN_SIDE} pixels")
    if height * width > max_pixels:
        raise BadImage(f"a {width}x{height} image has {height * width} pixels, above the server's limit of "
                       f"{max_pixels} (--max-pixels)")
    return to_bgr8(image)


def encode_image(image: np.ndarray) -> bytes:
    """A BGR (or gray) uint8 image -> lossless PNG bytes (fast compression), for requests and masks alike."""
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f"could not encode a {image.shape} image as PNG")
    return buf.tobytes()


def decode_mask(data: bytes) -> np.ndarray:
    """A ``mask`` output -> (H, W) uint8 train ids."""
    mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError("the server's mask is not a single-channel 8-bit PNG")
    return mask


def config_parameters(info: ModelInfo, backend: str, precision: str, max_pixels: int) -> dict[str, str]:
    """The model config ``parameters`` that describe the served model (strings, as Triton keeps them)."""
    height, width = info.input_size
    return {"nlseg-classes": json.dumps(list(info.class_names)),
            "nlseg-palette": json.dumps([list(c) for c in info.palette]),
            "nlseg-input-size": f"{height}x{width}", "nlseg-backend": backend, "nlseg-precision": precision,
            "nlseg-max-pixels": str(max_pixels),
            "nlseg-contract": f"{INPUT}: BYTES, one encoded JPEG or PNG per batch entry; {OUTPUT}: BYTES, "
                              "a PNG of the uint8 train ids at the image's own size"}
