"""INT8 OpenVINO models with NNCF post-training quantization, calibrated on real frames.

``nncf.quantize`` inserts FakeQuantize nodes (the ``PERFORMANCE`` preset: symmetric int8
activations and weights, per channel for weights) with ranges from the calibration frames,
then corrects each layer's bias for the shift quantization causes (fast bias correction).
OpenVINO's CPU plugin runs the result with integer kernels. NNCF is part of ``nlseg[openvino]``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from types import ModuleType
from typing import Any

import numpy as np

from nlseg.errors import InputError
from nlseg.openvino.ir import INSTALL

METHOD = "nncf"


def import_nncf() -> ModuleType:
    """The ``nncf`` module, quiet (warnings and errors only); InputError saying how to install it."""
    try:
        import nncf
    except ImportError:
        raise InputError(f"INT8 OpenVINO models need NNCF, which is not installed: {INSTALL}") from None
    nncf.set_log_level(logging.WARNING)
    return nncf


def quantize_model(model: Any, inputs: list[np.ndarray]) -> Any:
    """``model`` (an ``openvino.Model``) quantized to INT8 on ``inputs``, (1, 3, H, W) float32 model inputs."""
    nncf = import_nncf()
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars
        return nncf.quantize(model, nncf.Dataset(inputs), subset_size=len(inputs),
                             preset=nncf.QuantizationPreset.PERFORMANCE, fast_bias_correction=True)
