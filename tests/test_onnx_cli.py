"""``nlseg export --format onnx`` and ``nlseg check`` end to end, in process (plus one real entry-point run)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

import nlseg.assets
from nlseg.checkpoint import save_checkpoint
from nlseg.cli import main
from nlseg.data.labels import BDD100K_CLASSES, BDD100K_PALETTE
from nlseg.nn.config import ModelConfig, build_model
from nlseg.onnx import read_metadata
from nlseg.onnx.ort_op import custom_op_available
from nlseg.onnx.source_model import state_digest

TINY = ["--blocks", "1-1-1", "--channels", "8-8-8"]
RUNS_PLUGIN = pytest.mark.skipif(not custom_op_available(),
                                 reason="plugin graphs run in ONNX Runtime through onnxruntime-extensions")


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    code = stop.value.code
    return (code if isinstance(code, int) else 0), captured.out, captured.err


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def pairwise_nodes(path) -> list[onnx.NodeProto]:
    return [n for n in onnx.load(str(path)).graph.node if n.op_type == "PairwiseKernel"]


def assert_outputs_declared(path, channels: int) -> None:
    """Every PairwiseKernel output has a float (B, N, C) value_info with the static channel count."""
    graph = onnx.load(str(path)).graph
    declared = {v.name: v.type.tensor_type for v in graph.value_info}
    for node in pairwise_nodes(path):
        out = declared[node.output[0]]
        assert out.elem_type == onnx.TensorProto.FLOAT and len(out.shape.dim) == 3
        assert out.shape.dim[2].dim_value == channels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint of a tiny BDD100K segmenter with non-trivial batch norms and normalisation meta."""
    config = ModelConfig.from_preset("bdd100k", blocks=(1, 1, 1), channels=(8, 8, 8), nonlocal_kernel="frac")
    torch.manual_seed(3)
    model = build_model(config)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    meta = {"dataset": "bdd100k", "normalization": {"mean": [0.4, 0.45, 0.5], "std": [0.25, 0.25, 0.3]}}
    save_checkpoint(path, model, config, meta=meta)
    return path, model


@pytest.mark.parametrize("plugin", [False, pytest.param(True, marks=RUNS_PLUGIN)])
def test_segmenter_export_runs_at_several_sizes_and_keeps_its_metadata(capsys, tmp_path, trained, plugin):
    ckpt, model = trained
    out = tmp_path / "m.onnx"
    code, stdout, err = cli(capsys, "export", ckpt, "--format", "onnx", "--out", out, *(["--plugin"] if plugin else []))
    assert code == 0, err
    assert "dynamic axes batch/height/width" in stdout and out.is_file()
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    assert len(pairwise_nodes(out)) == (6 if plugin else 0)  # 3 Units x 1 Nonlocal Block x 2 stages
    for shape in ("1x3x45x80", "2x3x23x41"):
        code, stdout, err = cli(capsys, "check", out, "--shape", shape, "--json")
        assert code == 0, err
        result = last_json(stdout)
        # frac on clustered low-dimensional embeddings is ill-conditioned in float32 (torch itself is
        # ~4e-4 off float64 here), so the limit is relative to the logits' scale (~13)
        assert result["passed"] and result["max_rel_diff"] <= 1e-4 and result["argmax_agreement"] >= 0.999
        assert result["shape"] == [int(v) for v in shape.split("x")]
    meta = read_metadata(out)
    assert meta.config == ModelConfig.from_dict(torch.load(ckpt, weights_only=True)["model_config"])
    assert meta.class_names == BDD100K_CLASSES and meta.palette == BDD100K_PALETTE
    assert meta.mean == (0.4, 0.45, 0.5) and meta.std == (0.25, 0.25, 0.3) and meta.input_size == (90, 160)
    assert meta.graph == ("plugin" if plugin else "portable") and meta.precision == "float32"
    assert meta.weights.source == "checkpoint" and meta.weights.path == str(ckpt.resolve())
    assert meta.weights.sha256 == state_digest(model) and meta.dataset == "bdd100k"


