"""Training and evaluation (thesis §4.3, §4.4; docs/design.md §2.4).

Cross-entropy plus weight smoothness decay (4.10) in the loss, L2 decay (4.9) through the
optimiser's parameter groups, SGD with momentum and the warm-up/step schedule of
:class:`~nlseg.train.recipe.Recipe`, bf16 autocast on CUDA. The data order and augmentation
of an epoch come from a generator seeded by (seed, epoch), so a run resumed from ``last.pt``
repeats exactly what the uninterrupted run would have done.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from nlseg.checkpoint import read_checkpoint, save_checkpoint
from nlseg.data.labels import ClassGroups
from nlseg.data.noise import add_input_noise
from nlseg.data.split import Split
from nlseg.data.transforms import augment, augment_scenes, normalize
from nlseg.errors import InputError
from nlseg.io import remove_stale_temps
from nlseg.nn.config import ModelConfig, build_model
from nlseg.nn.realtime import RealtimeSegmenter
from nlseg.nn.regularization import weight_decay_groups, weight_smoothness_decay
from nlseg.train import rundir
from nlseg.train.class_balance import class_weights, logit_shift
from nlseg.train.distributed import Context, sync_batchnorm
from nlseg.train.ema import WeightAverage
from nlseg.train.loss import labelled_count, segmenter_loss, summed_loss
from nlseg.train.metrics import Scores
from nlseg.train.progress import EpochBar
from nlseg.train.recipe import Recipe


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run's results (``config.json``'s ``run`` entry)."""

    dataset: str
    data_dir: str | None
    size: tuple[int, int]
    model: ModelConfig
    recipe: Recipe
    seed: int = 0
    train_fraction: float = 1.0
    init: str | None = None  # checkpoint whose weights the run starts from (fine-tuning); None: He init
    synthetic_scenes: int = 0  # generated driving scenes added to the training split
    train_split: str = "train"  # the split trained on (CamVid: drive splits such as train+val:-0006R0)
    val_split: str | None = "val"  # the split validated on; None: no validation

    @property
    def metric(self) -> str:
        """The validation metric that picks ``best.pt``."""
        return "miou" if self.model.task == "segment" else "accuracy"

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(size=list(self.size), model=self.model.to_dict(), recipe=self.recipe.to_dict())
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSpec":
        return cls(**{**data, "size": tuple(data["size"]), "model": ModelConfig.from_dict(data["model"]),
                      "recipe": Recipe.from_dict(data["recipe"])})


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """The generator of an epoch's data order and augmentation (``stream`` 0) or of its validation
    noise (``stream`` 1): a function of (seed, epoch, stream) only."""
    state = np.random.SeedSequence([seed, epoch] + ([stream] if stream else [])).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def training_subset(n: int, fraction: float, seed: int) -> torch.Tensor:
    """Indices of a random ``fraction`` of ``n`` training samples (thesis §5.4.2, Table 5.7), by seed."""
    keep = max(1, int(round(fraction * n)))
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:keep].sort().values


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA (the trainer's mixed precision); a no-op context elsewhere."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def shifted(logits: torch.Tensor, shift: torch.Tensor | None) -> torch.Tensor:
    """Logits (B, C, H, W) plus the per-class ``shift`` (C,), or as they are without one."""
    return logits if shift is None else logits + shift.view(1, -1, 1, 1).to(logits.dtype)


def train_epoch(model: nn.Module, module: nn.Module, optimizer: torch.optim.Optimizer, data: Split,
                mean: torch.Tensor, spec: RunSpec, epoch: int, ctx: Context,
                weight: torch.Tensor | None = None, groups: ClassGroups | None = None,
                average: WeightAverage | None = None) -> dict[str, Any]:
    """One epoch over ``data``; returns the epoch's training loss and accuracy (pixel accuracy).

    ``weight``: class weights of the loss (the reported training loss is then the weighted one, and
    with the recipe's ``logit_adjustment`` the training metrics those of the shifted logits);
    ``groups``: the label set the metrics are reported in; ``average``: the weights' moving
    average, updated after every step.
    """
    recipe, device = spec.recipe, ctx.device
    g = epoch_generator(spec.seed, epoch)
    order = torch.randperm(len(data), generator=g)
    # A last batch of one sample is dropped (BatchNorm cannot train on one value per channel).
    smallest = ctx.world if recipe.batch_size == 1 else max(2, ctx.world)
    batches = [b for b in order.split(recipe.batch_size) if len(b) >= smallest]
    scores = Scores(data.num_classes, data.is_segmentation, device, groups)
    crop = recipe.crop or data.image_size
    segmenter_head = isinstance(module, RealtimeSegmenter)
    shift = logit_shift(weight) if recipe.logit_adjustment and weight is not None else None
    bar = EpochBar(f"epoch {epoch}/{recipe.epochs}", len(batches),
                   "pixel acc" if data.is_segmentation else "acc", ctx.is_main)
    module.train()
    refresh = max(1, len(batches) // 40)
    for i, index in enumerate(batches):
        images = data.images[index].to(device, non_blocking=True)
        y = data.targets[index].to(device, non_blocking=True)
        if recipe.scene_augmentation:
            x, y = augment_scenes(images, y, mean, crop, recipe.scale, recipe.flip, recipe.jitter, g,
                                  cast=recipe.colour_cast)
        else:
            if recipe.input_noise > 0:
                images = add_input_noise(images, recipe.input_noise, g)
            x, y = augment(normalize(images, mean), y, recipe.pad, recipe.flip, g)
        if recipe.loss_stride > 1:  # the loss on every stride-th pixel: labels subsampled, logits upsampled less
            y = y[:, ::recipe.loss_stride, ::recipe.loss_stride].contiguous()
        count = labelled_count(y, weight)  # over the global batch: the loss is its mean
        part = ctx.shard(len(index))
        x, y = x[part], y[part]
        if segmenter_head:  # coarse logits, upsampled to the labels' grid inside the loss
            with autocast_for(device):
                coarse = shifted(model(x, coarse=True), shift)  # a constant per class: upsampling keeps it
            loss_sum, labels = segmenter_loss(coarse, y, weight)
            logits = None
        else:
            with autocast_for(device):
                logits = model(x)
            loss_sum, labels = summed_loss(logits, y, weight), None
        loss = loss_sum * ctx.world / count + weight_smoothness_decay(module, recipe.smoothness)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if average is not None:
            average.update(module)
        scores.update(logits, y, loss_sum, labelled_count(y, weight), labels=labels)
        bar.advance(len(index))
        if bar.enabled and (i % refresh == 0 or i == len(batches) - 1):
            summary = scores.summary()
            bar.show(summary["loss"], summary.get("pixel_accuracy", summary.get("accuracy")))
    bar.close()
    ctx.all_reduce(scores.tensors())
    return scores.summary()


@torch.no_grad()
def evaluate(module: nn.Module, data: Split, mean: torch.Tensor, batch_size: int, ctx: Context,
             noise_sigma: float = 0.0, per_class: bool = False, groups: ClassGroups | None = None,
             input_noise: float = 0.0, noise_generator: torch.Generator | None = None,
             confusion: bool = False) -> dict[str, Any]:
    """Loss and metrics on ``data`` (this process's shard, summed over processes).

    ``noise_sigma`` adds Gaussian noise N(0, σ²) to the [0, 1] inputs (thesis §5.4.1, Table 5.6)
    from a fixed generator, so the same checkpoint always sees the same noise. ``groups``:
    report the metrics in this coarser label set (the loss stays the network's). ``input_noise``:
    the recipe's per-epoch noise, drawn from ``noise_generator`` and clipped to [0, 1].
    ``confusion``: add the confusion matrix's counts (:meth:`Scores.summary`).
    """
    module.eval()
    shard = ctx.shard(len(data))
    scores = Scores(data.num_classes, data.is_segmentation, ctx.device, groups)
    g = torch.Generator().manual_seed(0)
    for start in range(shard.start, shard.stop, batch_size):
        index = slice(start, min(start + batch_size, shard.stop))
        x = data.images[index].to(ctx.device).float() / 255.0
        if noise_sigma > 0:
            x = x + (noise_sigma * torch.randn(x.shape, generator=g)).to(ctx.device)
        if input_noise > 0:
            x = add_input_noise(x, input_noise, noise_generator or g)
        y = data.targets[index].to(ctx.device)
        with autocast_for(ctx.device):
            logits = module(normalize(x, mean))
        scores.update(logits.float(), y, summed_loss(logits, y), labelled_count(y), soft=data.is_segmentation)
    ctx.all_reduce(scores.tensors())
    return scores.summary(per_class=per_class, confusion=confusion)


def _row(epoch: int, lr: float, seconds: float, train: dict, val: dict) -> dict[str, Any]:
    row: dict[str, Any] = {"epoch": epoch, "lr": lr}
    row.update({f"train_{k}": v for k, v in train.items()})
    row.update({f"val_{k}": v for k, v in val.items()})
    row["seconds"] = round(seconds, 3)
    return row


def _meta(spec: RunSpec, epoch: int, row: dict, class_names: tuple[str, ...], mean: torch.Tensor,
          offset: torch.Tensor | None = None) -> dict[str, Any]:
    """What eval and inference read: dataset, task, sizes, classes and the input normalisation.

    ``normalization.mean`` is per channel (exact when ``per_pixel`` is False); the exact
    per-pixel mean is the checkpoint's ``input_mean`` tensor (3, H, W). ``logit_offset``: what
    ``--logit-adjustment`` added to the classifier's bias (-log w per class), when it did.
    """
    extra = {} if offset is None else {"logit_offset": [float(v) for v in offset]}
    return {"dataset": spec.dataset, "task": spec.model.task, "epoch": epoch, "image_size": list(spec.size),
            "data_dir": spec.data_dir, "train_split": spec.train_split, "val_split": spec.val_split,
            "seed": spec.seed, "metrics": row, "class_names": list(class_names),
            "normalization": {"mean": [float(v) for v in mean.mean((1, 2))], "std": [1.0, 1.0, 1.0],
                              "per_pixel": spec.recipe.pixel_mean and spec.recipe.subtract_mean}, **extra}


def _restore(out: Path, spec: RunSpec, module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Load ``last.pt`` into the model and optimiser, restore RNG states; returns the checkpoint."""
    payload = read_checkpoint(out / rundir.LAST)
    stored = payload.get("run", {})
    if stored:  # settings added since the run started compare as their defaults
        stored = RunSpec.from_dict(stored).to_dict()
    mine = spec.to_dict()
    changed = sorted(k for k in set(stored) | set(mine) if stored.get(k) != mine.get(k))
    if changed:
        raise InputError(f"{out} was started with other settings ({', '.join(changed)} differ); repeat the "
                         "original settings, or start a new run in another folder", param="resume")
    module.load_state_dict(payload.get("train_state_dict", payload["state_dict"]))  # the weights, not their average
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"]["torch"])
    if torch.cuda.is_available() and payload["rng"].get("cuda"):
        torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
    return payload


def fit(spec: RunSpec, train: Split, val: Split | None, out: Path, ctx: Context, resume: bool,
        class_names: tuple[str, ...] = (), log: Callable[[str], None] = print,
        groups: ClassGroups | None = None, val_every: int = 1) -> list[dict[str, Any]]:
    """Train ``spec`` in run directory ``out`` (rank 0 writes), resuming from ``last.pt`` if asked.

    ``groups``: validation metrics (and ``best.pt``) in this coarser label set. Without ``val``
    no epoch is validated and no ``best.pt`` is written; with it every ``val_every``-th epoch and
    the last are (``best.pt`` is the best of those).
    Returns the metrics history, one row per epoch.
    """
    recipe = spec.recipe
    if spec.train_fraction < 1.0:
        train = train.subset(training_subset(len(train), spec.train_fraction, spec.seed))
    mean = train.pixel_mean()
    if not recipe.pixel_mean:
        mean = mean.mean((1, 2), keepdim=True)
    if not recipe.subtract_mean:
        mean = torch.zeros(3, 1, 1)
    weight = (class_weights(train.targets, train.num_classes, recipe.class_weighting).to(ctx.device)
              if recipe.class_weights else None)
    if ctx.device.type == "cuda":  # a few hundred MB of uint8 at most: index batches on the GPU
        train, val = train.to(ctx.device), None if val is None else val.to(ctx.device)
    torch.manual_seed(spec.seed)
    module = build_model(spec.model)
    last = out / rundir.LAST
    init = read_checkpoint(spec.init) if spec.init is not None and not (resume and last.exists()) else None
    if init is not None:
        module.load_state_dict(init["state_dict"])
    offset = -logit_shift(weight).cpu() if recipe.logit_adjustment and weight is not None else None
    if offset is not None:  # the bias carries -log w from the start (a resume then loads its own): as without it
        before = init["meta"].get("logit_offset") if init is not None else None
        with torch.no_grad():
            module.output_bias.add_(offset - (torch.tensor(before) if before is not None else 0.0))
    if ctx.world > 1:
        sync_batchnorm(module)
    module.to(ctx.device)
    decay_groups = weight_decay_groups(module, recipe.weight_decay, convention=recipe.decay_convention,
                                       decay_classifier=recipe.decay_classifier)
    optimizer = (torch.optim.Adam(decay_groups, lr=recipe.lr) if recipe.optimizer == "adam"
                 else torch.optim.SGD(decay_groups, lr=recipe.lr, momentum=recipe.momentum))
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": 0, "value": -math.inf}
    if last.exists() and not resume:
        raise InputError(f"{out} already holds a run ({rundir.LAST}); resume it, or train into another folder",
                         param="resume")
    average = WeightAverage(module, recipe.ema) if recipe.ema != 0 else None  # it refuses a decay outside (0, 1)
    if resume and last.exists():
        payload = _restore(out, spec, module, optimizer)
        if average is not None:
            average.load(payload["state_dict"], payload["ema"])
        history, best = list(payload["history"]), dict(payload["best"])
        if ctx.is_main:
            for note in remove_stale_temps(out):  # what the killed run was writing
                log(f"note: {note}")
            _sync_outputs(out, spec, _validated(module, average), mean, history, best, class_names, offset)
            log(f"resuming {out} after epoch {payload['epoch']}")
    elif ctx.is_main:
        if resume:
            log(f"no {rundir.LAST} in {out}; starting from epoch 1")
        rundir.write_json(out / rundir.CONFIG, {"run": spec.to_dict(), "world_size": ctx.world,
                                                "milestone_epochs": list(recipe.milestone_epochs())})
    model = DistributedDataParallel(module) if ctx.world > 1 else module
    for epoch in range(len(history) + 1, recipe.epochs + 1):
        start = time.perf_counter()
        lr = recipe.learning_rate(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        train_scores = train_epoch(model, module, optimizer, train, mean, spec, epoch, ctx, weight, groups, average)
        validate = val is not None and (epoch % val_every == 0 or epoch == recipe.epochs)
        val_scores = {} if not validate else evaluate(
            _validated(module, average), val, mean, recipe.batch_size, ctx, per_class=val.is_segmentation, groups=groups,
            input_noise=recipe.input_noise, noise_generator=epoch_generator(spec.seed, epoch, 1))
        row = _row(epoch, lr, time.perf_counter() - start, train_scores, val_scores)
        history.append(row)
        value = row.get(f"val_{spec.metric}")
        if value is not None and value > best["value"]:
            best = {"epoch": epoch, "value": value}
        if ctx.is_main:
            rng = {"torch": torch.get_rng_state(),
                   "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
            averaged = {} if average is None else {
                "train_state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
                "ema": average.state()}
            save_checkpoint(last, _validated(module, average), spec.model,
                            meta=_meta(spec, epoch, row, class_names, mean, offset),
                            input_mean=mean, optimizer=optimizer.state_dict(), epoch=epoch, history=history, best=best,
                            rng=rng, run=spec.to_dict(), **averaged)
            _sync_outputs(out, spec, _validated(module, average), mean, history, best, class_names, offset)
            log(format_row(row, recipe.epochs))
    return history


def _validated(module: nn.Module, average: WeightAverage | None) -> nn.Module:
    """The network that is validated and saved as ``state_dict``: the weights' average if there is one."""
    return module if average is None else average.module


def _sync_outputs(out: Path, spec: RunSpec, module: nn.Module, mean: torch.Tensor, history: list[dict],
                  best: dict, class_names: tuple[str, ...], offset: torch.Tensor | None = None) -> None:
    """Bring ``metrics.jsonl``, ``curves.png`` and ``best.pt`` in line with the history in ``last.pt``."""
    rundir.write_metrics(out, history)
    rundir.plot_curves(out, history, f"{spec.dataset}, seed {spec.seed}")
    epoch = history[-1]["epoch"]
    best_path = out / rundir.BEST
    current = read_checkpoint(best_path)["meta"].get("epoch") if best_path.exists() else None
    if best["epoch"] == epoch and current != epoch:
        save_checkpoint(best_path, module, spec.model, meta=_meta(spec, epoch, history[-1], class_names, mean, offset),
                        input_mean=mean)


def format_row(row: dict[str, Any], epochs: int) -> str:
    """One line per epoch: lr, losses, metrics and seconds."""
    parts = [f"epoch {row['epoch']}/{epochs}", f"lr {row['lr']:.4g}"]
    for key, value in row.items():
        if key.startswith(("train_", "val_")) and isinstance(value, float):
            parts.append(f"{key} {value:.4f}")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


def median_summary(histories: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    """Median over seeds of each final-epoch number (the thesis reports the median of 5 seeds)."""
    finals = {seed: rows[-1] for seed, rows in histories.items()}
    keys = [k for k, v in next(iter(finals.values())).items() if isinstance(v, float) and k.startswith(("train_", "val_"))]
    median = {k: float(np.median([row[k] for row in finals.values() if row.get(k) is not None])) for k in keys}
    return {"seeds": sorted(finals), "median": median, "final": {str(s): r for s, r in finals.items()}}

