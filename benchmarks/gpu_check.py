"""The first-GPU check of nlseg's TensorRT path and fused kernel: one command, under 8 minutes, one JSON at the end.

    bash benchmarks/gpu_check.sh            # = python benchmarks/gpu_check.py --out "${OUT:-gpu_check_out}"

Steps (each in its own process with its own time limit, so one failure or hang leaves the rest):

1. the machine: GPU, driver, torch, CUDA, Triton, TensorRT, and the Triton release NVIDIA's AOT
   plugin sample pins for that TensorRT (a different Triton is tried with NLSEG_TRITON_UNPINNED=1
   and reported as unpinned);
2. with TensorRT: the bundled real-time segmenter exported as a plugin graph and built into
   fp32 and fp16 engines with the PairwiseKernel plugin (profile 1x3x90x160 .. 1x3x720x1280);
3. parity of each engine against ONNX Runtime on the plugin graph at 1x3x90x160, three inputs,
   through Polygraphy's Comparator (max |Δ| ≤ 1e-3 · max |logits| for fp32, 1e-2 for fp16)
   plus argmax agreement ≥ 99.5 %;
4. latency (p50, p99) and images/s at 1x3x90x160 and 1x3x720x1280 for torch eager (fp32, fp16),
   torch with CUDA graphs, ONNX Runtime and TensorRT (fp32, fp16 with CUDA graphs), all through
   ``nlseg profile --json``;
5. the fused kernel against SDPA flash attention (benchmarks/pairwise.py, bfloat16 and float16,
   180x320 and 720x1280) with the issue's ratios;
6. if time is left, the AOT PTX loaded through the CUDA driver and launched in TensorRT's
   argument order against the float64 reference (benchmarks/fused_check.py section 2).

Without TensorRT, steps 2-3 and the TensorRT rows are reported as skipped and the CUDA parts run.
Without a CUDA device it prints one line saying so and exits 2. Exit 1 when a check fails
(a build, a parity bound, a step that errored), else 0. Logs of every step go to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ("1x3x90x160", "1x3x720x1280")
PROFILE = ("--min-shape", "1x3x90x160", "--opt-shape", "1x3x720x1280", "--max-shape", "1x3x720x1280")
PARITY_SHAPE = (1, 3, 90, 160)
TOLERANCES = {"fp32": 1e-3, "fp16": 1e-2}
MIN_ARGMAX_AGREEMENT = 0.995
BUDGET_S = 470  # stop starting steps after this, to end under 8 minutes


@dataclass
class Step:
    """One command's outcome: its name, exit status (None: not run), seconds, and why it did not run."""

    name: str
    status: int | None = None
    seconds: float = 0.0
    skipped: str | None = None
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 0

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "seconds": round(self.seconds, 1), "skipped": self.skipped}


@dataclass
class Runner:
    """Runs steps as subprocesses within the overall time budget, logging each to ``out/<name>.log``."""

    out: Path
    budget_s: float = BUDGET_S
    env: dict = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)
    steps: list[Step] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def run(self, name: str, args: list[str], timeout: float) -> Step:
        step = Step(name)
        self.steps.append(step)
        left = self.budget_s - self.elapsed()
        if left < 10:
            step.skipped = f"time: {self.elapsed():.0f} s of the {self.budget_s:.0f} s budget used"
            return step
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "PYTHONUNBUFFERED": "1", **self.env}
        env.pop("TRITON_INTERPRET", None)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=min(timeout, left))
            step.status, step.output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            step.status = 124
            step.output = f"{(exc.stdout or b'')!s}{(exc.stderr or b'')!s}\ntimed out after {min(timeout, left):.0f} s"
        step.seconds = time.perf_counter() - t0
        (self.out / f"{name}.log").write_text(f"$ {' '.join(args)}\n{step.output}")
        print(f"gpu_check: {name}: {'ok' if step.ok else f'exit {step.status}'} ({step.seconds:.0f} s)",
              file=sys.stderr, flush=True)
        return step


