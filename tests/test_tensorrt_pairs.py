"""(TensorRT, Triton) pairs whose plugin kernel cannot be launched are refused before building, in one line.

TensorRT 10.9-10.15 pass the AOT kernel its 10 arguments, 10.16 and later 10 + 2 null scratch
pointers; Triton 3.2 compiles nlseg's kernel with 10 parameters, 3.5 and later with 12
(:data:`nlseg.tensorrt.compat.TRITON_SCRATCH_PARAMS`, checked against the installed Triton in
test_tensorrt_aot.py). NLSEG_TRITON_UNPINNED=1 cannot override such a pair.
"""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from nlseg.errors import InputError
from nlseg.tensorrt import compat


@pytest.mark.parametrize("unpinned", [False, True])
@pytest.mark.parametrize("tensorrt,triton,passes,compiles,works", [
    ("10.13.3.9", "3.7.1", 10, 12, "use TensorRT 10.13 with Triton 3.2.0 (torch 2.6), or TensorRT >= 10.16 with "
                                   "Triton 3.5.0 (torch 2.9)"),
    ("10.9.0.34", "3.9.0", 10, 12, "use TensorRT 10.9 with Triton 3.2.0 (torch 2.6), or TensorRT >= 10.16"),
    ("10.16.1.11", "3.2.0", 12, 10, "use TensorRT 10.16 with Triton 3.5.0 (torch 2.9), or TensorRT 10.9-10.15 with "
                                    "Triton 3.2.0 (torch 2.6)"),
    ("11.4.0.106", "3.2.0", 12, 10, "use TensorRT 11.4 with Triton 3.5.0 (torch 2.9), or TensorRT 10.9-10.15"),
])
def test_a_pair_with_other_parameter_lists_is_refused_naming_pairs_that_work(monkeypatch, unpinned, tensorrt, triton,
                                                                               passes, compiles, works):
    monkeypatch.delenv(compat.UNPINNED_ENV, raising=False)
    if unpinned:
        monkeypatch.setenv(compat.UNPINNED_ENV, "1")
    with pytest.raises(InputError) as caught:
        compat.check_triton(tensorrt, triton, "building the engine")
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith(f"building the engine: TensorRT {tensorrt} passes the PairwiseKernel kernel {passes} "
                           f"parameters, but Triton {triton} compiles it with {compiles}: ")
    assert works in line


@pytest.mark.parametrize("tensorrt,triton", [("10.13.3.9", "3.2.0"), ("10.16.1.11", "3.5.0"), ("11.4.0.106", "3.5.0")])
def test_the_pinned_pairs_pass(monkeypatch, tensorrt, triton):
    monkeypatch.delenv(compat.UNPINNED_ENV, raising=False)
    compat.check_triton(tensorrt, triton, "building the engine")


def test_the_release_ranges_named():
    assert [compat.pin_releases(p) for p in compat.TRITON_PINS] == ["10.9-10.15", ">= 10.16"]


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs Triton (pip install 'nlseg[dev]')")
def test_the_engine_build_refuses_the_pair_before_anything_else(tmp_path, capsys, monkeypatch):
    """export_engine of a plugin graph with the installed Triton and a TensorRT it cannot pair with: the one line
    comes before the GPU check, the graph rewrite and TensorRT's parser (nothing is written)."""
    import triton

    from nlseg.tensorrt.export import EngineRequest, export_engine
    from tests.test_onnx_cli import cli

    scratch = compat.triton_scratch_params(triton.__version__)
    if scratch is None:
        pytest.skip(f"Triton {triton.__version__} is not in TRITON_SCRATCH_PARAMS (no known parameter list)")
    tensorrt = "10.13.3.9" if scratch else "10.16.1.11"
    monkeypatch.setenv(compat.UNPINNED_ENV, "1")
    onnx_path = tmp_path / "frac.onnx"
    code, _, err = cli(capsys, "export", "--random-init", "--blocks", "1-1-1", "--channels", "8-8-8", "--nonlocal",
                       "frac", "--plugin", "--out", onnx_path)
    assert code == 0, err
    out = tmp_path / "m.engine"
    with pytest.raises(InputError, match=f"^building the engine: TensorRT {tensorrt} passes the PairwiseKernel "
                                         f"kernel {10 + 2 - scratch} parameters"):
        export_engine(SimpleNamespace(__version__=tensorrt), out, EngineRequest(), onnx_path=onnx_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frac.onnx"]