def test_plugin_export_through_the_entry_point(tmp_path):
    out = tmp_path / "p.onnx"
    cmd = [sys.executable, "-m", "nlseg", "export", "--format", "onnx", "--plugin", "--random-init",
           "--nonlocal", "frac", *TINY, "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    nodes = pairwise_nodes(out)
    assert len(nodes) == 6 and {n.domain for n in nodes} == {"nlseg"}
    model = onnx.load(str(out))
    assert ("nlseg", 1) in {(o.domain, o.version) for o in model.opset_import}
    assert_outputs_declared(out, channels=8)


@pytest.mark.parametrize(
    "args,shapes,nodes",
    [
        (["--dataset", "cifar10", "--model", "hamiltonian", "--nonlocal", "diffusion", "--stages", "1",
          "--with-argmax", "--opset", "13"], ["1x3x32x32"], 0),
        pytest.param(["--dataset", "cifar100", "--model", "leapfrog", "--nonlocal", "invfrac", "--s", "0.3",
                      "--stages", "4", "--pool", "3", "--dynamic", "--plugin"], ["3x3x32x32"], 12, marks=RUNS_PLUGIN),
        (["--dataset", "bdd100k", "--model", "midpoint", "--nonlocal", "gaussian", "--pool", "0", "--with-argmax",
          "--simplify", "--opset", "20"], ["1x3x30x40", "2x3x17x29"], 0),
        pytest.param(["--dataset", "bdd100k", "--model", "hamiltonian", "--nonlocal", "log", "--pool", "2",
                      "--no-dynamic", "--plugin", "--simplify", "--input-size", "24x40"], ["1x3x24x40"], 6,
                     marks=RUNS_PLUGIN),
        (["--dataset", "cifar10", "--model", "resnet44", "--dynamic"], ["4x3x32x32"], 0),
        (["--layout", "realtime", "--channels", "8-8-8", "--nonlocal", "frac"], ["1x3x64x96", "2x3x45x77"], 0),
    ],
    ids=["classifier-dot-argmax", "leapfrog-invfrac-plugin", "midpoint-gaussian-simplify", "static-log-plugin", "resnet44",
         "realtime-frac"],
)
def test_random_init_exports_pass_their_check(capsys, tmp_path, args, shapes, nodes):
    out = tmp_path / "m.onnx"
    tiny = [] if "resnet44" in args or "realtime" in args else TINY
    code, stdout, err = cli(capsys, "export", "--random-init", "--seed", "7", *tiny, *args, "--out", out)
    assert code == 0, err
    assert ("simplified with" in stdout) == ("--simplify" in args)
    assert len(pairwise_nodes(out)) == nodes
    assert_outputs_declared(out, channels=8)
    meta = read_metadata(out)
    assert meta.weights.source == "random-init" and meta.weights.seed == 7
    assert ("labels" in meta.outputs) == ("--with-argmax" in args)
    for shape in shapes:
        code, stdout, err = cli(capsys, "check", out, "--shape", shape, "--json")
        assert code == 0, err
        result = last_json(stdout)
        assert result["passed"] and result["argmax_agreement"] >= 0.999
        assert result["max_abs_diff"] <= 1e-4 or "resnet44" in args  # its untrained logits are ~1e3: relative limit
        assert result["max_rel_diff"] <= 1e-5


def test_argmax_output_and_half_precision(capsys, tmp_path):
    out = tmp_path / "h.onnx"
    code, _, err = cli(capsys, "export", "--random-init", *TINY, "--nonlocal", "frac", "--half", "--with-argmax",
                         "--out", out)
    assert code == 0, err
    graph = onnx.load(str(out)).graph
    types = {o.name: o.type.tensor_type.elem_type for o in [*graph.input, *graph.output]}
    assert types == {"image": onnx.TensorProto.FLOAT16, "logits": onnx.TensorProto.FLOAT16,
                     "labels": onnx.TensorProto.UINT8}
    code, stdout, err = cli(capsys, "check", out, "--shape", "1x3x30x40", "--json")
    assert code == 0, err
    result = last_json(stdout)
    assert result["precision"] == "float16" and result["max_abs_diff"] <= 2e-2 and result["argmax_agreement"] >= 0.99


@pytest.fixture(scope="module")
def trained_export(trained, tmp_path_factory):
    """The ``trained`` checkpoint exported with default flags."""
    out = tmp_path_factory.mktemp("export") / "m.onnx"
    with pytest.raises(SystemExit) as stop:
        main(["export", str(trained[0]), "--out", str(out)])
    assert stop.value.code in (0, None)
    return out


def test_check_with_an_image(capsys, tmp_path, trained_export):
    import cv2

    out = trained_export
    picture = tmp_path / "frame.png"
    yy, xx = np.mgrid[0:120, 0:200]
    cv2.imwrite(str(picture), np.stack([xx % 256, yy * 2, (xx + yy) % 256], -1).astype(np.uint8))
    code, stdout, err = cli(capsys, "check", out, "--image", picture, "--shape", "1x3x30x50", "--json")
    assert code == 0, err
    assert last_json(stdout)["passed"]
    code, _, err = cli(capsys, "check", out, "--image", tmp_path / "nope.png")
    assert code == 2 and "--image" in err and "nope.png" in err


def test_check_fails_above_tolerance_and_on_other_weights(capsys, tmp_path, trained_export):
    out = trained_export
    model = onnx.load(str(out))
    head = [n for n in model.graph.node if n.op_type == "Conv"][-1]  # the segmentation head
    bias = next(t for t in model.graph.initializer if t.name == head.input[2])
    values = onnx.numpy_helper.to_array(bias) + 1e-3
    bias.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float32), bias.name))
    tampered = tmp_path / "tampered.onnx"
    onnx.save(model, str(tampered))
    code, stdout, _ = cli(capsys, "check", tampered, "--shape", "1x3x20x30", "--json")
    result = last_json(stdout)
    assert code == 1 and not result["passed"] and result["max_abs_diff"] == pytest.approx(1e-3, rel=0.05)
    assert cli(capsys, "check", tampered, "--shape", "1x3x20x30", "--atol", "2e-3")[0] == 0

    other = tmp_path / "other.pt"
    config = ModelConfig.from_preset("bdd100k", blocks=(1, 1, 1), channels=(8, 8, 8), nonlocal_kernel="frac")
    save_checkpoint(other, build_model(config), config)
    code, _, err = cli(capsys, "check", out, "--weights", other, "--shape", "1x3x20x30")
    assert code == 2 and "--weights" in err and "not the weights" in err and len(err.strip().splitlines()) == 1