def last_json(text: str) -> dict | None:
    """The last line of ``text`` that parses as a JSON object (``nlseg profile --json`` ends with one)."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def latency_rows(profile: dict, variant: str) -> list[dict]:
    """Rows (backend, variant, precision, shape, p50/p99 ms, images/s) from one ``nlseg profile --json`` result."""
    results = profile.get("backends", [profile])
    return [{"backend": r["backend"], "variant": variant, "precision": r["precision"], "shape": "x".join(map(str, r["shape"])),
             "p50_ms": round(r["p50_ms"], 4), "p99_ms": round(r["p99_ms"], 4), "images_per_s": round(r["throughput"], 2)}
            for r in results]


def parity(reference, candidate, feeds: list[dict], precision: str) -> dict:
    """Polygraphy's Comparator on two runners: max |Δ| within ``TOLERANCES[precision]`` · max |reference logits|
    (SimpleCompareFunc, max error statistic), and the fraction of pixels whose argmax class agrees."""
    import numpy as np
    from polygraphy.comparator import Comparator, SimpleCompareFunc

    results = Comparator.run([reference, candidate], data_loader=feeds)
    ref = [np.asarray(out["logits"], np.float32) for out in results[0][1]]
    got = [np.asarray(out["logits"], np.float32) for out in results[1][1]]
    scale = max(float(np.abs(r).max()) for r in ref)
    tolerance = TOLERANCES[precision]
    compare = SimpleCompareFunc(atol=tolerance * scale, rtol=0.0, check_error_stat="max")
    within = bool(Comparator.compare_accuracy(results, compare_func=compare))
    diff = max(float(np.abs(g - r).max()) for g, r in zip(got, ref))
    agreement = float(np.mean([np.mean(g.argmax(1) == r.argmax(1)) for g, r in zip(got, ref)]))
    return {"precision": precision, "max_abs_diff": diff, "logits_scale": scale, "relative": diff / scale,
            "tolerance": tolerance, "within_tolerance": within, "argmax_agreement": agreement,
            "passed": within and agreement >= MIN_ARGMAX_AGREEMENT}


def parity_feeds(count: int = 3) -> list[dict]:
    import numpy as np

    rng = np.random.default_rng(0)
    return [{"image": rng.standard_normal(PARITY_SHAPE).astype(np.float32)} for _ in range(count)]


def machine() -> dict:
    """What this machine has; ``cuda`` False when PyTorch sees no GPU."""
    import importlib.util

    import torch

    info: dict = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if info["cuda"]:
        info.update(gpu=torch.cuda.get_device_name(), capability=list(torch.cuda.get_device_capability()),
                    cuda_runtime=torch.version.cuda)
    info["triton"] = None
    if importlib.util.find_spec("triton") is not None:
        import triton

        info["triton"] = triton.__version__
    info["tensorrt"] = None
    try:
        import tensorrt

        info["tensorrt"] = tensorrt.__version__
    except (ImportError, OSError) as exc:
        info["tensorrt_missing"] = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    if info["tensorrt"]:
        from nlseg.tensorrt.compat import triton_pin

        pin = triton_pin(info["tensorrt"]).triton
        info["triton_pinned"] = pin
        info["triton_is_pinned"] = info["triton"] is not None and info["triton"].split("+")[0] == pin
    return info


def fused_table(runner: Runner) -> dict:
    """benchmarks/pairwise.py's fused frac against SDPA flash, with pairs/s ratios."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from fused_check import parse_table

    rows: list[dict] = []
    for dtype in ("bfloat16", "float16"):
        step = runner.run(f"fused_{dtype}", [sys.executable, "benchmarks/pairwise.py", "--device", "cuda", "--dtype",
                                             dtype, "--grids", "180x320,720x1280", "--only", "frac, fused;SDPA flash",
                                             "--repeats", "10"], timeout=120)
        table = parse_table(step.output) if step.ok else {}
        for grid in ("180x320", "720x1280"):
            fused, flash = table.get(("frac, fused", grid)), table.get(("SDPA flash", grid))
            rows.append({"dtype": dtype, "grid": grid, "fused_ms": fused and fused[0], "sdpa_ms": flash and flash[0],
                         "fused_pairs_per_s": fused and fused[1], "sdpa_pairs_per_s": flash and flash[1],
                         "fused_over_sdpa": round(fused[1] / flash[1], 3) if fused and flash else None})
    return {"rows": rows, "target": "fused pairs/s >= 40% of SDPA's (floor), 90% reached elsewhere"}


def nlseg(*args: str) -> list[str]:
    return [sys.executable, "-m", "nlseg", *args]


