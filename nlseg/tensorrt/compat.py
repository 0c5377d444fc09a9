"""Which TensorRT this is, how to get one, and how TensorRT 10 and 11 differ for nlseg.

- Ahead-of-time Python plugins (``tensorrt.plugin.aot_impl``) arrived in TensorRT 10.9: older
  versions are refused.
- TensorRT 11 removed weak typing: ``BuilderFlag.FP16`` / ``INT8`` / ``OBEY_PRECISION_CONSTRAINTS``
  and INT8 calibrators are gone, every network is strongly typed, and the precision of every
  tensor comes from the ONNX graph. TensorRT 10 builds fp32 and fp16 ONNX graphs strongly typed
  too, and an fp32 graph with ``--half`` / ``--int8`` weakly typed through builder flags, with the
  plugin's preprocessing pinned to float32 (:class:`PrecisionPlan`).
- The plugin's kernel is compiled by Triton, and each TensorRT release is paired with the Triton
  release NVIDIA's own AOT plugin sample pins for it (:data:`TRITON_PINS`): the kernels of
  Triton 3.5.0 (and later) end with two scratch-pointer parameters, which only TensorRT 10.16
  and later pair with; a pair whose parameter lists differ is refused before building
  (:func:`check_triton`).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from types import ModuleType

from nlseg.errors import InputError
from nlseg.tensorrt.rules import PLUGIN_EXTRA_ARGS, PLUGIN_INPUTS, PLUGIN_OUTPUTS

MIN_TENSORRT = (10, 9)
INSTALL_HINT = ("pip install --extra-index-url https://pypi.nvidia.com 'tensorrt-cu12>=10.9' "
                "(tensorrt-cu13 for CUDA 13) on a machine with an NVIDIA GPU, or run inside an "
                "nvcr.io/nvidia/tensorrt container")
_MIN = ".".join(map(str, MIN_TENSORRT))


@dataclass(frozen=True)
class TritonPin:
    """The Triton release NVIDIA's AOT plugin sample pins from TensorRT ``first`` on, its kernels' trailing
    scratch-pointer parameters (after the plugin's inputs, int32 extra arguments and outputs), and the
    PyTorch release whose CUDA wheels pin that Triton."""

    first: tuple[int, int]
    triton: str
    scratch_params: int
    torch: str


# samples/python/quickly_deployable_plugins/requirements.txt of NVIDIA/TensorRT: release 10.9 lists
# `triton` unpinned (3.2.0 was the current release), 10.10 to 10.15 pin triton==3.2.0, 10.16, 11.0 and
# 11.1 pin triton==3.5.0. Triton 3.2.0 compiles nlseg's kernel with exactly its 10 parameters; 3.5.0
# appends global and profile scratch pointers (12; both checked by compiling here). torch 2.6 pins
# triton==3.2.0, torch 2.9 triton==3.5.0.
TRITON_PINS: tuple[TritonPin, ...] = (TritonPin((10, 9), "3.2.0", 0, "2.6"), TritonPin((10, 16), "3.5.0", 2, "2.9"))
# Trailing scratch pointers of nlseg's kernel per Triton (major, minor), counted by compiling it with that
# release (tests/test_tensorrt_aot.py checks the installed one); releases not listed were not compiled here.
TRITON_SCRATCH_PARAMS: dict[tuple[int, int], int] = {(3, 2): 0, (3, 5): 2, (3, 7): 2, (3, 9): 2}
UNPINNED_ENV = "NLSEG_TRITON_UNPINNED"
KERNEL_ARGUMENTS = len(PLUGIN_INPUTS + PLUGIN_EXTRA_ARGS + PLUGIN_OUTPUTS)  # what TensorRT passes before scratch


def parse_version(text: str) -> tuple[int, ...]:
    """'10.9.0.34' -> (10, 9, 0, 34); ValueError when it does not start with a number."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", text)
    if match is None:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(p) for p in match.group(1).split("."))


def check_version(version: str, what: str) -> None:
    """InputError, prefixed by ``what`` needed it, when TensorRT ``version`` has no ahead-of-time Python plugins."""
    if parse_version(version)[:2] < MIN_TENSORRT:
        raise InputError(f"{what}: TensorRT {version} is too old: the PairwiseKernel plugin needs TensorRT >= "
                         f"{_MIN} (ahead-of-time Python plugins); install it with {INSTALL_HINT}")


def import_tensorrt(what: str) -> ModuleType:
    """The ``tensorrt`` module, or one InputError line saying ``what`` needs it and how to install it."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as exc:
        if getattr(exc, "name", None) == "tensorrt":
            raise InputError(f"{what}: this needs TensorRT >= {_MIN}, which is not installed; install it with "
                             f"{INSTALL_HINT}") from None
        raise InputError(f"{what}: TensorRT is installed but cannot be loaded ({_first_line(exc)}); reinstall it "
                         f"with {INSTALL_HINT}") from None
    except OSError as exc:  # a missing libnvinfer or CUDA runtime
        raise InputError(f"{what}: TensorRT cannot load its libraries ({_first_line(exc)}); reinstall it with "
                         f"{INSTALL_HINT}") from None
    check_version(trt.__version__, what)
    return trt


def triton_pin(version: str) -> TritonPin:
    """The :class:`TritonPin` of TensorRT ``version`` (>= 10.9)."""
    release = parse_version(version)[:2]
    return [pin for pin in TRITON_PINS if pin.first <= release][-1]


def triton_scratch_params(version: str) -> int | None:
    """The trailing scratch pointers Triton ``version`` gives nlseg's kernel, None for a release not compiled here."""
    return TRITON_SCRATCH_PARAMS.get(parse_version(version)[:2])


