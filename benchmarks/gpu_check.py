"""The first-GPU check of nlseg's TensorRT path and fused kernel: one command, under 8 minutes, one JSON at the end.

    bash benchmarks/gpu_check.sh            # = python benchmarks/gpu_check.py --out "${OUT:-gpu_check_out}"

Steps (each in its own process with its own time limit, so one failure or hang leaves the rest;
the checks first, the timings after, so a slow machine loses timings rather than checks):

1. the machine: GPU, driver, torch, CUDA, Triton, TensorRT, and the Triton release NVIDIA's AOT
   plugin sample pins for that TensorRT (a different Triton is tried with NLSEG_TRITON_UNPINNED=1
   and reported as unpinned);
2. with TensorRT, engines with the PairwiseKernel plugin from distance-kernel models
   (``--random-init --layout realtime --nonlocal frac``: fp32 and fp16; ``log``: fp32), and from the
   bundled real-time segmenter (fp32, fp16; its 𝓛 blocks become standard layers, no plugin), all
   with the profile 1x3x90x160 .. 1x3x720x1280 and one timing cache; each records its plugin layers;
3. parity of each engine against ONNX Runtime on its model's plugin graph at 1x3x90x160, three
   inputs, through Polygraphy's Comparator (max |Δ| ≤ 1e-3 · max |logits| for fp32, 1e-2 for
   fp16) plus argmax agreement ≥ 99.5 %;
4. the fused kernel inside a model under CUDA graphs: the frac model in fp16 through the torch
   backend with ``--cuda-graph`` (two captured shapes) against eager, same bounds as fp16 parity;
5. TensorRT 10: an INT8 engine of the bundled weights calibrated on frames of the sample clip,
   against the fp32 engine on other frames of it: argmax agreement ≥ 98 %;
6. latency (p50, p99) and images/s at 1x3x90x160 and 1x3x720x1280 for torch eager (fp32, fp16),
   torch with CUDA graphs (the bundled model, and the frac model with the fused kernel), ONNX
   Runtime (CUDA provider) and TensorRT (fp32, fp16 with CUDA graphs, the frac plugin engine),
   all through ``nlseg profile --json``;
7. the fused kernel against SDPA flash attention (benchmarks/pairwise.py, bfloat16 and float16,
   180x320 and 720x1280) with the issue's ratios;
8. if time is left, the AOT PTX loaded through the CUDA driver and launched in TensorRT's
   argument order against the float64 reference (benchmarks/fused_check.py section 2).

:func:`verdict` passes only when every step that ran succeeded and, with TensorRT, at least one
engine holds plugin layers, every distance-kernel engine does, every engine built and matched
ONNX Runtime, and the INT8 engine (TensorRT 10) agreed with fp32. Without TensorRT, steps 2-3, 5
and the TensorRT rows are reported as skipped and the CUDA parts run. Without a CUDA device it
prints one line saying so and exits 2. Exit 1 when a check fails, else 0. Logs of every step go
to --out.
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
MIN_INT8_AGREEMENT = 0.98
INT8_SHAPE = (1, 3, 360, 640)
GRAPH_SHAPES = ((1, 3, 360, 640), (2, 3, 180, 320))
BUDGET_S = 470  # stop starting steps after this, to end under 8 minutes
DISTANCE_KERNELS = ("frac", "invfrac", "log")
# Models: the nlseg export arguments of each (the kernel of its Nonlocal Blocks).
MODELS = {"frac": ("frac", ["--random-init", "--layout", "realtime", "--nonlocal", "frac"]),
          "log": ("log", ["--random-init", "--layout", "realtime", "--nonlocal", "log"]),
          "bundled": ("dot", [])}
# Engines, checks first: (model, precision); the plugin engines lead.
ENGINES = (("frac", "fp32"), ("frac", "fp16"), ("log", "fp32"), ("bundled", "fp32"), ("bundled", "fp16"))


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


def build_engines(runner: Runner, out: Path, report: dict) -> dict[str, tuple[Path, Path]]:
    """Steps 2-3: the plugin graphs and engines of :data:`ENGINES`, then their parity; returns key -> (onnx, engine)."""
    built: dict[str, tuple[Path, Path]] = {}
    onnx_files: dict[str, Path] = {}
    cache = out / "trt.timing.cache"
    for model, precision in ENGINES:
        kernel, args = MODELS[model]
        if model not in onnx_files:
            onnx_files[model] = out / f"{model}_plugin.onnx"
            runner.run(f"export_{model}_plugin_onnx",
                       nlseg("export", *args, "--plugin", "--out", str(onnx_files[model])), timeout=120)
        key = f"{model}_{precision}"
        engine = out / f"{key}.engine"
        step = runner.run(f"engine_{key}", nlseg("export", *args, "--trt", *(["--half"] if precision == "fp16" else []),
                                                 *PROFILE, "--timing-cache", str(cache), "--out", str(engine)),
                          timeout=240)
        meta = engine.with_suffix(".engine.json")
        ok = step.ok and meta.is_file()
        data = json.loads(meta.read_text()) if ok else {}
        report["engines"][key] = {**step.to_dict(), "model": model, "kernel": kernel, "precision": precision,
                                  "built": ok, "plugin_layers": len(data.get("plugin_layers", [])),
                                  "error": None if ok else step.output.strip().splitlines()[-1:]}
        if ok and onnx_files[model].is_file():
            built[key] = (onnx_files[model], engine)
    if built:
        pairs = {key: [str(o), str(e)] for key, (o, e) in built.items()}
        step = runner.run("parity", [sys.executable, __file__, "--parity", json.dumps(pairs)], timeout=180)
        report["parity"] = last_json(step.output) or {"error": step.output.strip().splitlines()[-1:]}
    return built


def sample_frames(out: Path) -> tuple[Path, Path]:
    """Frames of the bundled sample clip: every third to ``out/calib`` (INT8 calibration), the next ones to
    ``out/frames`` (the INT8 comparison); PNG, as read."""
    import cv2

    calib, held_out = out / "calib", out / "frames"
    calib.mkdir(exist_ok=True)
    held_out.mkdir(exist_ok=True)
    capture = cv2.VideoCapture(str(ROOT / "nlseg" / "assets" / "sample_drive.mp4"))
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % 3 == 0:
            cv2.imwrite(str(calib / f"{index:04d}.png"), frame)
        elif index % 6 == 1:
            cv2.imwrite(str(held_out / f"{index:04d}.png"), frame)
        index += 1
    capture.release()
    return calib, held_out


def int8_check(runner: Runner, out: Path, info: dict, fp32_engine: Path | None) -> dict:
    """Step 5: an INT8 engine of the bundled weights, calibrated on sample frames, against the fp32 engine."""
    from nlseg.tensorrt.compat import strongly_typed_only

    if strongly_typed_only(info["tensorrt"]):
        return {"skipped": f"TensorRT {info['tensorrt']} removed INT8 calibration"}
    if fp32_engine is None:
        return {"skipped": "no fp32 engine of the bundled weights to compare with"}
    calib, held_out = sample_frames(out)
    engine = out / "bundled_int8.engine"
    shape = "x".join(map(str, INT8_SHAPE))
    step = runner.run("engine_bundled_int8", nlseg("export", "--trt", "--int8", "--calib-data", str(calib),
                                                   "--min-shape", shape, "--opt-shape", shape, "--max-shape", shape,
                                                   "--out", str(engine)), timeout=240)
    if not (step.ok and engine.is_file()):
        return {**step.to_dict(), "built": False, "error": step.output.strip().splitlines()[-1:]}
    compare = runner.run("int8_agreement", [sys.executable, __file__, "--int8-agreement", str(fp32_engine),
                                            str(engine), str(held_out)], timeout=120)
    return {**step.to_dict(), "built": True, **(last_json(compare.output) or {"error": compare.output.strip()
                                                                                  .splitlines()[-1:]})}


def run_checks(out: Path, budget_s: float, iters: int) -> dict:
    info = machine()
    env = {}
    if info.get("tensorrt") and not info.get("triton_is_pinned"):
        env["NLSEG_TRITON_UNPINNED"] = "1"
    runner = Runner(out, budget_s, env)
    report: dict = {"machine": info, "engines": {}, "parity": {}, "cuda_graph": None, "int8": None, "latency": [],
                    "fused": None}
    built: dict[str, tuple[Path, Path]] = {}
    if info["tensorrt"]:
        built = build_engines(runner, out, report)
    else:
        report["engines"] = {"skipped": f"no TensorRT ({info.get('tensorrt_missing', '')})"}
    step = runner.run("fused_cuda_graph", [sys.executable, __file__, "--graph-parity"], timeout=180)
    report["cuda_graph"] = last_json(step.output) or {**step.to_dict(), "error": step.output.strip().splitlines()[-1:]}
    if info["tensorrt"]:
        report["int8"] = int8_check(runner, out, info, built.get("bundled_fp32", (None, None))[1])
    timing = ["--warmup", "10", "--iters", str(iters), "--json"]
    frac = MODELS["frac"][1]
    for shape in SHAPES:
        runs = [("eager", nlseg("profile", "--backend", "all", "--shape", shape, *timing)),
                ("eager", nlseg("profile", "--backend", "torch", "--half", "--shape", shape, *timing)),
                ("cuda_graph", nlseg("profile", "--backend", "torch", "--half", "--cuda-graph", "--shape", shape, *timing)),
                ("cuda_graph_fused_frac", nlseg("profile", *frac, "--backend", "torch", "--half", "--cuda-graph",
                                                "--shape", shape, *timing))]
        for key, variant, graph in (("bundled_fp32", "engine", False), ("bundled_fp16", "cuda_graph", True),
                                    ("frac_fp16", "cuda_graph_plugin_frac", True)):
            if key in built:
                runs.append((variant, nlseg("profile", str(built[key][1]), "--backend", "tensorrt",
                                            *(["--cuda-graph"] if graph else []), "--shape", shape, *timing)))
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
    """True when every step that ran succeeded and each check that ran passed; with TensorRT also: some engine
    holds plugin layers, every distance-kernel engine built with plugin layers, every built engine has a parity
    result and passed it, and the INT8 engine (where TensorRT has INT8) agreed with fp32."""
    if not all(s.ok for s in steps if s.status is not None):
        return False
    graph = report.get("cuda_graph")
    if isinstance(graph, dict) and not graph.get("passed", False):
        return False
    engines = report["engines"]
    if "skipped" in engines:
        return True
    parity = report["parity"] or {}
    if "error" in parity or not engines:
        return False
    for key, engine in engines.items():
        if not engine["built"]:
            return False
        if engine["kernel"] in DISTANCE_KERNELS and engine["plugin_layers"] < 1:
            return False
        if not parity.get(key, {}).get("passed", False):
            return False
    if not any(e["plugin_layers"] > 0 for e in engines.values()):
        return False
    int8 = report.get("int8") or {}
    return "skipped" in int8 or bool(int8.get("passed", False))


def parity_main(pairs: dict[str, list[str]]) -> None:
    """``--parity``: each engine (key -> [its plugin graph, engine]) against ONNX Runtime on the plugin graph,
    one JSON line."""
    from polygraphy.backend.onnxrt import OnnxrtRunner
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner

    from nlseg.onnx.ort_op import open_session

    feeds = parity_feeds()
    out = {}
    for key, (onnx_path, engine) in pairs.items():
        precision = key.rsplit("_", 1)[1]
        reference = OnnxrtRunner(open_session(Path(onnx_path)), name="onnxruntime")
        candidate = TrtRunner(EngineFromBytes(Path(engine).read_bytes()), name=f"tensorrt_{key}")
        out[key] = parity(reference, candidate, feeds, precision)
    print(json.dumps(out))


def agreement(reference: list, candidate: list) -> float:
    """The fraction of pixels whose argmax class agrees, over (B, K, H, W) logits."""
    import numpy as np

    return float(np.mean([np.mean(c.argmax(1) == r.argmax(1)) for c, r in zip(candidate, reference)]))


def graph_parity_main() -> None:
    """``--graph-parity``: the frac model in fp16 on the torch backend, captured in CUDA graphs at
    :data:`GRAPH_SHAPES`, against the same model eager; one JSON line."""
    import copy

    import numpy as np
    import torch

    from nlseg.contract import info_from_checkpoint
    from nlseg.nn.config import ModelConfig
    from nlseg.onnx.source_model import random_init
    from nlseg.ops.omega import KernelParams
    from nlseg.ops.pairwise import default_implementation
    from nlseg.runtime.torch_backend import TorchBackend

    device = torch.device("cuda", torch.cuda.current_device())
    source = random_init(ModelConfig.from_preset("bdd100k", layout="realtime", nonlocal_kernel="frac"), seed=0)
    info = info_from_checkpoint(source.config, source.meta, source.input_mean)
    eager = TorchBackend(copy.deepcopy(source.model), info, Path("<random-init>"), device, "fp16")
    graphs = TorchBackend(source.model, info, Path("<random-init>"), device, "fp16", cuda_graph=True)
    rng = np.random.default_rng(0)
    reference, candidate = [], []
    for shape in (*GRAPH_SHAPES, *GRAPH_SHAPES):  # each shape twice: the second call replays its graph
        batch = rng.standard_normal(shape).astype(np.float32)
        reference.append(eager.logits(batch))
        candidate.append(graphs.logits(batch))
    scale = max(float(np.abs(r).max()) for r in reference)
    diff = max(float(np.abs(c - r).max()) for c, r in zip(candidate, reference))
    agree = agreement(reference, candidate)
    fused = default_implementation(KernelParams("frac", 0.5, 0.1, 2), device, torch.float16) == "triton"
    print(json.dumps({"model": "random-init realtime frac, fp16",
                      "shapes": ["x".join(map(str, s)) for s in GRAPH_SHAPES],
                      "fused_kernel": fused, "graphs": len(graphs._graphs), "max_abs_diff": diff,
                      "logits_scale": scale, "relative": diff / scale, "tolerance": TOLERANCES["fp16"],
                      "argmax_agreement": agree,
                      "passed": fused and len(graphs._graphs) == len(GRAPH_SHAPES)
                      and diff <= TOLERANCES["fp16"] * scale and agree >= MIN_ARGMAX_AGREEMENT}))


def int8_agreement_main(fp32_engine: str, int8_engine: str, frames: str) -> None:
    """``--int8-agreement``: argmax agreement of the INT8 engine with the fp32 one on the held-out frames, prepared
    as every backend prepares frames (the calibration's own batches), through nlseg's TensorRT backend."""
    import torch

    from nlseg.runtime.load import open_backend
    from nlseg.tensorrt.calibration import calibration_batches, calibration_images

    device = torch.device("cuda", torch.cuda.current_device())
    reference = open_backend(Path(fp32_engine), "tensorrt", device)
    candidate = open_backend(Path(int8_engine), "tensorrt", device)
    batches = list(calibration_batches(calibration_images(frames), INT8_SHAPE, candidate.info))
    ref = [reference.logits(b) for b in batches]
    got = [candidate.logits(b) for b in batches]
    agree = agreement(ref, got)
    print(json.dumps({"frames": len(batches), "shape": "x".join(map(str, INT8_SHAPE)), "argmax_agreement": agree,
                      "bound": MIN_INT8_AGREEMENT, "passed": bool(batches) and agree >= MIN_INT8_AGREEMENT}))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check_out")),
                        help="folder for the logs, engines and gpu_check.json (default: $OUT or gpu_check_out)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds after which no step starts")
    parser.add_argument("--iters", type=int, default=50, help="timed passes per latency measurement")
    parser.add_argument("--parity", metavar="JSON", help=argparse.SUPPRESS)
    parser.add_argument("--graph-parity", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--int8-agreement", nargs=3, metavar=("FP32", "INT8", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.budget <= 0 or args.iters < 1:
        parser.error(f"--budget must be > 0 and --iters >= 1, got {args.budget} and {args.iters}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.parity:
        parity_main(json.loads(args.parity))
        return 0
    if args.graph_parity:
        graph_parity_main()
        return 0
    if args.int8_agreement:
        int8_agreement_main(*args.int8_agreement)
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
