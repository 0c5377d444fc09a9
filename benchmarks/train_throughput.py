"""Training images/s of a segmenter with and without the Nonlocal diffusion block 𝓛.

``--preset bdd100k`` (default):
the thesis's segmenter (§4.4): 6-6-6 Blocks, 32-64-112 channels, 90x160 input, 19 classes,
no pooling; 𝓛 is ``--nonlocal diffusion`` (4.1, kernel ``dot``). Each row times the step of
``nlseg train`` (``nlseg.train.loop.train_epoch``) on random inputs and random labels 0..18
(speed does not depend on the data): forward under bf16 autocast on CUDA (fp32 on CPU), the
cross-entropy mean over the labelled pixels plus the weight smoothness decay (4.10), backward,
and SGD with momentum and the L2 decay groups (4.9) of the BDD100K recipe. Loading, augmentation
and the running metrics are not timed. After --warmup steps, --steps steps are timed as one
block (CUDA synchronised at both ends); ms/step is their mean, peak MB the CUDA
max_memory_allocated over the timed steps. The last line is the time of the thesis's 200-epoch
schedule on the 7,000 BDD100K training images at each rate. ``--preset camvid``: the default
weights' real-time layout (16-32-64-128 channels, 1-2-2-3 Blocks) on the CamVid recipe's 224x384
crops, batch 8; the last line is then one epoch of the 468 CamVid train+val frames. Prints Markdown.

Rows: --nonlocal × --modes × --batch. A mode joins with "+" any of ``eager`` (the trainer as
it is), ``channels-last`` (NHWC weights and inputs), ``compile`` (torch.compile of forward and
loss, backward by AOTAutograd; each row compiles in its warm-up), ``cudagraphs`` (the same with
mode="reduce-overhead", i.e. CUDA graphs; CUDA only), ``cudnn-benchmark``, ``bf16`` (the forward
under bf16 autocast on the CPU too; on CUDA the trainer always uses it) and ``reference-head`` (the
real-time layout's loss by PyTorch's upsampling and cross-entropy instead of the trainer's fused
C++ head, ``nlseg.train.loss.segmenter_loss``, on a float32 CPU step). A row that fails
(torch.compile without a compiler, out of memory) is listed with the reason. Reference: 263
images/s with 𝓛 at batch 8, eager, on an H200; the target on H100/H200 is at least 2,000 images/s.

    python benchmarks/train_throughput.py               # CPU: batch 1,2, eager, 1 + 2 steps (~2 min, 2 cores)
    python benchmarks/train_throughput.py --threads 1   # a CPU shared with another busy process
    python benchmarks/train_throughput.py --preset camvid --nonlocal diffusion --batch 8 \
        --modes eager,channels-last,channels-last+bf16,channels-last+compile   # the CamVid recipe's step
    python benchmarks/train_throughput.py --preset camvid --trainer --batch 8 --warmup 2 --steps 12
        # the whole step of nlseg train (augmentation and running metrics too); PYTHONPATH=OTHER_CHECKOUT
        # times another version of the trainer with the same script
    python benchmarks/train_throughput.py --preset camvid --nonlocal diffusion --batch 8 --modes eager --profile 12
        # and where a step's time goes: the 12 operators with the most self time
    python benchmarks/train_throughput.py --preset camvid --nonlocal diffusion --batch 8 --loss-strides 1,2,4
        # nlseg train --loss-stride N: the loss on every N-th pixel of the crop
    python benchmarks/train_throughput.py --preset camvid --nonlocal diffusion --batch 8 \
        --modes eager,reference-head,eager,reference-head      # the fused training head against PyTorch's
    python benchmarks/train_throughput.py --device cuda # batch 8,64,256, 3 modes, 5 + 20 steps
    python benchmarks/train_throughput.py --device cuda --modes eager,channels-last+cudagraphs --batch 256
"""

from __future__ import annotations

import argparse
import gc
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

import nlseg
from nlseg.assets import default_weights
from nlseg.checkpoint import load_model
from nlseg.errors import InputError
from nlseg.nn import ModelConfig, build_model
from nlseg.nn.config import NONLOCAL_CHOICES, nonlocal_kernel as config_kernel
from nlseg.nn.realtime import RealtimeSegmenter
from nlseg.nn.regularization import weight_decay_groups, weight_smoothness_decay
from nlseg.runtime.device import describe_device, resolve_device
from nlseg.train.loop import autocast_for
from nlseg.train.loss import labelled_count, segmenter_loss, summed_loss
from nlseg.train.recipe import RECIPES, Recipe

