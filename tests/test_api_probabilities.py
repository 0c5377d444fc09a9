"""``Segmenter.predict_proba`` on the torch and onnxruntime backends, ``nlseg.train`` / ``nlseg.evaluate``
at the top level, and ``load``'s ``precision`` with the deprecated ``half``."""

from __future__ import annotations

import functools
import warnings

import cv2
import numpy as np
import pytest

import nlseg
from nlseg.assets import SAMPLE_CLIP, default_weights
from nlseg.errors import InputError

MODEL_SIZE = (72, 128)  # a small size the bundled segmenter runs at (dynamic axes), to keep the tests fast


@functools.lru_cache(maxsize=1)
def frames() -> list[np.ndarray]:
    """Three street frames of the bundled clip: one at MODEL_SIZE, a larger crop and a smaller one."""
    capture = cv2.VideoCapture(str(SAMPLE_CLIP))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        pytest.skip(f"{SAMPLE_CLIP}: the bundled sample clip is not here or not readable")
    shrink = cv2.INTER_AREA
    return [cv2.resize(frame, MODEL_SIZE[::-1], interpolation=shrink), frame[100:220, 200:360].copy(),
            cv2.resize(frame, (96, 48), interpolation=shrink)]


@pytest.fixture(scope="module")
def weights():
    try:
        return default_weights()
    except InputError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def torch_seg(weights):
    return nlseg.load(weights, device="cpu")


@pytest.fixture(scope="module")
def ort_seg(torch_seg, tmp_path_factory):
    path = torch_seg.export("onnx", tmp_path_factory.mktemp("proba") / "m.onnx")
    return nlseg.load(path, device="cpu")


@pytest.mark.parametrize("size", ["model", "image"])
def test_probabilities_sum_to_one_in_every_dtype(torch_seg, size):
    classes = len(torch_seg.info.class_names)
    images = frames()
    exact = torch_seg.predict_proba(images, imgsz=MODEL_SIZE, size=size, dtype="float32")
    for image, p in zip(images, exact):
        assert p.dtype == np.float32 and p.shape == (classes, *(MODEL_SIZE if size == "model" else image.shape[:2]))
        assert p.min() >= 0.0 and np.abs(p.sum(axis=0) - 1).max() < 1e-5
    half = torch_seg.predict_proba(images, imgsz=MODEL_SIZE, size=size)  # float16 by default
    assert all(p.dtype == np.float16 for p in half)
    assert max(np.abs(p.astype(np.float32).sum(axis=0) - 1).max() for p in half) < 5e-3
    quantised = torch_seg.predict_proba(images, imgsz=MODEL_SIZE, size=size, dtype="uint8")
    for q, p in zip(quantised, exact):
        assert q.dtype == np.uint8
        assert np.abs(q.astype(np.float32) - p * 255).max() <= 0.5 + 1e-3  # round(p * 255)
        assert np.abs(q.sum(axis=0, dtype=np.int64) - 255).max() <= classes / 2


def test_argmax_equals_predict(torch_seg):
    image = frames()[0]  # at the model's size: predict's labels need no resizing
    probs = torch_seg.predict_proba(image, imgsz=MODEL_SIZE, dtype="float32")
    labels = torch_seg.predict(image, imgsz=MODEL_SIZE)
    np.testing.assert_array_equal(probs.argmax(axis=0), labels)
    for image in frames()[1:]:  # at an image's own size labels are resized nearest, probabilities bilinearly
        at_model = torch_seg.predict_proba(image, imgsz=MODEL_SIZE, size="model", dtype="float32")
        at_image = torch_seg.predict_proba(image, imgsz=MODEL_SIZE, dtype="float32")
        labels = torch_seg.predict(image, imgsz=MODEL_SIZE)
        assert at_model.shape[1:] == MODEL_SIZE and labels.shape == image.shape[:2]
        assert float((at_image.argmax(axis=0) == labels).mean()) > 0.95


