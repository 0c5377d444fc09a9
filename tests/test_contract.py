"""One model contract: ModelInfo read from a checkpoint, ONNX metadata and engine metadata alike, and one
preprocessing function for every backend, the trainer and the INT8 calibrator (no TensorRT needed)."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from nlseg.checkpoint import save_checkpoint
from nlseg.contract import ModelInfo, Normalization, info_from_checkpoint, normalise, preprocess
from nlseg.nn.config import ModelConfig, build_model
from nlseg.onnx.export import export_onnx
from nlseg.onnx.metadata import read_metadata
from nlseg.onnx.source_model import from_checkpoint
from nlseg.tensorrt.calibration import calibration_batches
from nlseg.tensorrt.engine_meta import EngineMetadata, engine_info
from nlseg.tensorrt.shapes import ProfileShapes
from tests.tensorrt_fixtures import engine_metadata

MEAN_IMAGE = torch.linspace(0.1, 0.7, 3 * 12 * 20).reshape(3, 12, 20)


@pytest.fixture(scope="module")
def per_pixel_export(tmp_path_factory):
    """A thesis-recipe segmenter (per-pixel training mean) as a checkpoint and its ONNX export."""
    root = tmp_path_factory.mktemp("contract")
    config = ModelConfig.from_preset("bdd100k", blocks=(1, 1, 1), channels=(4, 4, 4), image_size=(12, 20))
    ckpt = root / "pp.pt"
    norm = {"mean": MEAN_IMAGE.mean((1, 2)).tolist(), "std": [1.0] * 3, "per_pixel": True}
    save_checkpoint(ckpt, build_model(config), config, meta={"normalization": norm, "dataset": "bdd100k"},
                    input_mean=MEAN_IMAGE)
    result = export_onnx(from_checkpoint(ckpt), root / "pp.onnx")
    return ckpt, result.path


def test_per_pixel_mean_survives_the_engine_metadata(per_pixel_export):
    """Checkpoint → ONNX metadata → .engine.json (as nlseg export --trt writes it) → ModelInfo."""
    _, onnx_path = per_pixel_export
    model = read_metadata(onnx_path)
    meta = replace(engine_metadata(), model=model)
    stored = EngineMetadata.from_dict(json.loads(json.dumps(meta.to_dict())))
    info = stored.info()
    assert info.normalization.mean_image is not None
    np.testing.assert_allclose(info.normalization.mean_image, MEAN_IMAGE.numpy(), atol=1e-6)
    assert info.input_size == (90, 160) and info.dynamic  # the profile's opt size; it spans sizes
    assert info.precision == "float32" and info.class_names == model.class_names


def test_every_reader_gives_the_same_normalisation(per_pixel_export):
    ckpt, onnx_path = per_pixel_export
    payload = torch.load(ckpt, weights_only=True)
    from_ckpt = info_from_checkpoint(ModelConfig.from_dict(payload["model_config"]), payload["meta"],
                                     payload["input_mean"])
    from_onnx = read_metadata(onnx_path).info()
    from_engine = engine_info(read_metadata(onnx_path), ProfileShapes((1, 3, 12, 20), (1, 3, 12, 20), (1, 3, 12, 20)))
    frame = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    batches = [preprocess([frame], (12, 20), info) for info in (from_ckpt, from_onnx, from_engine)]
    np.testing.assert_allclose(batches[1], batches[0], atol=1e-6)
    np.testing.assert_allclose(batches[2], batches[0], atol=1e-6)
    resized = cv2.resize(frame, (20, 12), interpolation=cv2.INTER_AREA)[:, :, ::-1].transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(batches[0][0], resized - MEAN_IMAGE.numpy(), atol=1e-5)


def test_calibrator_prepares_images_like_the_backends(per_pixel_export, tmp_path):
    """The INT8 calibration batches are exactly what preprocess gives the runtime (per-pixel mean included)."""
    _, onnx_path = per_pixel_export
    frames = [np.random.default_rng(i).integers(0, 256, (24, 40, 3), dtype=np.uint8) for i in range(2)]
    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{i}.png"), frame)
    shapes = ProfileShapes((2, 3, 12, 20), (2, 3, 12, 20), (2, 3, 12, 20))
    info = engine_info(read_metadata(onnx_path), shapes)
    (batch,) = list(calibration_batches(sorted(tmp_path.glob("*.png")), shapes.opt, info))
    np.testing.assert_array_equal(batch, preprocess(frames, (12, 20), info))


def test_normalise_is_the_trainers_and_the_runtimes():
    """uint8 and [0, 1] inputs, per-channel and per-pixel means (resized to a new size), std."""
    pixels = torch.randint(0, 256, (2, 3, 6, 10), dtype=torch.uint8)
    mean, std = torch.tensor([0.1, 0.2, 0.3]).reshape(3, 1, 1), torch.tensor([0.5, 0.25, 2.0]).reshape(3, 1, 1)
    expected = (pixels.float() / 255 - mean) / std
    torch.testing.assert_close(normalise(pixels, mean, std), expected)
    torch.testing.assert_close(normalise(pixels.float() / 255, mean, std), expected)
    image_mean = torch.rand(3, 3, 5)
    out = normalise(pixels, image_mean)
    up = torch.nn.functional.interpolate(image_mean[None], size=(6, 10), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(out, pixels.float() / 255 - up)


def test_normalization_from_a_trainers_mean():
    mean = torch.rand(3, 4, 5)
    per_pixel = Normalization.from_mean(mean, per_pixel=True)
    flat = Normalization.from_mean(mean, per_pixel=False)
    assert per_pixel.mean_image is not None and flat.mean_image is None
    assert flat.mean == pytest.approx(mean.mean((1, 2)).tolist())
    info = ModelInfo((4, 5), normalization=per_pixel)
    x = torch.rand(1, 3, 4, 5)
    torch.testing.assert_close(normalise(x, *info.normalization.tensors), x - mean)