BDD100K_TRAIN_IMAGES = 7000  # the 10k segmentation split: 7,000 train, 1,000 val
CAMVID_TRAIN_VAL_IMAGES = 468  # CamVid's train (367) and val (101) frames
MODE_TOKENS = ("eager", "channels-last", "compile", "cudagraphs", "cudnn-benchmark", "bf16", "reference-head")
DEFAULTS = {  # batch sizes, modes, warm-up steps, timed steps
    "cpu": ("1,2", "eager", 1, 2),
    "cuda": ("8,64,256", "eager,channels-last,channels-last+compile", 5, 20),
}


@dataclass(frozen=True)
class Mode:
    """How a row runs the step: memory format, torch.compile mode (None: eager), cuDNN autotuning,
    bf16 autocast on every device, the fused training head of the real-time layout."""

    name: str
    channels_last: bool
    compile_mode: str | None
    cudnn_benchmark: bool
    bf16: bool = False
    fused_head: bool = True


def parse_mode(name: str) -> Mode:
    """'channels-last+compile' -> Mode; SystemExit naming the unknown tokens."""
    tokens = set(name.split("+"))
    if tokens - set(MODE_TOKENS):
        raise SystemExit(f"--modes: unknown {', '.join(sorted(tokens - set(MODE_TOKENS)))} in {name!r}; "
                         f"join any of {', '.join(MODE_TOKENS)} with '+'")
    compile_mode = "reduce-overhead" if "cudagraphs" in tokens else "default" if "compile" in tokens else None
    return Mode(name, "channels-last" in tokens, compile_mode, "cudnn-benchmark" in tokens, "bf16" in tokens,
                "reference-head" not in tokens)


def step_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, smoothness: float, bf16: bool,
              fused_head: bool) -> torch.Tensor:
    """The loss of ``train_epoch`` in one process: mean cross-entropy over labelled pixels + (4.10); a
    real-time segmenter's coarse logits are upsampled to the labels' size inside the loss."""
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 and x.device.type == "cpu" else autocast_for(x.device)
    if isinstance(model, RealtimeSegmenter):
        with autocast:
            coarse = model(x, coarse=True)
        loss_sum = segmenter_loss(coarse, y, fused=fused_head)[0]
    else:
        with autocast:
            loss_sum = summed_loss(model(x), y)
    return loss_sum / labelled_count(y) + weight_smoothness_decay(model, smoothness)


