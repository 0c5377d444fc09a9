"""INT8 calibration for TensorRT 10 (``--int8 --calib-data DIR``).

TensorRT 10 deprecates implicit quantization (calibrators) and TensorRT 11 removed it; nlseg
keeps it for TensorRT 10 because it needs nothing but a folder of representative images. The
calibrator is ``IInt8EntropyCalibrator2``, TensorRT's recommended one for CNNs. Images are
prepared exactly as every backend prepares frames (:func:`nlseg.contract.preprocess`, with the
engine's :class:`~nlseg.contract.ModelInfo`, per-pixel mean included) at the profile's opt shape.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from nlseg.contract import ModelInfo, preprocess, read_image
from nlseg.errors import InputError
from nlseg.io import IMAGE_SUFFIXES, atomic_path

MAX_IMAGES = 1000


def calibration_images(directory: str | os.PathLike[str]) -> list[Path]:
    """The images under ``directory`` (sorted, at most :data:`MAX_IMAGES`); InputError when there are none."""
    root = Path(directory)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder of images", param="calib_data")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}", param="calib_data")
    return paths[:MAX_IMAGES]


def calibration_batches(paths: list[Path], shape: tuple[int, int, int, int], info: ModelInfo) -> Iterator[np.ndarray]:
    """Float32 batches of ``shape`` (B, 3, H, W); the last images that do not fill a batch are left out."""
    batch, _, height, width = shape
    frames: list[np.ndarray] = []
    for path in paths:
        image = read_image(path)
        if image is None:
            raise InputError(f"{path}: not a readable image", param="calib_data")
        frames.append(image)
        if len(frames) == batch:
            yield preprocess(frames, (height, width), info)
            frames = []


def make_calibrator(trt: Any, batches: Iterator[np.ndarray], shape: tuple[int, int, int, int], input_name: str,
                    cache: Path | None) -> Any:
    """An ``IInt8EntropyCalibrator2`` feeding ``batches`` of ``shape`` to ``input_name`` from one CUDA buffer.

    TensorRT 10 networks have an explicit batch dimension: each calibration batch is a whole input of
    the calibration profile's shape (``shape``, set by the builder), and ``get_batch_size``
    (deprecated since 10.0, which removed implicit batch) returns 1, as Polygraphy's calibrator does
    (its ``batch_size`` defaults to 1 and is deprecated). ``cache``: a calibration cache read when it
    exists (calibration is then skipped) and written after.
    """
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.buffer: torch.Tensor | None = None  # allocated by the first batch
            self.count = 0

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            if list(names) != [input_name]:
                raise RuntimeError(f"calibration feeds {input_name!r}, TensorRT asked for {list(names)}")
            batch = next(batches, None)
            if batch is None:
                return None
            if tuple(batch.shape) != tuple(shape):
                raise RuntimeError(f"calibration batch of shape {batch.shape}, the calibration profile is {shape}")
            if self.buffer is None:
                self.buffer = torch.empty(shape, dtype=torch.float32, device="cuda")
            self.buffer.copy_(torch.from_numpy(batch))
            torch.cuda.synchronize()
            self.count += 1
            return [int(self.buffer.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache is not None and cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            if cache is not None:
                with atomic_path(cache) as tmp:
                    tmp.write_bytes(bytes(data))

    return EntropyCalibrator()
