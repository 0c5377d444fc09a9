"""The one table of tensor types and precisions (nlseg/precision.py) that the backends and the engine builder read."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nlseg import precision


def test_each_type_names_one_numpy_torch_tensorrt_and_triton_type():
    for name, dtype in precision.DTYPES.items():
        if name != "bfloat16":  # NumPy has none
            assert np.dtype(name).name == name
        assert str(dtype.torch) == f"torch.{name}"
    assert len({d.tensorrt for d in precision.DTYPES.values()}) == len(precision.DTYPES)
    assert precision.DTYPES["float16"].triton_server == "TYPE_FP16"


def test_spellings_convert_both_ways():
    assert precision.from_tensorrt("HALF") == "float16" and precision.from_tensorrt("FP8") == "fp8"
    assert precision.torch_dtype("bfloat16") is torch.bfloat16
    assert [precision.precision_of(d) for d in precision.PRECISIONS.values()] == list(precision.PRECISIONS)
    with pytest.raises(KeyError):
        precision.precision_of("uint8")