def pin_releases(pin: TritonPin) -> str:
    """The TensorRT releases ``pin`` is for: '10.9-10.15', '>= 10.16'."""
    later = [p.first for p in TRITON_PINS if p.first > pin.first]
    if not later:
        return f">= {pin.first[0]}.{pin.first[1]}"
    last = (later[0][0], later[0][1] - 1)
    return f"{pin.first[0]}.{pin.first[1]}-{last[0]}.{last[1]}"


def check_triton(tensorrt_version: str, triton_version: str, what: str) -> None:
    """InputError, prefixed by ``what`` needed it, unless Triton is the release pinned for this TensorRT.

    A Triton whose kernel has another parameter list than this TensorRT passes (Triton 3.5 and later
    with TensorRT 10.9-10.15, 3.2 with 10.16 and later) is refused in any case, naming the pairs that
    work. With ``NLSEG_TRITON_UNPINNED=1`` another Triton is accepted with a warning; the plugin
    then still refuses a kernel whose parameter list or scratch memory does not match what
    this TensorRT passes (:func:`nlseg.tensorrt.plugin.plugin_kernel`).
    """
    pin = triton_pin(tensorrt_version)
    if parse_version(triton_version)[:3] == parse_version(pin.triton)[:3]:
        return
    release = ".".join(map(str, parse_version(tensorrt_version)[:2]))
    scratch = triton_scratch_params(triton_version)
    if scratch is not None and scratch != pin.scratch_params:
        other = next(p for p in TRITON_PINS if p.scratch_params == scratch)
        raise InputError(f"{what}: TensorRT {tensorrt_version} passes the PairwiseKernel kernel "
                         f"{KERNEL_ARGUMENTS + pin.scratch_params} parameters, but Triton {triton_version} compiles "
                         f"it with {KERNEL_ARGUMENTS + scratch}: use TensorRT {release} with Triton {pin.triton} "
                         f"(torch {pin.torch}), or TensorRT {pin_releases(other)} with Triton {other.triton} "
                         f"(torch {other.torch})")
    message = (f"TensorRT {tensorrt_version} builds the PairwiseKernel plugin with Triton {pin.triton} (the release "
               f"NVIDIA's AOT plugin sample pins for it), this machine has Triton {triton_version}")
    if os.environ.get(UNPINNED_ENV) == "1":
        print(f"warning: {what}: {message}; building anyway ({UNPINNED_ENV}=1)", file=sys.stderr)
        return
    raise InputError(f"{what}: {message}: pip install triton=={pin.triton} (torch {pin.torch} is built for it), "
                     f"or set {UNPINNED_ENV}=1 to try this pair")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def strongly_typed_only(version: str) -> bool:
    """True for TensorRT >= 11, where every network is strongly typed."""
    return parse_version(version)[0] >= 11


@dataclass(frozen=True)
class PrecisionPlan:
    """How one engine gets its precision.

    ``onnx_half``: the ONNX graph is float16 (exported with ``--half``); ``strongly_typed``: the
    network takes every type from the graph; ``builder_flags``: names of ``trt.BuilderFlag`` to
    set (weak typing, TensorRT 10 only); ``pin_preprocessing``: pin the plugin's preprocessing
    layers to float32 and the plugin to ``plugin_dtype`` (needed under weak typing, where
    TensorRT would otherwise pick types per layer); ``tf32``: allow TF32 convolutions.
    """

    precision: str
    onnx_half: bool
    strongly_typed: bool
    builder_flags: tuple[str, ...]
    plugin_dtype: str
    pin_preprocessing: bool
    tf32: bool
    calibrate: bool


def plan_precision(version: str, half: bool, int8: bool, onnx_precision: str | None = None) -> PrecisionPlan:
    """The plan for TensorRT ``version``; ``onnx_precision`` is the given ONNX's (None: nlseg exports it).

    InputError for what that TensorRT cannot do: INT8 calibration on TensorRT 11 (explicit Q/DQ
    quantization is the replacement), ``--half`` of a float32 ONNX on TensorRT 11, ``--int8`` of
    a float16 ONNX.
    """
    eleven = strongly_typed_only(version)
    fp16_onnx = onnx_precision == "float16"
    if int8:
        if eleven:
            raise InputError(f"TensorRT {version} removed INT8 calibration (implicit quantization); "
                             "quantize the ONNX explicitly with Q/DQ nodes (e.g. NVIDIA ModelOpt) and build "
                             "that, or use TensorRT 10.x for int8 with calibration data", param="int8")
        if fp16_onnx:
            raise InputError("calibration needs the float32 ONNX; export it without half precision", param="int8")
        return PrecisionPlan("int8", False, False, ("INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"), "float16",
                             True, True, True)
    if half and onnx_precision == "float32" and eleven:
        raise InputError(f"TensorRT {version} is strongly typed, so fp16 must be in the graph: export "
                         "the ONNX in half precision (or pass the checkpoint and let nlseg export it)", param="half")
    if half and not eleven and not fp16_onnx:
        return PrecisionPlan("fp16", False, False, ("FP16", "OBEY_PRECISION_CONSTRAINTS"), "float16", True, True,
                             False)
    if half or fp16_onnx:
        return PrecisionPlan("fp16", True, True, (), "float16", False, True, False)
    return PrecisionPlan("fp32", False, True, (), "float32", False, False, False)
