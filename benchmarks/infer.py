"""End-to-end ``nlseg infer`` throughput and per-stage times, per preset and backend.

Presets: the thesis segmenter (90x160 input, no pooling) and the real-time layout (360x640
input, strided stem, 𝓛 at low resolution), with random-init weights (speed does not depend
on training), or the bundled weights (``bundled``, at their own input size). Sources: a
generated 960x540 synthetic driving clip and, with ``--photos DIR``, a folder of photos.
Each run is a real ``nlseg infer`` subprocess; its ``summary.json`` gives the numbers.
Prints Markdown.

    python benchmarks/infer.py [--device cpu|cuda] [--seconds 4] [--presets thesis,realtime,bundled] [--photos DIR]
        [--backends torch,onnxruntime,openvino,openvino-bf16] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from nlseg.assets import DEFAULT_WEIGHTS
from nlseg.checkpoint import save_checkpoint
from nlseg.data.synthetic.clip import write_clip
from nlseg.nn import ModelConfig, build_model
from nlseg.runtime.device import describe_device

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {
    "thesis": dict(nonlocal_kernel="dot"),
    "realtime": dict(layout="realtime"),
}
STAGES = ("decode", "preprocess", "inference", "postprocess", "encode")


def weights_for(preset: str, folder: Path) -> Path:
    if preset == "bundled":
        return DEFAULT_WEIGHTS
    config = ModelConfig.from_preset("bdd100k", **PRESETS[preset])
    torch.manual_seed(0)
    return save_checkpoint(folder / f"{preset}.pt", build_model(config), config)


def run(source: Path, weights: Path, backend: str, device: str, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "nlseg", "infer", str(source), "--weights", str(weights), "--backend", backend,
           "--device", device, "--out", str(out), *extra]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{result.stderr}")
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the generated 960x540 clip")
    parser.add_argument("--presets", default="thesis,realtime" + (",bundled" if DEFAULT_WEIGHTS.is_file() else ""))
    parser.add_argument("--photos", type=Path, help="also run on this folder of photos")
    parser.add_argument("--backends", default="torch,onnxruntime",
                        help="comma-separated: torch, onnxruntime, openvino (fp32), openvino-bf16 (--half)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="run every row this many times, interleaved")
    args = parser.parse_args()
    if args.repeats < 1:
        raise SystemExit(f"error: --repeats: need at least 1, got {args.repeats}")
    with tempfile.TemporaryDirectory(prefix="nlseg-bench-") as tmp_name:
        tmp = Path(tmp_name)
        clip = write_clip(tmp / "drive_960x540.mp4", scenes=max(1, round(args.seconds / 2)), seconds_per_scene=2.0,
                          size=(540, 960), fps=30.0, seed=1, workers=2)
        print(f"# nlseg infer end to end on {args.device} ({describe_device(args.device)}), batch {args.batch}, "
              f"torch {torch.__version__}\n")
        print("| preset | backend | source | frames | fps | " + " | ".join(f"{s} p50 ms" for s in STAGES) + " |")
        print("|---|---|---|---:|---:|" + "---:|" * len(STAGES))
        for rep in range(args.repeats):
            for preset in args.presets.split(","):
                weights = weights_for(preset, tmp)
                for row in args.backends.split(","):
                    backend, _, precision = row.partition("-")
                    model = weights
                    if backend in ("onnxruntime", "openvino"):  # both read nlseg's ONNX export
                        model = tmp / f"{preset}.onnx"
                        if not model.is_file():
                            export = subprocess.run([sys.executable, "-m", "nlseg", "export", str(weights), "--out",
                                                     str(model)], capture_output=True, text=True, cwd=ROOT)
                            if export.returncode != 0:
                                raise SystemExit(export.stderr)
                    extra = ["--batch", str(args.batch)] + (["--half"] if precision == "bf16" else [])
                    sources = [("960x540 clip", clip)] + ([("photos", args.photos)] if args.photos else [])
                    for name, source in sources:
                        out = tmp / f"{preset}-{row}-{source.stem}-{rep}"
                        s = run(source, model, backend, args.device, out, extra)
                        stages = " | ".join(f"{s['stages'].get(st, {}).get('p50_ms', float('nan')):.1f}" for st in STAGES)
                        print(f"| {preset} | {row} | {name} | {s['frames']} | {s['fps']:.1f} | {stages} |", flush=True)


if __name__ == "__main__":
    main()
