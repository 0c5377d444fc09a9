"""Fault injection, bad inputs: 0-byte and truncated checkpoints, absurd sizes, float/NaN arrays, EXIF, names.

Every case runs the real command in-process (``nlseg.cli.main``) and checks its exit status and its
one line on stderr; docs/troubleshooting.md lists the same cases.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import nlseg
from nlseg.checkpoint import read_checkpoint, save_checkpoint
from nlseg.cli import main
from nlseg.nn import ModelConfig, build_model

ROOT = Path(__file__).resolve().parents[1]
REALTIME = ROOT / "assets" / "camvid_realtime.pt"
VIDEO = ROOT / "assets" / "sample_drive.mp4"


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """A tiny segmenter, a tiny classifier, a 0-byte and a truncated copy."""
    root = tmp_path_factory.mktemp("ckpts")
    seg = ModelConfig.from_preset("bdd100k", nonlocal_kernel="dot", blocks=(1, 1, 1), channels=(8, 8, 8),
                                  image_size=(45, 80))
    cls = ModelConfig.from_preset("cifar10", blocks=(1, 1, 1), channels=(8, 8, 8))
    save_checkpoint(root / "seg.pt", build_model(seg), seg)
    save_checkpoint(root / "cls.pt", build_model(cls), cls)
    (root / "zero.pt").write_bytes(b"")
    (root / "trunc.pt").write_bytes((root / "seg.pt").read_bytes()[:3000])
    return {"seg": root / "seg.pt", "cls": root / "cls.pt", "zero": root / "zero.pt", "trunc": root / "trunc.pt"}


def run(capsys, *args: object) -> tuple[int, str]:
    """(exit status, stderr) of ``nlseg ARGS`` run in this process."""
    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


BROKEN = [("zero", "empty file (0 bytes), not a checkpoint"), ("trunc", "truncated or corrupt checkpoint")]
COMMANDS = [
    ("infer", lambda ck, tmp: ["infer", VIDEO, "--weights", ck, "--out", tmp / "o"]),
    ("profile", lambda ck, tmp: ["profile", ck, "--iters", "1", "--warmup", "0"]),
    ("export", lambda ck, tmp: ["export", ck, "--out", tmp / "m.onnx"]),
    ("eval", lambda ck, tmp: ["eval", ck]),
    ("spectrum", lambda ck, tmp: ["spectrum", ck, "--out", tmp / "s"]),
]


@pytest.mark.parametrize("kind,message", BROKEN)
@pytest.mark.parametrize("name,argv", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_broken_checkpoint_is_one_line_exit_2(capsys, tmp_path, ckpts, kind, message, name, argv):
    code, err = run(capsys, *argv(ckpts[kind], tmp_path))
    line = one_line(err)
    assert code == 2 and str(ckpts[kind]) in line and message in line, err
    assert "\x1b[" not in line
    assert not (tmp_path / "o").exists()  # a failed infer leaves no empty output folder


@pytest.mark.parametrize("kind,message", BROKEN)
def test_broken_checkpoint_in_api_and_resume_reader(ckpts, kind, message):
    with pytest.raises(nlseg.InputError, match=re.escape(message)):
        nlseg.load(ckpts[kind])
    with pytest.raises(nlseg.InputError, match=re.escape(message)):  # what train --resume reads (out/last.pt)
        read_checkpoint(ckpts[kind])


def test_check_with_broken_weights(capsys, tmp_path, ckpts):
    assert run(capsys, "export", ckpts["seg"], "--out", tmp_path / "m.onnx")[0] == 0
    code, err = run(capsys, "check", tmp_path / "m.onnx", "--weights", ckpts["zero"])
    assert code == 2 and f"{ckpts['zero']}: empty file" in one_line(err)


def test_classifier_checkpoint_to_infer(capsys, tmp_path, ckpts):
    code, err = run(capsys, "infer", VIDEO, "--weights", ckpts["cls"], "--out", tmp_path / "o")
    line = one_line(err)
    assert code == 2 and str(ckpts["cls"]) in line and "classifier checkpoint" in line and "not a segmenter" in line


SIZES = [
    (["infer", VIDEO, "--weights", REALTIME, "--imgsz", "8x8"], "--imgsz: 8x8 is too small", "at least 32"),
    (["infer", VIDEO, "--weights", REALTIME, "--imgsz", "99999x99999"], "--imgsz: 99999x99999 is too large", ""),
    (["profile", REALTIME, "--shape", "1x3x8x8"], "--shape: 8x8 is too small", ""),
    (["profile", REALTIME, "--shape", "1x3x99999x99999"], "--shape: 99999x99999 is too large", ""),
    (["export", REALTIME, "--size", "1x1"], "--size: 1x1 is too small", ""),
    (["synth-clip", "c.mp4", "--size", "91x161"], "--size: height and width must be even", ""),
    (["synth-clip", "c.mp4", "--fps", "nan"], "--fps: must be a positive finite number", ""),
    (["infer", VIDEO, "--weights", REALTIME, "--vid-stride", "1000000"], "--vid-stride: 1000000 is more than", ""),
]


@pytest.mark.parametrize("argv,message,extra", SIZES, ids=[" ".join(map(str, a[2:] if a[0] != "synth-clip" else a[1:]))
                                                          for a, _, _ in SIZES])
def test_sizes_and_numbers_out_of_bounds(capsys, tmp_path, monkeypatch, argv, message, extra):
    monkeypatch.chdir(tmp_path)
    out = {"infer": ["--out", tmp_path / "o"], "export": ["--out", tmp_path / "o.onnx"]}.get(argv[0], [])
    code, err = run(capsys, *argv, *out)
    line = one_line(err)
    assert code == 2 and message in line and extra in line, err
    assert not [p for p in tmp_path.iterdir()]  # nothing written: no folder, no clip, no model


def test_api_sizes_and_shapes(ckpts):
    seg = nlseg.load(REALTIME)
    image = np.zeros((60, 80, 3), np.uint8)
    with pytest.raises(nlseg.InputError, match=r"imgsz: expected \(height, width\)"):
        seg.predict(image, imgsz=100)
    with pytest.raises(nlseg.InputError, match="imgsz: 16x16 is too small"):
        seg.predict(image, imgsz=(16, 16))
    with pytest.raises(nlseg.InputError, match="imgsz: 5000x5000 is too large"):
        seg.predict(image, imgsz=(5000, 5000))
    assert seg.predict(image, imgsz=(32, 32)).shape == (60, 80)  # the documented minimum works
    result = seg.profile(shape="1x3x64x96", warmup=0, iters=1)  # a string shape as the CLI takes it
    assert result["shape"] == [1, 3, 64, 96]
    with pytest.raises(nlseg.InputError, match="shape: 8x8 is too small"):
        seg.profile(shape=(1, 3, 8, 8))


def test_float_and_nan_arrays(ckpts, tmp_path):
    seg = nlseg.load(ckpts["seg"])
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (45, 80, 3), dtype=np.uint8)
    assert np.array_equal(seg.predict(u8.astype(np.float32) / 255), seg.predict(u8))  # [0, 1] floats x 255
    for bad, match in ((np.full((8, 8, 3), np.nan, np.float32), "NaN or inf"),
                       (np.full((8, 8, 3), np.inf), "NaN or inf"),
                       (u8.astype(np.float64), r"must lie in \[0, 1\]"),
                       (u8.astype(np.int32) * 2, r"must hold values in \[0, 255\]"),
                       (np.zeros((8, 8), bool), "boolean array is a mask")):
        with pytest.raises(nlseg.InputError, match=match):
            seg.predict(bad)
    with pytest.raises(nlseg.InputError, match="is a folder; predict takes image files"):
        seg.predict(tmp_path)
    with pytest.raises(nlseg.InputError, match="infer reads a file.*not a ndarray"):
        seg.infer(u8, tmp_path / "o")


def test_exif_orientation_same_in_training_and_inference(tmp_path):
    """A JPEG stored 40x80 with EXIF orientation 6 (rotate 90° clockwise) reads as 80x40, red on top."""
    pil = pytest.importorskip("PIL.Image")
    from nlseg.contract import read_image
    from nlseg.data import segfolder
    from nlseg.runtime.sources import resolve_source

    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:, :40] = (255, 0, 0)  # RGB: left half red
    exif = pil.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    pil.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[:2] == (40, 80)  # what inference used to read

    shown = read_image(path)
    assert shown.shape == (80, 40, 3) and shown[5, 20, 2] > 200 and shown[75, 20, 2] < 50
    frames = list(resolve_source(str(path)).inputs[0].frames())
    assert np.array_equal(frames[0][1], shown)  # nlseg infer
    assert np.array_equal(nlseg.api.segmenter.to_bgr(path), shown)  # Segmenter.predict
    cv2.imwrite(str(tmp_path / "phone.png"), np.zeros((80, 40), np.uint8))
    image, mask = segfolder._read((path, tmp_path / "phone.png"), (80, 40), 19)  # training
    assert np.array_equal(image, shown[:, :, ::-1]) and mask.shape == (80, 40)


def test_sixteen_bit_and_alpha_kept(tmp_path):
    from nlseg.contract import read_image

    rgba = np.zeros((6, 7, 4), np.uint16)
    rgba[..., 2], rgba[..., 3] = 60000, 65535
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert read_image(tmp_path / "a.png")[0, 0].tolist() == [0, 0, 60000 >> 8]


def test_name_collisions_and_skipped_entries(capsys, tmp_path, ckpts):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    cv2.imwrite(str(src / "a.jpg"), np.full((30, 40, 3), 200, np.uint8))
    cv2.imwrite(str(src / "a.png"), np.full((30, 40, 3), 20, np.uint8))
    (src / "notes.txt").write_text("x")
    (src / "dead.jpg").symlink_to(tmp_path / "missing.jpg")
    out = tmp_path / "o"
    code, err = run(capsys, "infer", src, "--weights", ckpts["seg"], "--out", out)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(Path(p).name for p in summary["outputs"]) == ["a_jpg.jpg", "a_png.jpg"]
    assert summary["renamed"] == {str(src / "a.jpg"): "a_jpg", str(src / "a.png"): "a_png"}
    assert {Path(s.split(" (")[0]).name for s in summary["skipped"]} == {"sub", "notes.txt", "dead.jpg"}
    assert "a broken symbolic link" in " ".join(summary["skipped"]) and "note: skipped" in err


def test_same_video_name_in_two_folders(capsys, tmp_path, ckpts):
    for day in ("d1", "d2"):
        (tmp_path / day).mkdir()
        (tmp_path / day / "x.mp4").write_bytes(VIDEO.read_bytes())
    out = tmp_path / "o"
    code, err = run(capsys, "infer", f"{tmp_path}/d*/x.mp4", "--weights", ckpts["seg"], "--out", out,
                    "--vid-stride", "40")
    assert code == 0, err
    assert sorted(p.name for p in out.glob("*.mp4")) == ["d1__x.mp4", "d2__x.mp4"]


def test_zero_frame_and_foreign_videos(capsys, tmp_path):
    av = pytest.importorskip("av")
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("mpeg4", rate=24)
        stream.width, stream.height = 64, 48
        container.start_encoding()  # header and trailer: a valid MP4 without a single frame
        for packet in stream.encode(None):
            container.mux(packet)
    assert empty.stat().st_size > 0
    (tmp_path / "text.mp4").write_text("not a video")
    for name, message in (("empty.mp4", "no video track (0 frames)"), ("text.mp4", "cannot open as a video")):
        code, err = run(capsys, "infer", tmp_path / name, "--weights", REALTIME, "--out", tmp_path / "o")
        assert code == 2 and message in one_line(err) and not (tmp_path / "o").exists(), err


def test_foreign_files_as_checkpoints(tmp_path):
    import pickle

    import torch

    cases = {"junk.pt": (b"not a checkpoint", "not a readable PyTorch checkpoint (neither a .pt archive nor a pickle)"),
             "pickle.pt": (pickle.dumps({"a": 1}, protocol=4), "not an nlseg checkpoint (a pickle of Python objects")}
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(nlseg.InputError, match=re.escape(f"{tmp_path / name}: {message}")):
            read_checkpoint(tmp_path / name)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(nlseg.InputError, match="not an nlseg checkpoint .no 'format'"):
        read_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(nlseg.InputError, match="is a folder, not a checkpoint file"):
        read_checkpoint(tmp_path)


@pytest.mark.parametrize("kind,message", BROKEN)
def test_train_resume_from_broken_last_pt(capsys, tmp_path, ckpts, kind, message):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(ckpts[kind].read_bytes())
    code, err = run(capsys, "train", "qtips", "--out", run_dir, "--resume", "--epochs", "1")
    line = one_line(err)
    assert code == 2 and str(run_dir / "last.pt") in line and message in line, err
