"""The one way images become model input: image files and arrays to BGR uint8, resizing, normalisation."""

from __future__ import annotations

import os

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from nlseg.contract.info import ModelInfo
from nlseg.errors import InputError

#: OpenCV's decode flags for every image nlseg reads (training, inference, calibration, check):
#: gray or colour at the file's own depth (16-bit kept for :func:`to_bgr8`), EXIF orientation
#: applied (what a phone photo shows, not how its sensor stored it). Alpha is dropped here, as
#: :func:`to_bgr8` drops it from BGRA arrays.
READ_FLAGS = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH


def read_image(path: str | os.PathLike[str]) -> np.ndarray | None:
    """An image file as BGR uint8 with its EXIF orientation applied, or None when OpenCV cannot decode it."""
    image = cv2.imread(os.fspath(path), READ_FLAGS)
    if image is None or image.size == 0:
        return None
    return to_bgr8(image)


def normalise(pixels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | None = None) -> torch.Tensor:
    """(pixels / 255 − mean) / std for uint8 pixels, or (pixels − mean) / std for [0, 1] floats, (B, 3, H, W).

    ``mean`` is per channel (3, 1, 1) or per pixel (3, h, w) (thesis §4.4); a per-pixel mean of
    another size (a segmenter run at a new resolution) is resized bilinearly. ``std`` is (3, 1, 1).
    """
    x = pixels.float() / 255.0 if pixels.dtype == torch.uint8 else pixels.float()
    mean = mean.to(device=x.device, dtype=x.dtype)
    if mean.shape[-2:] not in (x.shape[-2:], (1, 1)):
        mean = F.interpolate(mean[None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0]
    x = x - mean
    return x if std is None else x / std.to(device=x.device, dtype=x.dtype)


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Gray, BGRA, 16-bit and float images -> 3-channel BGR uint8 (what OpenCV decodes, made uniform).

    uint16 keeps its high byte (``>> 8``). Floats must be finite and in [0, 1], which is scaled by
    255 (the convention of ``skimage``, ``torchvision`` and ``cv2.imread(...) / 255``); other float
    ranges, NaN and inf are refused with an InputError, not clipped into a wrong image. Other
    integer types must hold values in [0, 255].
    """
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise InputError("the float image holds NaN or inf values", param="source")
        low, high = float(image.min()), float(image.max())
        if low < 0.0 or high > 1.0:
            raise InputError(f"a float image must lie in [0, 1] (scaled by 255); this one spans "
                             f"[{low:.4g}, {high:.4g}]: pass uint8 (0-255) or divide by 255", param="source")
        image = np.rint(image * 255.0).astype(np.uint8)
    elif image.dtype == np.bool_:
        raise InputError("a boolean array is a mask, not an image; pass uint8 (0-255) or float in [0, 1]",
                         param="source")
    elif image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.integer):
            raise InputError(f"unsupported image dtype {image.dtype}; pass uint8, uint16 or float in [0, 1]",
                             param="source")
        low, high = int(image.min()), int(image.max())
        if low < 0 or high > 255:
            raise InputError(f"an image of dtype {image.dtype} must hold values in [0, 255]; this one spans [{low}, {high}]",
                             param="source")
        image = image.astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def preprocess(frames: list[np.ndarray], size: tuple[int, int], info: ModelInfo) -> np.ndarray:
    """BGR uint8 frames -> (B, 3, H, W) float32 model input: resized to ``size`` (area when shrinking),
    RGB, normalised as ``info`` says."""
    height, width = size
    batch = np.empty((len(frames), height, width, 3), np.uint8)
    for i, frame in enumerate(frames):
        shrink = frame.shape[0] > height or frame.shape[1] > width
        cv2.resize(frame, (width, height), dst=batch[i], interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    rgb = torch.from_numpy(batch).permute(0, 3, 1, 2).flip(1)
    return normalise(rgb, *info.normalization.tensors).numpy()
