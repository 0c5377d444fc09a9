"""Metadata objects for TensorRT and Triton tests that need no export, engine or GPU."""

from __future__ import annotations

from nlseg.data.labels import BDD100K_CLASSES, BDD100K_PALETTE
from nlseg.nn.config import ModelConfig
from nlseg.onnx.metadata import ModelMetadata, WeightsOrigin
from nlseg.tensorrt.engine_meta import EngineMetadata, PluginInfo, TensorInfo
from nlseg.tensorrt.shapes import ProfileShapes


def model_metadata(precision: str = "float32", dynamic: tuple[str, ...] = ("batch", "height", "width"),
                   outputs: tuple[str, ...] = ("logits",)) -> ModelMetadata:
    """A BDD100K segmenter's export metadata (the demo model's shape: 19 classes, 90x160)."""
    config = ModelConfig.from_preset("bdd100k", nonlocal_kernel="frac")
    return ModelMetadata(config=config, class_names=BDD100K_CLASSES, palette=BDD100K_PALETTE,
                         input_size=config.image_size, mean=(0.4, 0.45, 0.5), std=(0.25, 0.25, 0.3), graph="plugin",
                         precision=precision, dynamic_axes=dynamic, outputs=outputs,
                         weights=WeightsOrigin("random-init", "0" * 64, seed=0), dataset="bdd100k",
                         nlseg_version="0.1.0")


def engine_metadata(io_dtype: str = "float32", max_batch: int = 8, batch_axis: int = -1,
                    outputs: tuple[str, ...] = ("logits",), version: str = "10.9.0.34",
                    capability: tuple[int, int] = (9, 0)) -> EngineMetadata:
    """An engine's metadata as nlseg export --trt writes it for that model (profile 1..max_batch, 90x160..360x640)."""
    model = model_metadata(outputs=outputs)
    profile = ProfileShapes((1, 3, 90, 160), (1, 3, 90, 160), (max_batch, 3, 360, 640))
    shapes = {"logits": (batch_axis, 19, -1, -1), "labels": (batch_axis, -1, -1)}
    return EngineMetadata(
        tensorrt_version=version, gpu_name="NVIDIA H100 80GB HBM3", compute_capability=capability,
        precision="fp16" if io_dtype == "float16" else "fp32", strongly_typed=True, profile=profile,
        inputs=(TensorInfo("image", io_dtype, (batch_axis, 3, -1, -1)),),
        outputs=tuple(TensorInfo(name, "uint8" if name == "labels" else io_dtype, shapes[name]) for name in outputs),
        plugin=PluginInfo("PairwiseKernel", "nlseg", "1", 6, ("frac",), "float32"), model=model,
        onnx="model.trt.onnx", layers=240, nlseg_version="0.1.0",
        plugin_layers=tuple(f"nlseg_pairwise_{i}/PairwiseKernel" for i in range(6)),
    )