@pytest.mark.parametrize("size", ["model", "image"])
def test_torch_and_onnxruntime_agree_within_1e4(torch_seg, ort_seg, size):
    images = frames()
    a = torch_seg.predict_proba(images, imgsz=MODEL_SIZE, size=size, dtype="float32", batch=2)
    b = ort_seg.predict_proba(images, imgsz=MODEL_SIZE, size=size, dtype="float32", batch=2)
    assert ort_seg.backend.name == "onnxruntime"
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b)) <= 1e-4


def test_backends_return_float32_logits(torch_seg, ort_seg):
    x = np.random.default_rng(1).standard_normal((2, 3, *MODEL_SIZE)).astype(np.float32)
    for seg in (torch_seg, ort_seg):
        logits = seg.backend.logits(x)
        assert logits.dtype == np.float32 and logits.shape == (2, len(seg.info.class_names), *MODEL_SIZE)
        np.testing.assert_array_equal(logits.argmax(axis=1).astype(np.uint8), seg.backend.predict(x))


@pytest.mark.parametrize(("kwargs", "param"), [({"size": "screen"}, "size"), ({"dtype": "int8"}, "dtype"),
                                               ({"batch": 0}, "batch")])
def test_bad_probability_options_name_the_parameter(torch_seg, kwargs, param):
    with pytest.raises(InputError) as info:
        torch_seg.predict_proba(frames()[0], **kwargs)
    assert info.value.param == param


def test_train_and_evaluate_are_top_level(monkeypatch):
    from nlseg.api import training

    import nlseg.train.loop as loop  # the training package stays importable beside the nlseg.train call

    assert nlseg.evaluate is training.evaluate and loop.fit is nlseg.train.loop.fit
    calls = []
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: calls.append((args, kwargs)) or {"ok": 1})
    assert nlseg.train("camvid", epochs=1) == {"ok": 1} and calls == [(("camvid",), {"epochs": 1})]
    assert {"train", "evaluate"} <= set(nlseg.__all__) and {"train", "evaluate"} <= set(dir(nlseg))


def test_precision_names_what_a_checkpoint_runs_at(weights):
    assert nlseg.load(weights, device="cpu").backend.precision == "fp32"
    assert nlseg.load(weights, device="cpu", precision="bf16").backend.precision == "bf16"
    with pytest.raises(InputError, match="unknown precision"):
        nlseg.load(weights, device="cpu", precision="fp8")


def test_half_is_a_deprecated_alias_on_checkpoints(weights):
    with pytest.warns(DeprecationWarning, match="precision='bf16'"):
        seg = nlseg.load(weights, device="cpu", half=True)
    assert seg.backend.precision == "bf16"  # half=True on the CPU: bf16, as before
    with pytest.raises(InputError) as info:
        nlseg.load(weights, device="cpu", half=True, precision="fp32")
    assert info.value.param == "half"


def test_half_and_precision_on_an_onnx_export(ort_seg):
    path = ort_seg.weights
    with pytest.warns(UserWarning, match="no effect"):
        seg = nlseg.load(path, device="cpu", half=True)
    assert seg.backend.precision == "fp32"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nlseg.load(path, device="cpu", precision="fp32").backend.precision == "fp32"
    with pytest.raises(InputError, match="--half") as info:
        nlseg.load(path, device="cpu", precision="fp16")
    assert info.value.param == "precision"


def test_infer_half_is_refused_for_an_onnx_export(ort_seg, capsys, tmp_path):
    from nlseg.cli import main

    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), frames()[0])
    with pytest.raises(SystemExit) as stop:
        main(["infer", str(image), "--weights", str(ort_seg.weights), "--half", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and "--half" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_profile_half_is_refused_for_an_onnx_export(ort_seg, capsys):
    from nlseg.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["profile", str(ort_seg.weights), "--half", "--iters", "1", "--warmup", "0"])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and "--half" in err and str(ort_seg.weights) in err and len(err.splitlines()) == 1
