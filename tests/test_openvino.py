"""The OpenVINO backend (.onnx exports and IR files with nlseg's metadata) and INT8 on the CPU (ONNX Runtime QDQ,
OpenVINO with NNCF), checked against the torch fp32 model on frames of the bundled clip."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import nlseg
from nlseg.assets import SAMPLE_CLIP, default_weights
from nlseg.contract import preprocess
from nlseg.errors import InputError
from nlseg.onnx.metadata import read_metadata

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'nlseg[openvino]')")

ROOT = Path(__file__).resolve().parents[1]
MODEL_SIZE = (72, 128)  # a small size the bundled segmenter runs at (dynamic axes), to keep the tests fast


def nlseg_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nlseg", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


@functools.lru_cache(maxsize=2)
def clip_batch(size: tuple[int, int] = MODEL_SIZE) -> np.ndarray:
    """Six frames of the bundled clip, spread over it, as one normalised batch at ``size``."""
    capture = cv2.VideoCapture(str(SAMPLE_CLIP))
    frames = []
    ok, frame = capture.read()
    while ok:
        frames.append(frame)
        ok, frame = capture.read()
    capture.release()
    if not frames:
        pytest.skip(f"{SAMPLE_CLIP}: the bundled sample clip is not here or not readable")
    picked = [frames[i] for i in np.linspace(0, len(frames) - 1, 6).astype(int)]
    return preprocess(picked, size, nlseg.load(device="cpu").info)


@pytest.fixture(scope="module")
def torch_seg():
    try:
        return nlseg.load(default_weights(), device="cpu")
    except InputError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def exports(torch_seg, tmp_path_factory):
    folder = tmp_path_factory.mktemp("openvino")
    return {"onnx": torch_seg.export("onnx", folder / "m.onnx"), "xml": torch_seg.export("openvino", folder / "m.xml"),
            "folder": folder}


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())


@pytest.mark.parametrize("kind", ["onnx", "xml"])
def test_fp32_matches_torch(torch_seg, exports, kind):
    seg = nlseg.load(exports[kind], backend="openvino")
    assert seg.backend.name == "openvino" and seg.backend.precision == "fp32" and seg.backend.device == "cpu"
    x = clip_batch()
    want = torch_seg.backend.logits(x)
    got = seg.backend.logits(x)
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-3 * max(1.0, np.abs(want).max())
    labels = seg.backend.predict(x)
    assert labels.dtype == np.uint8 and labels.shape == (len(x), *MODEL_SIZE)
    assert np.array_equal(labels, got.argmax(1))  # the arg-max in the graph is the logits' arg-max
    assert agreement(labels, torch_seg.backend.predict(x)) >= 0.999


def test_bf16_is_explicit_and_agrees_with_torch(torch_seg, exports):
    core = ov.Core()
    if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        with pytest.raises(InputError, match="no bf16"):
            nlseg.load(exports["xml"], precision="bf16")
        return
    seg = nlseg.load(exports["xml"], precision="bf16")
    assert seg.backend.precision == "bf16" and "(bf16)" in seg.backend.device_name()
    x = clip_batch((144, 256))  # at 72x128 class borders are a larger share of the pixels (98.6% agree there)
    assert agreement(seg.backend.predict(x), torch_seg.backend.predict(x)) >= 0.99
    compiled = seg.backend.compiled  # one static compilation per input shape, each at the precision asked for
    assert ("labels", tuple(x.shape)) in compiled and len(compiled) == 2
    assert {c.get_property("INFERENCE_PRECISION_HINT").get_type_name() for c in compiled.values()} == {"bf16"}


def test_each_input_shape_compiles_once_and_the_cache_is_bounded(exports):
    from nlseg.runtime.openvino_backend import MAX_COMPILED

    seg = nlseg.load(exports["onnx"], backend="openvino")
    x = clip_batch((96, 160))[:1]
    first = seg.backend.predict(x)
    logits = seg.backend.logits(x)  # a second model, of the logits alone
    assert np.array_equal(logits.argmax(1), first) and list(seg.backend.compiled)[-1] == ("logits", (1, 3, 96, 160))
    sizes = [(64 + 16 * i, 128) for i in range(MAX_COMPILED)]
    for size in sizes:
        seg.backend.predict(clip_batch(size)[:1])
    keys = list(seg.backend.compiled)
    assert len(keys) == MAX_COMPILED and keys[-1] == ("labels", (1, 3, *sizes[-1]))
    assert ("labels", (1, 3, 96, 160)) not in keys  # the least recently used went first
    again = seg.backend.predict(x)  # recompiled for that shape: the same labels
    assert np.array_equal(again, first) and list(seg.backend.compiled)[-1] == ("labels", (1, 3, 96, 160))


def test_ir_carries_the_metadata(exports):
    onnx_info = read_metadata(exports["onnx"]).info()
    seg = nlseg.load(exports["xml"])
    assert seg.backend.name == "openvino"  # .xml picks the backend
    assert seg.info.to_dict() == onnx_info.to_dict()
    assert exports["xml"].with_suffix(".bin").is_file()
    assert not [p for p in exports["folder"].iterdir() if ".tmp-" in p.name]


def test_infer_and_profile_on_openvino(exports, tmp_path):
    import openvino as ov

    bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    out = tmp_path / "run"
    infer = ("infer", SAMPLE_CLIP, "--weights", exports["xml"], "--imgsz", "72x128", "--no-video", "--vid-stride", "40",
             "--out", out)
    result = nlseg_cli(*infer, "--half")
    if not bf16:  # a CPU without bf16 (no AVX512-BF16 or AMX): --half is refused in one line, fp32 runs
        assert result.returncode == 2 and "no bf16 support" in result.stderr and len(result.stderr.splitlines()) == 1
        result = nlseg_cli(*infer)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "openvino" and summary["frames"] >= 2
    assert summary["precision"] == ("bf16" if bf16 else "fp32")
    result = nlseg_cli("profile", exports["onnx"], "--backend", "openvino", "--shape", "1x3x72x128", "--warmup", "1",
                       "--iters", "3", "--json")
    assert result.returncode == 0, result.stderr
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["backend"] == "openvino" and last["precision"] == "fp32" and last["p50_ms"] > 0


@pytest.mark.parametrize("fmt,suffix,method", [("onnx", ".onnx", "onnxruntime-qdq"), ("openvino", ".xml", "nncf")])
def test_int8_calibrated_on_frames_agrees_with_fp32(torch_seg, tmp_path, fmt, suffix, method):
    path = torch_seg.export(fmt, tmp_path / f"int8{suffix}", int8=True, calib_frames=6, input_size=MODEL_SIZE)
    seg = nlseg.load(path)
    assert seg.backend.precision == "int8"
    record = read_metadata(path).quantization if suffix == ".onnx" else None
    if record is not None:
        assert record["method"] == method and record["frames"] == 6 and "sample_drive" in record["calibration"]
    x = clip_batch()
    assert agreement(seg.backend.predict(x), torch_seg.backend.predict(x)) >= 0.9
    if fmt == "onnx":
        ops = {n.op_type for n in __import__("onnx").load(str(path)).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        with pytest.raises(InputError, match="precision"):
            nlseg.load(path, precision="fp32")
    else:
        with pytest.raises(InputError, match="runs at int8"):
            nlseg.load(path, precision="bf16")


def test_int8_calibrates_on_a_folder(torch_seg, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    capture = cv2.VideoCapture(str(SAMPLE_CLIP))
    for i in range(3):
        ok, frame = capture.read()
        assert ok
        cv2.imwrite(str(folder / f"{i}.png"), frame)
    capture.release()
    path = torch_seg.export("openvino", tmp_path / "f.xml", int8=True, calib_data=folder, input_size=MODEL_SIZE)
    assert nlseg.load(path).backend.precision == "int8"
    model = ov.Core().read_model(str(path))
    record = json.loads(model.get_rt_info()["nlseg"]["nlseg.quantization"].astype(str))
    assert record["frames"] == 3 and record["calibration"] == str(folder)


def test_bad_openvino_inputs_are_one_line(exports, tmp_path):
    lonely = tmp_path / "lonely.xml"
    lonely.write_text(exports["xml"].read_text())
    result = nlseg_cli("infer", SAMPLE_CLIP, "--weights", lonely, "--no-video", "--out", tmp_path / "o")
    assert result.returncode == 2 and "lonely.bin" in result.stderr and "Traceback" not in result.stderr
    plugin = nlseg_cli("export", "--plugin", "--format", "openvino", "--out", tmp_path / "p.xml")
    assert plugin.returncode == 2 and "--plugin" in plugin.stderr and "Traceback" not in plugin.stderr
    half = nlseg.load(device="cpu").export("onnx", tmp_path / "half.onnx", half=True)
    with pytest.raises(InputError, match="export without --half"):  # OpenVINO's precision is chosen at load
        nlseg.load(half, backend="openvino")
    with pytest.raises(InputError, match="not quantized"):
        nlseg.load(exports["xml"], precision="int8")
    with pytest.raises(InputError, match="not onnxruntime"):
        nlseg.load(exports["xml"], backend="onnxruntime")