def test_check_finds_moved_weights_through_the_demo_fallback(capsys, tmp_path, monkeypatch, trained):
    ckpt, _ = trained
    moved = tmp_path / "elsewhere.pt"
    moved.write_bytes(ckpt.read_bytes())
    out = tmp_path / "m.onnx"
    assert cli(capsys, "export", moved, "--out", out)[0] == 0
    moved.unlink()
    monkeypatch.setattr(nlseg.assets, "DEFAULT_WEIGHTS", tmp_path / "no-demo.pt")
    code, _, err = cli(capsys, "check", out)
    assert code == 2 and "elsewhere.pt" in err and "--weights" in err
    monkeypatch.setattr(nlseg.assets, "DEFAULT_WEIGHTS", ckpt)
    code, stdout, err = cli(capsys, "check", out, "--shape", "1x3x20x30", "--json")
    assert code == 0 and str(ckpt) in stdout, err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--random-init", "--nonlocal", "cosine"], "--nonlocal"),
        (["--random-init", "--blocks", "1-x-1"], "--blocks"),
        (["--random-init", *TINY, "--size", "90by160"], "--size"),
        (["--random-init", "--dataset", "cifar10", *TINY, "--input-size", "64x64"], "--size"),
        (["--random-init", *TINY, "--opset", "9"], "--opset"),
        (["--random-init", *TINY, "--format", "engine"], "--format"),
        (["--random-init", "--dataset", "cifar100", "--model", "resnet44", "--nonlocal", "frac"], "--nonlocal"),
        (["WEIGHTS_TXT"], "not a readable PyTorch checkpoint"),
        (["WEIGHTS_TXT", "--random-init"], "either WEIGHTS or --random-init"),
        (["CKPT", "--nonlocal", "frac"], "--nonlocal"),
        ([], "default weights"),
    ],
)
def test_export_errors_are_one_line(capsys, tmp_path, monkeypatch, trained, args, needle):
    monkeypatch.setattr(nlseg.assets, "DEFAULT_WEIGHTS", tmp_path / "missing_default.pt")
    text = tmp_path / "weights.pt"
    text.write_text("not a checkpoint")
    args = [{"WEIGHTS_TXT": str(text), "CKPT": str(trained[0])}.get(a, a) for a in args]
    out = tmp_path / "m.onnx"
    code, stdout, err = cli(capsys, "export", *args, "--out", out)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert not out.exists() and list(tmp_path.glob("*.onnx")) == []