def run_checks(out: Path, budget_s: float, iters: int) -> dict:
    info = machine()
    env = {}
    if info.get("tensorrt") and not info.get("triton_is_pinned"):
        env["NLSEG_TRITON_UNPINNED"] = "1"
    runner = Runner(out, budget_s, env)
    report: dict = {"machine": info, "engines": {}, "parity": {}, "latency": [], "fused": None}
    engines: dict[str, Path] = {}
    if info["tensorrt"]:
        onnx_path = out / "seg_plugin.onnx"
        runner.run("export_plugin_onnx", nlseg("export", "--plugin", "--out", str(onnx_path)), timeout=120)
        for precision in ("fp32", "fp16"):
            engine = out / f"seg_{precision}.engine"
            step = runner.run(f"engine_{precision}", nlseg("export", "--trt", *(["--half"] if precision == "fp16" else []),
                                                           *PROFILE, "--out", str(engine)), timeout=240)
            meta = engine.with_suffix(".engine.json")
            built = step.ok and meta.is_file()
            data = json.loads(meta.read_text()) if built else {}
            report["engines"][precision] = {**step.to_dict(), "built": built,
                                            "plugin_layers": len(data.get("plugin_layers", [])),
                                            "error": None if built else step.output.strip().splitlines()[-1:]}
            if built:
                engines[precision] = engine
        if engines and onnx_path.is_file():
            step = runner.run("parity", [sys.executable, __file__, "--parity", str(onnx_path),
                                         *(f"{p}={e}" for p, e in engines.items())], timeout=180)
            report["parity"] = last_json(step.output) or {"error": step.output.strip().splitlines()[-1:]}
    else:
        report["engines"] = {"skipped": f"no TensorRT ({info.get('tensorrt_missing', '')})"}
    timing = ["--warmup", "10", "--iters", str(iters), "--json"]
    for shape in SHAPES:
        runs = [("eager", nlseg("profile", "--backend", "all", "--shape", shape, *timing)),
                ("eager", nlseg("profile", "--backend", "torch", "--half", "--shape", shape, *timing)),
                ("cuda_graph", nlseg("profile", "--backend", "torch", "--half", "--cuda-graph", "--shape", shape, *timing))]
        runs += [("engine" if p == "fp32" else "cuda_graph",
                  nlseg("profile", str(e), "--backend", "tensorrt", *([] if p == "fp32" else ["--cuda-graph"]),
                        "--shape", shape, *timing)) for p, e in engines.items()]
        for i, (variant, args) in enumerate(runs):
            step = runner.run(f"profile_{shape}_{i}", args, timeout=120)
            result = last_json(step.output) if step.ok else None
            report["latency"] += latency_rows(result, variant) if result else [{"command": " ".join(args[2:]),
                                                                                 **step.to_dict()}]
    report["fused"] = fused_table(runner)
    aot = runner.run("fused_aot_launch", [sys.executable, "benchmarks/fused_check.py", "--sections", "2"], timeout=120)
    report["aot_launch"] = {**aot.to_dict(), "lines": [ln for ln in aot.output.splitlines() if ln.startswith("- ")]}
    report["steps"] = [s.to_dict() for s in runner.steps]
    report["seconds"] = round(runner.elapsed(), 1)
    report["passed"] = verdict(report, runner.steps)
    return report


def verdict(report: dict, steps: list[Step]) -> bool:
    """True when every step that ran succeeded, every engine built and every parity check passed."""
    ran = [s for s in steps if s.status is not None]
    engines = [e for e in report["engines"].values() if isinstance(e, dict)]
    parities = [p for p in report["parity"].values() if isinstance(p, dict)] if report["parity"] else []
    return (all(s.ok for s in ran) and all(e["built"] for e in engines)
            and all(p.get("passed", False) for p in parities) and "error" not in report["parity"])


def parity_main(onnx_path: str, engines: list[str]) -> None:
    """``--parity``: each ``precision=engine`` against ONNX Runtime on the plugin graph, one JSON line."""
    from polygraphy.backend.onnxrt import OnnxrtRunner
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner

    from nlseg.onnx.ort_op import open_session

    feeds = parity_feeds()
    out = {}
    for item in engines:
        precision, path = item.split("=", 1)
        reference = OnnxrtRunner(open_session(Path(onnx_path)), name="onnxruntime")
        candidate = TrtRunner(EngineFromBytes(Path(path).read_bytes()), name=f"tensorrt_{precision}")
        out[precision] = parity(reference, candidate, feeds, precision)
    print(json.dumps(out))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check_out")),
                        help="folder for the logs, engines and gpu_check.json (default: $OUT or gpu_check_out)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds after which no step starts")
    parser.add_argument("--iters", type=int, default=50, help="timed passes per latency measurement")
    parser.add_argument("--parity", nargs="+", metavar=("ONNX", "PRECISION=ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.budget <= 0 or args.iters < 1:
        parser.error(f"--budget must be > 0 and --iters >= 1, got {args.budget} and {args.iters}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.parity:
        parity_main(args.parity[0], args.parity[1:])
        return 0
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device (torch.cuda.is_available() is False); run it on a machine with an NVIDIA GPU",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    report = run_checks(args.out, args.budget, args.iters)
    text = json.dumps(report)
    (args.out / "gpu_check.json").write_text(text)
    print(text)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
