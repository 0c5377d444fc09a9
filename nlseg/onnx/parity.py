"""Parity of an exported model with PyTorch: the same input through both, compared.

``max_abs_diff`` = max |onnx − torch| over the logits; ``max_rel_diff`` = max_abs_diff /
max |torch| (relative to the logits' scale, so near-zero logits do not inflate it);
``argmax_agreement`` = share of predictions (pixels for segmenters, images for classifiers)
whose class agrees, read from the graph's ``labels`` output when it has one. A check passes
when ``max_abs_diff <= atol + rtol * max|torch|`` (numpy's allclose, on the largest logit) and
``argmax_agreement >= min_agreement``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlseg.contract import normalise, preprocess, read_image
from nlseg.contract.limits import check_size
from nlseg.errors import InputError
from nlseg.onnx.metadata import INPUT_NAME, ModelMetadata, load_model_proto, metadata_of
from nlseg.onnx.ort_op import open_session
from nlseg.onnx.source_model import for_check


@dataclass(frozen=True)
class Tolerances:
    """Limits of a check: max_abs_diff <= atol + rtol * max|torch|, argmax_agreement >= min_agreement."""

    atol: float
    rtol: float
    min_agreement: float


DEFAULT_TOLERANCES: dict[str, Tolerances] = {
    "float32": Tolerances(atol=1e-4, rtol=1e-5, min_agreement=0.999),
    "float16": Tolerances(atol=2e-2, rtol=1e-2, min_agreement=0.99),
}


@dataclass(frozen=True)
class ParityReport:
    """What ``nlseg check`` measured, against which limits, and whether it passed."""

    shape: tuple[int, ...]
    graph: str
    precision: str
    weights: str
    max_abs_diff: float
    max_rel_diff: float
    argmax_agreement: float
    reference_scale: float
    tolerances: Tolerances

    @property
    def abs_limit(self) -> float:
        """atol + rtol · max|torch logits|."""
        return self.tolerances.atol + self.tolerances.rtol * self.reference_scale

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.abs_limit and self.argmax_agreement >= self.tolerances.min_agreement

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (the last line of ``nlseg check --json``)."""
        out = asdict(self)
        out["shape"] = list(self.shape)
        out["abs_limit"] = self.abs_limit
        out["passed"] = self.passed
        return out


def compare(reference: np.ndarray, logits: np.ndarray, labels: np.ndarray | None = None) -> tuple[float, float, float]:
    """(max_abs_diff, max_rel_diff, argmax_agreement) of ONNX ``logits`` against torch ``reference``."""
    reference = reference.astype(np.float64)
    diff = float(np.abs(logits.astype(np.float64) - reference).max())
    scale = float(np.abs(reference).max())
    rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
    predicted = labels if labels is not None else logits.argmax(axis=1)
    agreement = float((predicted.astype(np.int64) == reference.argmax(axis=1)).mean())
    return diff, rel, agreement


def check_shape(metadata: ModelMetadata, shape: tuple[int, ...] | None) -> tuple[int, int, int, int]:
    """The input shape to check at: ``shape`` if the export accepts it, else the exported default."""
    c = metadata.config.in_channels
    h, w = metadata.input_size
    if shape is None:
        return (1, c, h, w)
    if len(shape) != 4:
        raise InputError(f"expected BxCxHxW such as 1x{c}x{h}x{w}, got {'x'.join(map(str, shape))}", param="shape")
    b, c_in, h_in, w_in = shape
    fixed = [(name, got, want) for name, got, want in (("batch", b, 1), ("height", h_in, h), ("width", w_in, w))
             if name not in metadata.dynamic_axes and got != want]
    if c_in != c:
        raise InputError(f"the model takes {c} input channels, got {c_in}", param="shape")
    if fixed:
        name, got, want = fixed[0]
        why = ("a classifier's dense head fixes it" if name != "batch" and metadata.config.task == "classify"
               else "export with --dynamic to vary it")
        raise InputError(f"the export has a fixed {name} of {want} ({why}), got {got}", param="shape")
    check_size((h_in, w_in), metadata.info().min_side, "shape")
    return (b, c_in, h_in, w_in)


def image_input(path: Path, shape: tuple[int, int, int, int], metadata: ModelMetadata) -> np.ndarray:
    """``path`` preprocessed as ``nlseg infer`` does (resized to the shape's HxW, normalised), repeated over the batch."""
    image = read_image(path)
    if image is None:
        raise InputError(f"{path}: not a readable image", param="image")
    if shape[1] != 3:
        raise InputError(f"the model takes {shape[1]} channels; images give 3", param="image")
    batch = preprocess([image], (shape[2], shape[3]), metadata.info())
    return np.repeat(batch, shape[0], axis=0)


def random_input(shape: tuple[int, int, int, int], metadata: ModelMetadata, seed: int) -> np.ndarray:
    """Uniform [0, 1] pixels of ``shape`` (seeded), normalised as the model expects."""
    pixels = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
    return normalise(pixels, *metadata.info().normalization.tensors).numpy()


def check_onnx(
    path: str | os.PathLike[str],
    *,
    weights: Path | None = None,
    shape: tuple[int, ...] | None = None,
    image: Path | None = None,
    seed: int = 0,
    atol: float | None = None,
    rtol: float | None = None,
    min_agreement: float | None = None,
) -> ParityReport:
    """Run the export at ``path`` in ONNX Runtime (CPU) and its PyTorch model on one input and compare.

    The PyTorch model runs in float32: for a ``--half`` export the report measures the whole
    error of the fp16 graph. Limits left None take :data:`DEFAULT_TOLERANCES` of the graph's
    precision. InputError for unusable files, weights or shapes.
    """
    metadata = metadata_of(load_model_proto(path), str(path))
    full_shape = check_shape(metadata, shape)
    x = image_input(image, full_shape, metadata) if image is not None else random_input(full_shape, metadata, seed)
    default = DEFAULT_TOLERANCES[metadata.precision]
    tolerances = Tolerances(atol=default.atol if atol is None else atol, rtol=default.rtol if rtol is None else rtol,
                            min_agreement=default.min_agreement if min_agreement is None else min_agreement)
    source = for_check(metadata, weights)
    session = open_session(path)
    feed = x.astype(np.float16) if metadata.precision == "float16" else x
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {INPUT_NAME: feed})))
    with torch.no_grad():
        reference = source.model.float()(torch.from_numpy(x)).numpy()
    max_abs, max_rel, agreement = compare(reference, outputs["logits"], outputs.get("labels"))
    weights_text = source.origin.path or f"random-init seed {source.origin.seed}"
    return ParityReport(full_shape, metadata.graph, metadata.precision, weights_text, max_abs, max_rel, agreement,
                        float(np.abs(reference).max()), tolerances)
