"""Print the bad-input table of docs/troubleshooting.md from the cases the fault suite checks.

``python -m tests.faults_table`` runs every command-line case of tests/test_faults_inputs.py and
tests/test_faults_writes.py (write faults injected at the final rename, as the suite does where
it cannot mount a tmpfs) and the Python API cases, and prints case → exit status → message
as a Markdown table, with temporary paths shortened to their last parts.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

import nlseg
import nlseg.io
from nlseg.checkpoint import save_checkpoint
from nlseg.cli import main
from nlseg.nn import ModelConfig, build_model
from tests.test_faults_inputs import BROKEN, COMMANDS, REALTIME, SIZES, VIDEO


def cli(argv: list[Any]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    lines = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    rest = err.getvalue().strip().splitlines()
    return code, lines[0] if lines else (rest[-1] if rest else "(no message)")


def api(call: Callable[[], Any]) -> tuple[str, str]:
    try:
        call()
    except nlseg.InputError as exc:
        return "InputError", str(exc)
    return "-", "(no error)"


def main_table() -> None:
    root = Path(tempfile.mkdtemp(prefix="faults-"))
    os.chdir(root)
    seg_cfg = ModelConfig.from_preset("bdd100k", nonlocal_kernel="dot", blocks=(1, 1, 1), channels=(8, 8, 8),
                                      image_size=(45, 80))
    cls_cfg = ModelConfig.from_preset("cifar10", blocks=(1, 1, 1), channels=(8, 8, 8))
    save_checkpoint(root / "seg.pt", build_model(seg_cfg), seg_cfg)
    save_checkpoint(root / "cls.pt", build_model(cls_cfg), cls_cfg)
    (root / "zero.pt").write_bytes(b"")
    (root / "trunc.pt").write_bytes((root / "seg.pt").read_bytes()[:3000])
    ck = {"seg": root / "seg.pt", "cls": root / "cls.pt", "zero": root / "zero.pt", "trunc": root / "trunc.pt"}
    rows: list[tuple[str, str, str]] = []

    def short(text: str) -> str:
        text = text.replace(str(root) + "/", "").replace(str(root), "DIR").replace(str(REALTIME.parent.parent) + "/", "")
        return re.sub(r"\s+", " ", text).replace("|", "\\|")

    for kind, _ in BROKEN:
        for name, argv in COMMANDS:
            label = "0-byte" if kind == "zero" else "truncated"
            code, line = cli(argv(ck[kind], root))
            rows.append((f"`nlseg {name}` with a {label} checkpoint", str(code), short(line)))
    for kind, label in (("zero", "0-byte"), ("trunc", "truncated")):
        run_dir = root / f"run-{kind}"
        run_dir.mkdir()
        (run_dir / "last.pt").write_bytes(ck[kind].read_bytes())
        code, line = cli(["train", "qtips", "--out", run_dir, "--resume", "--epochs", "1"])
        rows.append((f"`nlseg train --resume` with a {label} last.pt", str(code), line))
    cli(["export", ck["seg"], "--out", root / "m.onnx"])
    rows.append(("`nlseg check MODEL --weights` a 0-byte checkpoint",
                 *map(str, cli(["check", root / "m.onnx", "--weights", ck["zero"]]))))
    rows.append(("`nlseg infer` with a classifier checkpoint",
                 *map(str, cli(["infer", VIDEO, "--weights", ck["cls"], "--out", root / "o"]))))
    for argv, _, _ in SIZES:
        out = {"infer": ["--out", root / "o"], "export": ["--out", root / "o.onnx"]}.get(argv[0], [])
        code, line = cli([*argv, *out])
        shown = " ".join(short(str(a)) for a in argv if a not in (VIDEO, REALTIME) and str(a) != "--weights")
        rows.append((f"`nlseg {shown}`", str(code), short(line)))
    (root / "out.txt").write_text("x")
    rows.append(("`nlseg spectrum CKPT --out FILE`", *map(str, cli(["spectrum", ck["seg"], "--out", root / "out.txt"]))))
    (root / "text.mp4").write_text("not a video")
    rows.append(("`nlseg infer` on a text file named .mp4", *map(str, cli(["infer", root / "text.mp4", "--out", root / "o"]))))

    real_replace = os.replace
    for code_ in (errno.ENOSPC, errno.EROFS, errno.EACCES):
        bad = root / f"bad{code_}"
        bad.mkdir()

        def failing(src: Any, dst: Any, bad: Path = bad, code_: int = code_) -> None:
            if Path(dst).is_relative_to(bad):
                raise OSError(code_, os.strerror(code_), str(src))
            real_replace(src, dst)

        nlseg.io.os.replace = failing  # type: ignore[assignment]
        try:
            for what, argv in (("export", ["export", ck["seg"], "--out", bad / "m.onnx"]),
                               ("spectrum", ["spectrum", ck["seg"], "--out", bad / "s"]),
                               ("synth", ["synth", bad / "d", "--train", "1", "--val", "0", "--workers", "1"]),
                               ("infer (images)", ["infer", root / "img.png", "--weights", ck["seg"], "--out", bad / "o"])):
                if what.startswith("infer"):
                    import cv2

                    cv2.imwrite(str(root / "img.png"), np.zeros((30, 40, 3), np.uint8))
                code, line = cli(argv)
                rows.append((f"`nlseg {what}` onto a folder failing with {errno.errorcode[code_]}", str(code), short(line)))
        finally:
            nlseg.io.os.replace = real_replace  # type: ignore[assignment]

    seg = nlseg.load(ck["seg"])
    realtime = nlseg.load(REALTIME)
    u8 = np.zeros((20, 30, 3), np.uint8)
    for label, call in (
        ("`nlseg.load(0-byte .pt)`", lambda: nlseg.load(ck["zero"])),
        ("`predict(float image with NaN)`", lambda: seg.predict(np.full((8, 8, 3), np.nan, np.float32))),
        ("`predict(float image in [0, 255])`", lambda: seg.predict(u8.astype(np.float32) + 200)),
        ("`predict(bool array)`", lambda: seg.predict(np.zeros((8, 8), bool))),
        ("`predict(int32 image over 255)`", lambda: seg.predict(u8.astype(np.int32) + 300)),
        ("`predict(folder)`", lambda: seg.predict(root)),
        ("`predict(imgsz=100)`", lambda: realtime.predict(u8, imgsz=100)),
        ("`predict(imgsz=(16, 16))` (realtime)", lambda: realtime.predict(u8, imgsz=(16, 16))),
        ("`profile(shape=(1, 3, 8, 8))` (realtime)", lambda: realtime.profile(shape=(1, 3, 8, 8))),
        ("`infer(ndarray, out)`", lambda: seg.infer(u8, root / "o")),
    ):
        kind, message = api(call)
        rows.append((label, kind, short(message)))

    print("| case | exit | message |\n|---|---|---|")
    for case, code, message in rows:
        print(f"| {case} | {code} | `{short(message)}` |")


if __name__ == "__main__":
    sys.exit(main_table())