def measure(config: ModelConfig, recipe: Recipe, batch: int, mode: Mode, device: torch.device,
            warmup: int, steps: int, profile_ops: int = 0) -> tuple[float, float | None, str | None]:
    """Seconds per training step over ``steps`` after ``warmup``, the peak CUDA MB (None on CPU), and
    with ``profile_ops`` > 0 the table of that many operators with the most self time over ``steps``
    more steps under ``torch.profiler`` (else None)."""
    cuda = device.type == "cuda"
    torch.compiler.reset()  # each row compiles its own graph, for its static shapes
    torch.backends.cudnn.benchmark = mode.cudnn_benchmark
    fmt = torch.channels_last if mode.channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = build_model(config).to(device, memory_format=fmt).train()
    optimizer = torch.optim.SGD(weight_decay_groups(model, recipe.weight_decay), lr=recipe.lr,
                                momentum=recipe.momentum)
    h, w = config.image_size
    x = torch.randn(batch, config.in_channels, h, w, device=device).contiguous(memory_format=fmt)
    s = recipe.loss_stride
    y = torch.randint(0, config.num_classes, (batch, -(-h // s), -(-w // s)), device=device, dtype=torch.uint8)
    loss_of = torch.compile(step_loss, mode=mode.compile_mode) if mode.compile_mode else step_loss

    def step() -> None:
        torch.compiler.cudagraph_mark_step_begin()  # a new iteration for CUDA graph trees; no-op otherwise
        loss = loss_of(model, x, y, recipe.smoothness, mode.bf16, mode.fused_head)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    return seconds, peak, profile_table(step, steps, cuda, profile_ops) if profile_ops > 0 else None


def profile_table(step, steps: int, cuda: bool, rows: int) -> str:
    """``steps`` calls of ``step`` under torch.profiler: the ``rows`` operators with most self time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def preset_config(preset: str, nonlocal_kernel: str) -> ModelConfig:
    """The network a row trains: the thesis's BDD100K segmenter, or the default weights' layout at
    the CamVid recipe's crop size."""
    if preset == "bdd100k":
        return ModelConfig.from_preset("bdd100k", nonlocal_kernel=nonlocal_kernel)
    _, config, _ = load_model(default_weights())
    return replace(config, nonlocal_kernel=config_kernel(nonlocal_kernel), image_size=RECIPES["camvid"].crop)


def measure_trainer(config: ModelConfig, recipe: Recipe, batch: int, device: torch.device, warmup: int,
                    steps: int) -> tuple[float, None, None]:
    """Seconds per batch of ``nlseg.train.loop.train_epoch`` itself (scene augmentation, forward, loss,
    backward, SGD, the running metrics in CamVid's 11 classes) over ``steps`` batches of random
    360x480 frames and labels, after a warm-up epoch of ``warmup`` batches."""
    from nlseg.data.labels import CAMVID_SCORING
    from nlseg.data.split import Split
    from nlseg.train.distributed import Context
    from nlseg.train.loop import RunSpec, train_epoch

    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (batch * max(warmup, steps), 3, 360, 480), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, config.num_classes, (len(frames), 360, 480), generator=g, dtype=torch.uint8)
    spec = RunSpec("camvid", None, (360, 480), config, replace(recipe, batch_size=batch))
    ctx = Context(0, 1, device)
    torch.manual_seed(0)
    model = build_model(config).to(device)
    optimizer = torch.optim.SGD(weight_decay_groups(model, recipe.weight_decay), lr=recipe.lr, momentum=recipe.momentum)
    mean = torch.full((3, 1, 1), 0.4)
    train_epoch(model, model, optimizer, Split(frames[:batch * warmup], labels[:batch * warmup], 19), mean, spec,
                1, ctx, groups=CAMVID_SCORING)
    start = time.perf_counter()
    train_epoch(model, model, optimizer, Split(frames[:batch * steps], labels[:batch * steps], 19), mean, spec,
                2, ctx, groups=CAMVID_SCORING)
    return (time.perf_counter() - start) / steps, None, None


def duration(seconds: float) -> str:
    """45 s, 12 min, 4.2 h, 3.1 d: the unit that keeps the number readable."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def reason(error: Exception) -> str:
    """A one-line, table-safe reason for a failed row."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return "skipped: out of memory"
    first_line = (str(error).strip().splitlines() or [""])[0][:120]
    return f"skipped: {type(error).__name__}: {first_line}".replace("|", "/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--preset", choices=("bdd100k", "camvid"), default="bdd100k",
                        help="bdd100k: the thesis's segmenter at 90x160; camvid: the default weights' layout on "
                             "the CamVid recipe's 224x384 crops")
    parser.add_argument("--nonlocal", dest="nonlocal_ops", default="none,diffusion",
                        help=f"comma-separated --nonlocal operators of nlseg train: {', '.join(NONLOCAL_CHOICES)}")
    parser.add_argument("--batch", default=None, help="comma-separated batch sizes (default 1,2 CPU; 8,64,256 CUDA)")
    parser.add_argument("--modes", default=None,
                        help=f"comma-separated; each joins {', '.join(MODE_TOKENS)} with '+' "
                             "(default eager on CPU; eager,channels-last,channels-last+compile on CUDA)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per row (default 1 CPU, 5 CUDA)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per row (default 2 CPU, 20 CUDA)")
    parser.add_argument("--trainer", action="store_true",
                        help="time nlseg train's whole step (train_epoch: augmentation, metrics too) instead of "
                             "forward/backward/SGD; --preset camvid, eager, CPU fp32 as the trainer runs")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (torch.set_num_threads; default torch's). 1 avoids OpenMP spinning "
                             "against another busy process on a small machine")
    parser.add_argument("--loss-strides", default="1",
                        help="comma-separated --loss-stride values of nlseg train (real-time layout, --preset "
                             "camvid): the loss on every N-th pixel, the logits upsampled to 1/N of the crop")
    parser.add_argument("--profile", type=int, default=0, metavar="ROWS",
                        help="after each row, profile --steps more steps and print the ROWS operators with the "
                             "most self time (torch.profiler)")
    args = parser.parse_args()
    if args.profile < 0:
        raise SystemExit(f"--profile: a number of rows, 0 or more; got {args.profile}")
    if args.profile and args.trainer:
        raise SystemExit("--profile: profiles forward/backward/SGD rows, not --trainer")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except InputError as error:
        raise SystemExit(str(error)) from None
    batches, modes, warmup, steps = DEFAULTS["cuda" if device.type == "cuda" else "cpu"]
    batches = [int(b) for b in (args.batch or batches).split(",")]
    modes = [parse_mode(m.strip()) for m in (args.modes or modes).split(",")]
    warmup = warmup if args.warmup is None else args.warmup
    steps = max(1, steps if args.steps is None else args.steps)
    ops = [op.strip() for op in args.nonlocal_ops.split(",")]
    unknown = [op for op in ops if op not in NONLOCAL_CHOICES]
    if unknown:
        raise SystemExit(f"--nonlocal: unknown {', '.join(unknown)}; expected some of {', '.join(NONLOCAL_CHOICES)}")
    try:
        strides = [int(v) for v in args.loss_strides.split(",")]
    except ValueError:
        raise SystemExit(f"--loss-strides: comma-separated integers, got {args.loss_strides!r}") from None
    if min(strides) < 1 or (max(strides) > 1 and args.preset != "camvid"):
        raise SystemExit(f"--loss-strides: 1 or more, and above 1 for --preset camvid only; got {args.loss_strides}")
    recipe = RECIPES[args.preset]
    cuda = device.type == "cuda"
    if not cuda and any(mode.compile_mode == "reduce-overhead" for mode in modes):
        raise SystemExit("--modes: cudagraphs needs a CUDA device")
    if args.trainer and (args.preset != "camvid" or [m.name for m in modes] != ["eager"]):
        raise SystemExit("--trainer: times the trainer as it is: --preset camvid, --modes eager")

    base = preset_config(args.preset, "diffusion")
    h, w = base.image_size
    print(f"# nlseg train step, {args.preset} preset ({'-'.join(map(str, base.blocks))} Blocks, "
          f"{'-'.join(map(str, base.channels))} channels, {h}x{w} input, {base.num_classes} classes) on {device} "
          f"({describe_device(device)}), {'bf16 autocast' if cuda else 'fp32 unless bf16'}, {torch.get_num_threads()} threads, {warmup} warm-up + {steps} timed "
          f"steps, torch {torch.__version__}" + (f"; the whole trainer step of {Path(nlseg.__file__).parent}"
                                                 if args.trainer else "") + "\n")
    print("| variant | batch | ms/step | images/s | ratio |" + (" peak MB |" if cuda else "") + " note |")
    print("|---|---:|---:|---:|---:|" + ("---:|" if cuda else "") + "---|")
    first: float | None = None
    rates: list[tuple[str, float]] = []
    profiles: list[tuple[str, int, str]] = []
    for op in ops:
        config = preset_config(args.preset, op)
        for mode in modes:
            for batch, stride in [(b, s) for b in batches for s in strides]:
                name = f"{'𝓛' if op == 'diffusion' else 'no 𝓛' if op == 'none' else op}, {mode.name}" + (
                    f", loss stride {stride}" if stride > 1 else "")
                row_recipe = replace(recipe, loss_stride=stride)
                try:
                    result: tuple[float, float | None, str | None] | str = (
                        measure_trainer(config, row_recipe, batch, device, warmup, steps) if args.trainer
                        else measure(config, row_recipe, batch, mode, device, warmup, steps, args.profile))
                except Exception as error:  # a failed row is reported, the others still run
                    result = reason(error)
                gc.collect()  # free this row's model and graphs before the next
                if cuda:
                    torch.cuda.empty_cache()
                if isinstance(result, str):
                    print(f"| {name} | {batch} | | | |" + (" |" if cuda else "") + f" {result} |", flush=True)
                    continue
                seconds, peak, table = result
                if table is not None:
                    profiles.append((name, batch, table))
                rate = batch / seconds
                first = first or rate
                rates.append((f"{name}, batch {batch}", rate))
                memory = f" {peak:,.0f} |" if peak is not None else ""
                print(f"| {name} | {batch} | {seconds * 1e3:,.1f} | {rate:,.2f} | {rate / first:.2f} |{memory} |",
                      flush=True)
    for name, batch, table in profiles:
        print(f"\nOperators with the most self time, {name}, batch {batch}, {steps} steps:\n\n```\n{table}```")
    count = BDD100K_TRAIN_IMAGES if args.preset == "bdd100k" else CAMVID_TRAIN_VAL_IMAGES
    images = recipe.epochs * count
    print(f"\n{recipe.epochs} epochs × {count:,} images ({images:,} training images) "
          "would take: " + "; ".join(f"{label}: {duration(images / rate)}" for label, rate in rates))


if __name__ == "__main__":
    main()
