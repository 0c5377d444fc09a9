"""OpenVINO on the CPU: what its compiled model holds, against the torch backend's forward pass.

nlseg's ONNX export has dynamic batch, height and width and one output, the logits; the OpenVINO
backend adds the arg-max (``labels``). OpenVINO's CPU plugin can compile that as it is (dynamic
shapes: shape inference and kernel selection on every call, both outputs computed by every
request) or reshaped to the one shape it is about to run, and with the one output a call needs;
``nlseg.runtime.openvino_backend`` does the latter (labels alone for ``predict``). This script times
the three, at fp32 and bf16, next to the torch backend's forward pass at fp32 (logits, no
arg-max), on one frame of the model's input size, rows interleaved over ``--repeats`` rounds; it
prints the median ms of every round and the ratio to torch fp32.

    python benchmarks/openvino_shapes.py [WEIGHTS] [--imgsz 270x480] [--repeats 5] [--iters 100]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from nlseg.assets import DEFAULT_WEIGHTS
from nlseg.onnx.export import export_onnx
from nlseg.onnx.source_model import from_checkpoint
from nlseg.openvino.ir import import_openvino, read_model
from nlseg.runtime.device import describe_device
from nlseg.cli.options import parse_hw
from nlseg.errors import InputError
from nlseg.runtime.openvino_backend import HINTS, compile_config, with_labels
from nlseg.runtime.timing import time_calls
from nlseg.runtime.torch_backend import TorchBackend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="?", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--imgsz", default="270x480")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iters", type=int, default=100)
    args = parser.parse_args()
    if not args.weights.is_file():
        raise InputError(f"{args.weights}: weights file not found")
    if args.repeats < 1 or args.iters < 1:
        raise InputError(f"--repeats and --iters: need at least 1, got {args.repeats} and {args.iters}")
    shape = (1, 3, *parse_hw(args.imgsz, "--imgsz"))
    ov = import_openvino("this benchmark")
    core = ov.Core()
    torch_backend = TorchBackend.from_checkpoint(args.weights, torch.device("cpu"))
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    rows: dict[str, list[float]] = {"torch fp32 (logits)": []}
    with tempfile.TemporaryDirectory(prefix="nlseg-ov-") as tmp:
        onnx_path = export_onnx(from_checkpoint(args.weights), Path(tmp) / "m.onnx").path
        requests = {}
        variants = {"dynamic axes, logits + labels": (False, ("logits", "labels")),
                    "static shape, logits + labels": (True, ("logits", "labels")),
                    "static shape, labels only (the backend)": (True, ("labels",))}
        for precision, hint in HINTS.items():
            for variant, (static, outputs) in variants.items():
                model, _ = read_model(core, onnx_path)
                model = with_labels(ov, model)
                model = ov.Model([model.output(o) for o in outputs], model.get_parameters())
                if static:
                    model.reshape({0: list(shape)})
                compiled = core.compile_model(model, "CPU", compile_config(hint))
                name = f"openvino {precision}, {variant}"
                requests[name] = compiled.create_infer_request()
                rows[name] = []
        for _ in range(args.repeats):
            rows["torch fp32 (logits)"].append(statistics.median(torch_backend.time_forward(shape, 10, args.iters)))
            for name, request in requests.items():
                rows[name].append(statistics.median(time_calls(lambda r=request: r.infer({0: x}), 10, args.iters)))
    base = statistics.median(rows["torch fp32 (logits)"])
    print(f"# forward pass at {args.imgsz} (torch: the logits, no arg-max), batch 1, {describe_device('cpu')}, torch {torch.__version__}, "
          f"OpenVINO {ov.get_version().split('-')[0]}\n")
    print("| variant | median ms per round | median | torch fp32 / variant |")
    print("|---|---|---:|---:|")
    for name, times in rows.items():
        median = statistics.median(times)
        print(f"| {name} | {' '.join(f'{t:.2f}' for t in times)} | {median:.2f} | {base / median:.2f}x |")


if __name__ == "__main__":
    try:
        main()
    except InputError as exc:
        raise SystemExit(f"error: {exc}") from None
