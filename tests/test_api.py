"""The Python API: ``nlseg.load(...).predict/overlay/infer/export/profile``, ``nlseg.create_model``,
and the README's example, run as a user would."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import nlseg
from nlseg.data.synthetic.scene import render_scene
from nlseg.errors import InputError

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def segmenter():
    return nlseg.load(device="cpu")


@pytest.fixture(scope="module")
def street(tmp_path_factory) -> Path:
    """A rendered driving scene at an odd size the model was not trained at, as a PNG."""
    rgb, _ = render_scene(7, (203, 371))
    path = tmp_path_factory.mktemp("api") / "street.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    return path


def test_predict_path_equals_opencv_array_and_pil(segmenter, street):
    from PIL import Image

    from_path = segmenter.predict(street)
    from_array = segmenter.predict(cv2.imread(str(street)))
    from_pil = segmenter.predict(Image.open(street))
    assert from_path.dtype == np.uint8 and from_path.shape == (203, 371)
    assert np.array_equal(from_path, from_array) and np.array_equal(from_path, from_pil)
    assert from_path.max() < len(segmenter.info.class_names)


def test_predict_lists_keep_each_size(segmenter, street):
    small = cv2.resize(cv2.imread(str(street)), (100, 60))
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    masks = segmenter.predict([street, small, gray], batch=2)
    assert [m.shape for m in masks] == [(203, 371), (60, 100), (60, 100)]
    assert np.array_equal(masks[1], segmenter.predict(small))


def test_overlay_returns_the_input_kind(segmenter, street):
    from PIL import Image

    labels = segmenter.predict(street)
    blended = segmenter.overlay(street, labels, opacity=1.0)
    assert blended.shape == (203, 371, 3)
    first = segmenter.info.palette[int(labels[0, 0])]
    assert tuple(blended[0, 0]) == first[::-1]  # BGR for paths and arrays
    pil = segmenter.overlay(Image.open(street), labels, opacity=1.0)
    assert isinstance(pil, Image.Image) and pil.getpixel((0, 0)) == first


def test_info_describes_the_model(segmenter):
    info = segmenter.info
    assert info.task == "segment" and len(info.class_names) == len(info.palette) == 19
    assert info.input_size == segmenter.backend.info.input_size
    summary = info.to_dict()
    assert set(summary["normalization"]) == {"mean", "std", "per_pixel"}
    json.dumps(summary)


@pytest.mark.parametrize("bad,param", [("missing.png", "source"), (np.zeros((4, 4, 5), np.uint8), "source"),
                                       (3.5, "source")])
def test_bad_images_name_the_parameter(segmenter, bad, param):
    with pytest.raises(InputError) as caught:
        segmenter.predict(bad)
    assert caught.value.param == param


def test_bad_load_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="weights file not found"):
        nlseg.load(tmp_path / "none.pt")
    with pytest.raises(InputError) as caught:
        nlseg.load(backend="tensorflow")
    assert caught.value.param == "backend"
    with pytest.raises(InputError) as caught:
        nlseg.load(device="tpu")
    assert caught.value.param == "device"


def test_export_then_load_the_onnx(segmenter, street, tmp_path):
    path = segmenter.export("onnx", tmp_path / "seg.onnx")
    onnx_segmenter = nlseg.load(path)
    assert onnx_segmenter.backend.name == "onnxruntime"
    assert onnx_segmenter.info.class_names == segmenter.info.class_names
    agreement = (onnx_segmenter.predict(street) == segmenter.predict(street)).mean()
    assert agreement > 0.999
    with pytest.raises(InputError) as caught:
        segmenter.export("onnx", tmp_path / "seg.txt")
    assert caught.value.param == "out"
    with pytest.raises(InputError) as caught:
        segmenter.export("onnx", tmp_path / "x.onnx", int8=True, half=True)  # INT8 starts from the float32 graph
    assert caught.value.param == "half"


def test_profile_reports_latency(segmenter):
    stats = segmenter.profile((1, 3, 36, 64), warmup=0, iters=2)
    assert stats["backend"] == "torch" and stats["shape"] == [1, 3, 36, 64]
    assert 0 < stats["min_ms"] <= stats["p50_ms"] <= stats["max_ms"] and stats["throughput"] > 0


def test_infer_writes_outputs_and_refuses_a_file_as_folder(segmenter, street, tmp_path):
    result = segmenter.infer(street, tmp_path / "out", save_masks=True)
    assert result.report.frames == 1 and result.summary_path.is_file()
    mask = cv2.imread(str(tmp_path / "out" / "masks" / "street.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(mask, segmenter.predict(street))
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    with pytest.raises(InputError) as caught:
        segmenter.infer(street, blocker)
    assert caught.value.param == "out"


def test_create_model_is_a_plain_module():
    net = nlseg.create_model("bdd100k", nonlocal_kernel="frac", blocks=(1, 1, 1), channels=(8, 8, 8))
    assert isinstance(net, torch.nn.Module)
    assert net(torch.randn(1, 3, 18, 32)).shape == (1, 19, 18, 32)
    assert nlseg.create_model("cifar10", nonlocal_kernel="diffusion", blocks=(1, 1, 1)).training
    with pytest.raises(InputError) as caught:
        nlseg.create_model("cifar10", nonlocal_kernel="frac", s=1.5)
    assert caught.value.param == "s"
    with pytest.raises(InputError) as caught:
        nlseg.create_model("cifar10", colour="red")
    assert caught.value.param == "colour"


def test_pairwise_update_is_reexported():
    from nlseg.ops.pairwise import pairwise_update

    assert nlseg.pairwise_update is pairwise_update


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's 'Python API' example, executed as written (it may refer to a photo.jpg of its own)."""
    text = README.read_text()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    rgb, _ = render_scene(3, (360, 640))
    cv2.imwrite(str(tmp_path / "photo.jpg"), rgb[:, :, ::-1])
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["labels"].shape == (360, 640) and namespace["labels"].dtype == np.uint8


def test_triton_repository_needs_batch_1_before_any_build(tmp_path, monkeypatch):
    """A batched Triton model gets batches from 1 up: a min-shape batch above 1 is refused before TensorRT builds."""
    import types

    import nlseg.tensorrt.compat as compat
    from nlseg.onnx.source_model import random_init

    def no_build(*args, **kwargs):
        raise AssertionError("the engine must not be built")

    monkeypatch.setattr(compat, "import_tensorrt", lambda label: types.SimpleNamespace(__version__="10.9.0.34"))
    monkeypatch.setattr("nlseg.tensorrt.export.export_engine", no_build)
    source = random_init(nlseg.ModelConfig.from_preset("bdd100k", blocks=(1, 1, 1), channels=(4, 4, 4)), seed=0)
    with pytest.raises(InputError) as caught:
        nlseg.export_model(source, tmp_path / "e.engine", "engine", opt_shape=(4, 3, 90, 160),
                           max_shape=(8, 3, 90, 160), triton_repo=tmp_path / "repo")
    assert caught.value.param == "min_shape" and not (tmp_path / "repo").exists()