def test_unwritable_out_and_nothing_half_written(capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out, needle in ((blocker / "m.onnx", "--out"), (tmp_path, "--out"), (tmp_path / "m.txt", ".onnx")):
        code, _, err = cli(capsys, "export", "--random-init", *TINY, "--out", out)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1

    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous export")

    def broken_checker(*args, **kwargs):
        raise onnx.checker.ValidationError("simulated failure while exporting")

    monkeypatch.setattr(onnx.checker, "check_model", broken_checker)
    with pytest.raises(onnx.checker.ValidationError):
        main(["export", "--random-init", *TINY, "--out", str(out)])
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "m.onnx"]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["SEG", "--shape", "1x3x90"], "--shape"),
        (["SEG", "--shape", "1x4x90x160"], "--shape"),
        (["SEG", "--shape", "axb"], "--shape"),
        (["STATIC", "--shape", "2x3x24x40"], "fixed batch"),
        (["STATIC", "--shape", "1x3x48x40"], "fixed height"),
        (["TEXT"], "not a readable ONNX model"),
        (["MISSING"], "not found"),
        (["FOREIGN"], "not an nlseg export"),
        (["RESEEDED"], "another torch version"),
    ],
)
def test_check_errors_are_one_line(capsys, tmp_path_factory, args, needle, exports):
    code, _, err = cli(capsys, "check", *[exports.get(a, a) for a in args])
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Small files for the check error cases: a dynamic and a static export, a non-ONNX, a foreign ONNX."""
    folder = tmp_path_factory.mktemp("exports")
    for name, extra in (("seg.onnx", []), ("static.onnx", ["--no-dynamic", "--size", "24x40"])):
        with pytest.raises(SystemExit) as stop:
            main(["export", "--random-init", *TINY, *extra, "--out", str(folder / name)])
        assert stop.value.code in (0, None)
    (folder / "text.onnx").write_text("hello")
    reseeded = onnx.load(str(folder / "seg.onnx"))  # as if torch drew other weights for the recorded seed
    entry = next(p for p in reseeded.metadata_props if p.key == "nlseg.weights")
    entry.value = json.dumps({**json.loads(entry.value), "sha256": "0" * 64})
    onnx.save(reseeded, str(folder / "reseeded.onnx"))
    node = onnx.helper.make_node("Relu", ["x"], ["y"])
    value = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph([node], "g", [value("x", 1, [1])], [value("y", 1, [1])])
    onnx.save(onnx.helper.make_model(graph), str(folder / "foreign.onnx"))
    return {"SEG": str(folder / "seg.onnx"), "STATIC": str(folder / "static.onnx"), "TEXT": str(folder / "text.onnx"),
            "MISSING": str(folder / "missing.onnx"), "FOREIGN": str(folder / "foreign.onnx"),
            "RESEEDED": str(folder / "reseeded.onnx")}
