"""The TensorRT plugin's contract, version and precision policy, profiles and engine metadata (no TensorRT needed),
plus the real ``tensorrt.plugin`` registration where TensorRT is importable."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

from nlseg.errors import InputError
from nlseg.ops.omega import KernelParams
from nlseg.tensorrt import compat, rules
from nlseg.tensorrt.engine_meta import (EngineMetadata, check_runtime, metadata_path, read_engine_metadata,
                                        write_engine_metadata)
from nlseg.tensorrt.shapes import ProfileShapes, profile_shapes
from tests.tensorrt_fixtures import engine_metadata, model_metadata

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
S = rules.TensorSpec


def specs(dtype: str = "float32", n=7, m=5, b=2, ce=4, c=8) -> list[rules.TensorSpec]:
    """The plugin's 7 inputs for B, N, M, C', C (None = dynamic)."""
    return [S((b, n, ce), dtype), S((b, m, ce), dtype), S((b, n), "float32"), S((b, m), "float32"),
            S((b, m, c), dtype), S((b, n, c), dtype), S((b,), "float32")]


def test_the_plugin_takes_the_aot_kernels_arguments_in_launch_order():
    """One list of names (nlseg.ops.fused.spec) for the plugin and the AOT kernel, as long as the Triton kernel's
    runtime parameters, which the AOT signature names in that order."""
    pytest.importorskip("triton")
    import inspect

    from nlseg.ops.fused import aot
    from nlseg.ops.fused.kernels import pairwise_forward_kernel

    names = rules.PLUGIN_INPUTS + rules.PLUGIN_EXTRA_ARGS + rules.PLUGIN_OUTPUTS
    assert list(inspect.signature(pairwise_forward_kernel.fn).parameters)[:len(names)] == list(aot._KERNEL_ARGS)
    assert len(aot._KERNEL_ARGS) == len(names)
    assert rules.PLUGIN_ID == "nlseg::PairwiseKernel" and rules.PLUGIN_VERSION == "1"


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_output_is_x_shape_and_type_with_static_and_dynamic_sizes(dtype):
    assert rules.infer_output(specs(dtype)) == S((2, 7, 8), dtype)
    dynamic = specs(dtype, n=None, m=None, b=None)
    assert rules.infer_output(dynamic) == S((None, None, 8), dtype)
    assert rules.channel_counts(dynamic) == (4, 8)


@pytest.mark.parametrize("change,message", [
    (lambda s: s[:6], "takes 7 inputs"),
    (lambda s: [S((2, 7), "float32"), *s[1:]], "theta must have rank 3"),
    (lambda s: [S((2, 7, 4), "int32"), *s[1:]], "theta must be float32 or float16"),
    (lambda s: [*s[:4], S((2, 5, 8), "float16"), *s[5:]], "values is float16 but theta is float32"),
    (lambda s: [*s[:2], S((2, 7), "float16"), *s[3:]], "theta_sq must be float32"),
    (lambda s: [*s[:5], S((2, 9, 8), "float32"), s[6]], "queries N sizes disagree"),
    (lambda s: [*s[:6], S((3,), "float32")], "batch B sizes disagree"),
    (lambda s: [s[0], S((2, 5, 6), "float32"), *s[2:]], "embedding channels C' sizes disagree"),
    (lambda s: [*s[:4], S((2, 5, None), "float32"), S((2, 7, None), "float32"), s[6]], "must be known"),
])
def test_contract_violations_name_the_input(change, message):
    with pytest.raises(ValueError, match=message):
        rules.infer_output(change(specs()))


def test_placeholder_shapes_check_ranks_and_types_only():
    """TensorRT asks for the output type with placeholder shapes: no channel counts then, the rest still checked."""
    unknown = specs(n=None, m=None, b=None, ce=None, c=None)
    assert rules.infer_output(unknown, shapes_known=False) == S((None, None, None), "float32")
    with pytest.raises(ValueError, match="must be known"):
        rules.infer_output(unknown)
    with pytest.raises(ValueError, match="values is float16 but theta is float32"):
        rules.infer_output([*unknown[:4], S((None, None, None), "float16"), *unknown[5:]], shapes_known=False)


@pytest.mark.parametrize("raw,name", [("frac\0", "frac"), ("log", "log"), ("invfrac\0\0", "invfrac")])
def test_attributes_as_the_parser_delivers_them(raw, name):
    """onnx-tensorrt copies a string attribute with its C terminator; floats arrive as float32."""
    lam = float(np.float32(0.1))
    assert rules.plugin_attributes(raw, 0.25, lam, 2) == KernelParams(name, 0.25, lam, 2)


def test_scalar_attributes_arrive_as_one_element_arrays():
    """The plugin declares s, lam, n as arrays (the form every tensorrt.plugin release creates); read as one value."""
    lam = np.array([0.1], np.float32)
    got = rules.plugin_attributes("log\0", np.array([0.5], np.float32), lam, np.array([3], np.int32))
    assert got == KernelParams("log", 0.5, float(lam[0]), 3) and type(got.n) is int


@pytest.mark.parametrize("args,message", [
    (("frac", np.array([0.5, 0.25], np.float32), 0.1, 2), "attribute s must be one value"),
    (("frac", 0.5, 0.1, np.array([], np.int32)), "attribute n must be one value"),
    (("gaussian\0", 0.5, 0.1, 2), "computes frac, invfrac, log, not 'gaussian'"),
    (("fr\0ac", 0.5, 0.1, 2), "not 'fr\\\\x00ac'"),  # only trailing NULs are a terminator
    (("frac", 1.5, 0.1, 2), "needs 0 < s < 1"),
])
def test_bad_attributes_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        rules.plugin_attributes(*args)


def test_triton_pins_follow_nvidias_aot_sample():
    assert compat.triton_pin("10.9.0.34") == compat.TritonPin((10, 9), "3.2.0", 0, "2.6")
    assert compat.triton_pin("10.15.1") == compat.TritonPin((10, 9), "3.2.0", 0, "2.6")
    assert compat.triton_pin("10.16.0") == compat.TritonPin((10, 16), "3.5.0", 2, "2.9")
    assert compat.triton_pin("11.4.0.106").triton == "3.5.0"


def test_an_unpinned_triton_is_refused_unless_asked_for(monkeypatch, capsys):
    """Another Triton whose kernel has the parameter list this TensorRT passes (or one not compiled here)."""
    monkeypatch.delenv(compat.UNPINNED_ENV, raising=False)
    compat.check_triton("11.1.0", "3.5.0", "--trt")
    with pytest.raises(InputError, match=r"--trt: TensorRT 10\.16\.1 builds .* Triton 3\.5\.0 .* has Triton 3\.9\.0: "
                                         r"pip install triton==3\.5\.0 \(torch 2\.9 .*NLSEG_TRITON_UNPINNED=1"):
        compat.check_triton("10.16.1", "3.9.0", "--trt")
    monkeypatch.setenv(compat.UNPINNED_ENV, "1")
    compat.check_triton("10.16.1", "3.9.0", "--trt")
    compat.check_triton("10.13.3", "3.3.1", "--trt")  # no count for 3.3: plugin_kernel checks what it compiles
    assert capsys.readouterr().err.count("building anyway") == 2


def test_type_combinations_switch_data_inputs_and_output_together():
    columns = [c.strip() for c in rules.io_types().split(",")]
    assert len(columns) == len(rules.PLUGIN_INPUTS) + 1
    assert [i for i, c in enumerate(columns) if c == "FP32"] == list(rules.FLOAT32_INPUTS)
    assert all(columns[i] == "FP32|FP16" for i in (*rules.DATA_INPUTS, 7))


def test_launch_grid_is_the_aot_kernels():
    pytest.importorskip("triton")
    from nlseg.ops.fused.aot import AotKernel

    kernel = AotKernel("k", "", "sm_90", None, 8, 256, 40000, 0, 0, 128, 12)  # type: ignore[arg-type]
    assert kernel.scratch_params == 2
    launch = rules.launch_params(kernel.block_rows, kernel.threads_per_block, kernel.shared_mem, 3, 1000,
                                 lambda a, b: -(-a // b))
    assert (launch.grid_x, launch.grid_y, 1) == kernel.grid(3, 1000)
    assert (launch.block_x, launch.shared_mem) == (256, 40000)
    assert launch.grid_x == math.ceil(1000 / 128)


def test_versions_and_the_minimum():
    assert compat.parse_version("10.9.0.34") == (10, 9, 0, 34)
    assert compat.parse_version("11.0.0+cuda13") == (11, 0, 0)
    with pytest.raises(ValueError):
        compat.parse_version("dev")
    compat.check_version("10.9.0", "--trt")
    with pytest.raises(InputError, match=r"--trt: TensorRT 10\.8\.0 is too old.*>= 10\.9.*pypi\.nvidia\.com"):
        compat.check_version("10.8.0", "--trt")
    assert compat.strongly_typed_only("11.1.0") and not compat.strongly_typed_only("10.13.0")


def test_precision_on_tensorrt_10_uses_builder_flags_for_a_float32_graph():
    plan = compat.plan_precision("10.13.0", half=True, int8=False)
    assert (plan.precision, plan.onnx_half, plan.strongly_typed) == ("fp16", False, False)
    assert plan.builder_flags == ("FP16", "OBEY_PRECISION_CONSTRAINTS") and plan.pin_preprocessing
    assert plan.plugin_dtype == "float16"
    fp32 = compat.plan_precision("10.13.0", half=False, int8=False)
    assert (fp32.precision, fp32.strongly_typed, fp32.builder_flags, fp32.tf32) == ("fp32", True, (), False)
    given_fp16 = compat.plan_precision("10.13.0", half=False, int8=False, onnx_precision="float16")
    assert (given_fp16.precision, given_fp16.strongly_typed, given_fp16.builder_flags) == ("fp16", True, ())


def test_precision_on_tensorrt_11_comes_from_the_graph():
    plan = compat.plan_precision("11.0.0", half=True, int8=False)
    assert (plan.precision, plan.onnx_half, plan.strongly_typed, plan.builder_flags) == ("fp16", True, True, ())
    assert not plan.pin_preprocessing and plan.plugin_dtype == "float16"
    with pytest.raises(InputError, match="^half: TensorRT 11.0.0 is strongly typed.*export the ONNX in half precision"):
        compat.plan_precision("11.0.0", half=True, int8=False, onnx_precision="float32")


def test_int8_calibrates_on_tensorrt_10_only():
    plan = compat.plan_precision("10.9.0", half=False, int8=True)
    assert plan.calibrate and "INT8" in plan.builder_flags and not plan.strongly_typed
    with pytest.raises(InputError, match="^int8: TensorRT 11.0.0 removed INT8 calibration.*Q/DQ"):
        compat.plan_precision("11.0.0", half=False, int8=True)
    with pytest.raises(InputError, match="^int8: calibration needs the float32 ONNX"):
        compat.plan_precision("10.9.0", half=False, int8=True, onnx_precision="float16")


def test_profile_defaults_and_checks():
    meta = model_metadata()
    assert profile_shapes(meta) == ProfileShapes((1, 3, 90, 160), (1, 3, 90, 160), (1, 3, 90, 160))
    shapes = profile_shapes(meta, max_shape=(4, 3, 360, 640))
    assert shapes.opt == (1, 3, 90, 160) and shapes.accepts((2, 3, 180, 320)) and not shapes.accepts((8, 3, 90, 160))
    assert shapes.describe() == "1x3x90x160 .. 4x3x360x640"
    assert profile_shapes(meta, min_shape=(2, 3, 45, 80)).opt == (2, 3, 45, 80)
    with pytest.raises(InputError, match="^opt_shape: the model takes 3 input channels, got 1"):
        profile_shapes(meta, opt_shape=(1, 1, 90, 160))
    with pytest.raises(InputError, match="^max_shape: 1x3x45x80 is smaller than the opt shape 1x3x90x160 in height"):
        profile_shapes(meta, max_shape=(1, 3, 45, 80))
    with pytest.raises(InputError, match="^min_shape: expected BxCxHxW"):
        profile_shapes(meta, min_shape=(90, 160))
    fixed = model_metadata(dynamic=("batch",))
    with pytest.raises(InputError, match="^max_shape: the export has a fixed height of 90, got 180"):
        profile_shapes(fixed, max_shape=(1, 3, 180, 320))


def test_engine_metadata_round_trips_through_json(tmp_path):
    meta = engine_metadata(io_dtype="float16", outputs=("logits", "labels"))
    engine = tmp_path / "m.engine"
    assert write_engine_metadata(engine, meta) == metadata_path(engine) == tmp_path / "m.engine.json"
    data = json.loads(metadata_path(engine).read_text())
    assert data["gpu"] == {"name": "NVIDIA H100 80GB HBM3", "compute_capability": [9, 0]}
    assert data["plugin"]["name"] == "PairwiseKernel" and data["plugin"]["version"] == "1"
    assert data["model"]["nlseg.class_names"].startswith('["road"')
    assert read_engine_metadata(engine) == meta
    assert EngineMetadata.from_dict(meta.to_dict()) == meta


def test_engine_metadata_missing_or_damaged_is_one_line(tmp_path):
    engine = tmp_path / "m.engine"
    with pytest.raises(InputError, match="m.engine.json is missing"):
        read_engine_metadata(engine)
    metadata_path(engine).write_text('{"metadata_version": 1}')
    with pytest.raises(InputError, match="damaged engine metadata"):
        read_engine_metadata(engine)


def test_runtime_check_refuses_other_tensorrt_versions_and_gpus():
    meta = engine_metadata(version="10.9.0.34", capability=(9, 0))
    check_runtime(meta, "m.engine", "10.9.0.34", (9, 0), "NVIDIA H200")
    with pytest.raises(InputError, match="built with TensorRT 10.9.0.34, this machine has TensorRT 10.13.0.35"):
        check_runtime(meta, "m.engine", "10.13.0.35", (9, 0), "NVIDIA H200")
    with pytest.raises(InputError, match=r"built for NVIDIA H100 80GB HBM3 \(compute capability 9\.0\), this GPU is "
                                         r"NVIDIA A100 \(8\.0\)"):
        check_runtime(meta, "m.engine", "10.9.0.34", (8, 0), "NVIDIA A100")


@pytest.mark.skipif(not HAS_TENSORRT, reason="needs TensorRT >= 10.9 (tensorrt.plugin); not installable here")
def test_tensorrt_plugin_registration():
    import tensorrt as trt
    import tensorrt.plugin as trtp

    from nlseg.tensorrt.plugin import register_plugin

    register_plugin()
    register_plugin()  # idempotent
    creator = trt.get_plugin_registry().get_creator(rules.PLUGIN_NAME, rules.PLUGIN_VERSION, rules.PLUGIN_NAMESPACE)
    assert creator is not None
    assert {f.name for f in creator.field_names} == {"kernel", "s", "lam", "n"}
    assert trtp.op.nlseg.PairwiseKernel is not None
