"""``train`` and ``evaluate``: what ``nlseg train`` and ``nlseg eval`` run, callable from Python.

Errors name the parameter that is wrong (``InputError.param``); the command line shows it as
the flag of the same name (``batch_size`` → ``--batch-size``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from nlseg.checkpoint import load_model
from nlseg.data.labels import BDD100K_CLASSES
from nlseg.data.camvid import holdout_splits
from nlseg.data.registry import DATA_SEED, Request, check_split, dataset_info, load_split
from nlseg.data.split import concat
from nlseg.data.synthetic import COUNTS, synthetic_split
from nlseg.errors import InputError
from nlseg.nn.config import ModelConfig
from nlseg.runtime.device import resolve_device
from nlseg.train import distributed
from nlseg.train.distributed import Context
from nlseg.train.loop import RunSpec, evaluate as evaluate_split, fit, median_summary
from nlseg.train.class_balance import WEIGHTINGS
from nlseg.train.recipe import OPTIMIZERS, RECIPES, SCHEDULES
from nlseg.train.rundir import write_json

Size = tuple[int, int]


def _size(value: Sequence[int] | None, param: str, task: str, dataset: str, default: Size) -> Size:
    """A segmentation set's (H, W) for ``param`` (``default`` when None); refused for fixed-size datasets."""
    if value is None:
        return default
    if task != "segment" or dataset == "qtips-seg":
        raise InputError(f"{dataset} images have a fixed size ({default[0]}x{default[1]})", param=param)
    size = tuple(int(v) for v in value)
    if len(size) != 2 or min(size) <= 0:
        raise InputError(f"expected (height, width) of positive integers, got {tuple(value)}", param=param)
    return size[0], size[1]


def train(
    dataset: str,
    config: ModelConfig | None = None,
    *,
    init: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    size: Size | None = None,
    crop: Size | None = None,
    infer_size: Size | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    schedule: str | None = None,
    class_weights: bool | None = None,
    class_weighting: str | None = None,
    logit_adjustment: bool | None = None,
    optimizer: str | None = None,
    scale: tuple[float, float] | None = None,
    jitter: float | None = None,
    colour_cast: float | None = None,
    loss_stride: int | None = None,
    ema: float | None = None,
    seeds: Sequence[int] = (0,),
    seed_dirs: bool = False,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    device: str | None = "auto",
    workers: int = 4,
    train_fraction: float = 1.0,
    synthetic_scenes: int = 0,
    train_split: str = "train",
    val_split: str | None = "val",
    holdout: Sequence[str] = (),
    val_every: int = 1,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``config`` (default: the dataset's thesis architecture) on ``dataset`` with its recipe.

    ``init``: a checkpoint to start from (fine-tuning) instead of He initialisation; the
    architecture and the default input size are then the checkpoint's (no ``config``).
    ``synthetic_scenes``: add this many generated driving scenes (nlseg's scene generator, at the
    training size) to the training split of a street-scene set, for the train ids it lacks.
    ``size``: the training frames' (H, W) of segmentation sets; ``crop``: random training crops of
    street scenes; ``infer_size``: the input size recorded for inference (default ``size``).
    ``epochs``, ``batch_size``, ``lr``, ``schedule``, ``class_weights``, ``class_weighting``
    (``median`` or ``enet``; implies ``class_weights``), ``logit_adjustment`` (real-time layout: the
    classifier bias starts lower by log w and the weighted loss sees the logits + log w, so the run trains as
    without it and its network predicts as if unweighted), ``optimizer`` (``sgd`` or ``adam``) and
    ``scale`` (the street-scene augmentation's random scale range) and ``jitter`` (its brightness,
    contrast and saturation factors in [1 - jitter, 1 + jitter]) and ``colour_cast`` (its per-channel
    gains in [1 - cast, 1 + cast], a grey pixel's luma kept) override the recipe; ``loss_stride``
    s > 1 scores the training loss on every s-th pixel of each crop (real-time layout); ``ema`` d > 0
    validates and saves the moving average of the weights with decay d per step (0: the weights). One run
    per seed, in ``out`` (default ``runs/DATASET``) or, with ``seed_dirs``, ``out/seed-N`` and a
    median in ``out/seeds.json``. Under torchrun each process trains its shard (DDP).
    ``train_split`` / ``val_split``: the splits trained on and validated on (None: no validation,
    ``last.pt`` is the result); CamVid reads drive splits such as ``train+val:-0006R0``.
    ``holdout``: CamVid drives to hold out of train+val and validate on (a drive the model never
    saw), instead of the two splits. ``val_every``: validate every n-th epoch and the last (a long run
    on a CPU spends a third of an epoch validating a CamVid drive); the weights do not depend on it.
    Returns ``{"histories": {seed: rows}, "median": …}`` (median only with ``seed_dirs``).
    """
    info = dataset_info(dataset)
    if holdout:
        if dataset != "camvid":
            raise InputError(f"drives are held out of CamVid, not {dataset}", param="holdout")
        if (train_split, val_split) != ("train", "val"):
            raise InputError("give held-out drives or the two splits, not both", param="holdout")
        train_split, val_split = holdout_splits(tuple(holdout))
    train_param, val_param = ("holdout", "holdout") if holdout else ("train_split", "val_split")
    train_split = check_split(dataset, train_split, train_param)
    val_split = None if val_split is None else check_split(dataset, val_split, val_param)
    preset = ModelConfig.from_preset(info.preset)
    if init is not None:
        if config is not None:
            raise InputError("the architecture comes from the checkpoint: give init or a model config, not both",
                             param="init")
        _, config, _ = load_model(init)
        if (config.task, config.num_classes) != (preset.task, preset.num_classes):
            raise InputError(f"{init}: a {config.num_classes}-class {config.task} network; {dataset} trains "
                             f"{preset.num_classes}-class {preset.task} networks", param="init")
    config = config if config is not None else preset
    image_size = _size(size, "size", config.task, dataset, info.size or config.image_size)
    recipe = RECIPES[dataset]
    for param, value, choices in (("schedule", schedule, SCHEDULES), ("optimizer", optimizer, OPTIMIZERS),
                                  ("class_weighting", class_weighting, WEIGHTINGS)):
        if value is not None and value not in choices:
            raise InputError(f"expected one of {', '.join(choices)}, got {value!r}", param=param)
    if scale is not None and not (len(scale) == 2 and 0 < scale[0] <= scale[1]):
        raise InputError(f"expected LOW-HIGH with 0 < LOW <= HIGH, got {scale}", param="scale")
    if jitter is not None and not 0 <= jitter < 1:
        raise InputError(f"expected 0 <= jitter < 1, got {jitter}", param="jitter")
    if colour_cast is not None and not 0 <= colour_cast < 1:
        raise InputError(f"expected 0 <= cast < 1, got {colour_cast}", param="colour_cast")
    if ema is not None and not 0 <= ema < 1:
        raise InputError(f"expected 0 <= decay < 1 (0: no average), got {ema}", param="ema")
    if loss_stride is not None and loss_stride < 1:
        raise InputError(f"expected a stride of 1 or more, got {loss_stride}", param="loss_stride")
    if (loss_stride or 1) > 1 and config.layout != "realtime":
        raise InputError(f"the real-time layout's logits can be upsampled to a coarser grid; this is the "
                         f"{config.layout} layout", param="loss_stride")
    if class_weighting is not None and class_weights is False:
        raise InputError("a class weighting needs class weights on", param="class_weighting")
    for param, value in (("crop", crop), ("class_weights", class_weights or None), ("infer_size", infer_size),
                         ("class_weighting", class_weighting), ("scale", scale), ("jitter", jitter),
                         ("colour_cast", colour_cast or None),
                         ("synthetic_scenes", synthetic_scenes or None)):
        if value is not None and (config.task != "segment" or dataset == "qtips-seg"):
            raise InputError(f"for street-scene segmentation sets, not {dataset}", param=param)
    if synthetic_scenes and (info.class_names != BDD100K_CLASSES or dataset == "synthetic"):
        raise InputError(f"generated scenes are labelled in the 19 train ids; {dataset} is not, or is generated "
                         "itself", param="synthetic_scenes")
    crop_size = _size(crop, "crop", config.task, dataset, image_size) if crop is not None else recipe.crop
    if crop is None and crop_size is not None and info.size is not None and image_size != info.size:
        crop_size = (round(crop_size[0] * image_size[0] / info.size[0]), round(crop_size[1] * image_size[1] / info.size[1]))
    for param, value, ok in (("epochs", epochs, epochs is None or epochs >= 1),
                             ("batch_size", batch_size, batch_size is None or batch_size >= 1),
                             ("lr", lr, lr is None or lr > 0),
                             ("train_fraction", train_fraction, 0 < train_fraction <= 1),
                             ("workers", workers, workers >= 1),
                             ("synthetic_scenes", synthetic_scenes, synthetic_scenes >= 0),
                             ("val_every", val_every, val_every >= 1),
                             ("seeds", list(seeds), len(seeds) > 0 and min(seeds) >= 0 and len(set(seeds)) == len(seeds))):
        if not ok:
            raise InputError(f"invalid value {value}", param=param)
    recipe = replace(recipe, crop=crop_size, schedule=schedule or recipe.schedule,
                     class_weights=(recipe.class_weights or class_weighting is not None) if class_weights is None
                     else class_weights, class_weighting=class_weighting or recipe.class_weighting,
                     optimizer=optimizer or recipe.optimizer, scale=tuple(scale) if scale else recipe.scale,
                     jitter=recipe.jitter if jitter is None else jitter,
                     colour_cast=recipe.colour_cast if colour_cast is None else colour_cast,
                     logit_adjustment=recipe.logit_adjustment if logit_adjustment is None else logit_adjustment,
                     loss_stride=recipe.loss_stride if loss_stride is None else loss_stride,
                     ema=recipe.ema if ema is None else ema,
                     **{k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr)) if v is not None})
    if recipe.logit_adjustment and not recipe.class_weights:
        raise InputError("shifts the logits by the log class weights; turn class weights on", param="logit_adjustment")
    if recipe.logit_adjustment and config.layout != "realtime":
        raise InputError(f"the real-time layout's classifier bias carries the shift; this is the {config.layout} "
                         "layout", param="logit_adjustment")
    # The network's input size (nlseg infer's default): the training frames' unless told otherwise.
    config = replace(config, image_size=_size(infer_size, "infer_size", config.task, dataset,
                                              config.image_size if init is not None else image_size))
    root = Path(out) if out is not None else Path("runs") / dataset
    folder = None if data_dir is None else Path(data_dir)
    ctx = distributed.setup(device or "auto")
    log = log if ctx.is_main else (lambda _: None)
    try:
        if recipe.batch_size < ctx.world:
            raise InputError(f"{recipe.batch_size} is smaller than the {ctx.world} processes", param="batch_size")
        request = Request(train_split, folder, image_size, workers, train_param)
        if dataset == "synthetic" and folder is None:
            log(f"rendering {COUNTS['train']} + {COUNTS['val']} synthetic scenes at {image_size[0]}x{image_size[1]} "
                f"with {workers} processes (to render once: nlseg synth DIR, then --data-dir DIR) ...")
        else:
            log(f"loading {dataset} ({'generated' if folder is None else folder}) ...")
        train_data = load_split(dataset, request)
        val_data = None if val_split is None else load_split(dataset, replace(request, split=val_split,
                                                                                   param=val_param))
        if synthetic_scenes:
            log(f"rendering {synthetic_scenes} synthetic scenes at {image_size[0]}x{image_size[1]} to add to "
                f"the training split ...")
            train_data = concat(train_data, synthetic_split("train", synthetic_scenes, image_size, seed=DATA_SEED,
                                                            workers=workers))
        if train_data.task != config.task:
            raise InputError(f"a {config.task} network cannot train on {dataset} ({train_data.task})", param="model")
        decay = (f"with ×{recipe.gamma} after epochs {list(recipe.milestone_epochs())}" if recipe.schedule == "step"
                 else f"with {recipe.schedule} decay")
        validation = "no validation" if val_data is None else f"{len(val_data)} validation ({val_split})"
        log(f"{dataset}: {len(train_data)} training ({train_split}) and {validation} images "
            f"{train_data.image_size[0]}x{train_data.image_size[1]}; {ctx.world} process(es) on {ctx.device}; "
            f"lr {recipe.lr} {decay} over {recipe.epochs} epochs")
        histories = {}
        for seed in seeds:
            spec = RunSpec(dataset, None if folder is None else str(folder.resolve()), image_size, config,
                           recipe, seed, train_fraction, None if init is None else str(init), synthetic_scenes,
                           train_split, val_split)
            histories[seed] = fit(spec, train_data, val_data, root / f"seed-{seed}" if seed_dirs else root, ctx,
                                  resume, info.class_names, log, info.scored_as, val_every)
        result: dict[str, Any] = {"histories": histories}
        if seed_dirs and ctx.is_main:
            summary = median_summary(histories)
            write_json(root / "seeds.json", summary)
            result["median"] = summary["median"]
        return result
    finally:
        distributed.teardown()


def evaluate(
    checkpoint: str | os.PathLike,
    *,
    dataset: str | None = None,
    data_dir: str | os.PathLike | None = None,
    split: str | None = None,
    size: Size | None = None,
    noise_sigma: float = 0.0,
    batch_size: int = 16,
    device: str | None = "auto",
    workers: int = 4,
) -> dict[str, Any]:
    """Scores of a training checkpoint on ``split`` of its dataset (or ``dataset`` / ``data_dir``).

    ``split`` defaults to the split the run validated on (a held-out drive for ``--holdout`` runs),
    else ``val``; CamVid also reads drive splits such as ``train+val:0006R0``.

    Classification: accuracy. Segmentation: pixel accuracy, mIoU and per-class IoU (in the
    dataset's own classes: CamVid's 11 for a 19-class network), and the thesis's soft IoU.
    Both: ``confusion``, ``{"classes": names, "counts": rows of label, columns of prediction}``.
    ``noise_sigma`` adds N(0, σ²) to the [0, 1] inputs (thesis Table 5.6).
    """
    if noise_sigma < 0:
        raise InputError(f"must be >= 0, got {noise_sigma}", param="noise_sigma")
    if batch_size < 1:
        raise InputError(f"need at least 1, got {batch_size}", param="batch_size")
    model, config, payload = load_model(checkpoint)
    meta = payload.get("meta", {})
    mean = payload.get("input_mean")
    if not isinstance(mean, torch.Tensor):
        raise InputError(f"{checkpoint}: no input_mean entry (not written by nlseg train)")
    name = dataset or meta.get("dataset")
    if name is None:
        raise InputError(f"{checkpoint} does not name its dataset; name one", param="dataset")
    info = dataset_info(name)
    if split is None:
        split = meta.get("val_split") if name == meta.get("dataset") and meta.get("val_split") else "val"
    split = check_split(name, split)
    folder = Path(data_dir) if data_dir is not None else None
    if folder is None and dataset is None and meta.get("data_dir"):
        folder = Path(meta["data_dir"])
    # Its training frames' size; on another dataset with frames of its own size (CamVid), those.
    trained_size = tuple(meta.get("image_size", config.image_size))
    default = info.size if info.size and name != meta.get("dataset") else trained_size
    data = load_split(name, Request(split, folder, _size(size, "size", config.task, name, default), workers))
    if data.task != config.task or data.num_classes != config.num_classes:
        raise InputError(f"{checkpoint} is a {config.num_classes}-class {config.task} network; "
                         f"{name} is a {data.num_classes}-class {data.task} set", param="dataset")
    ctx = Context(0, 1, resolve_device(device))
    # Noise its recipe draws every epoch (Q-tips: σ = 0.3, clipped): here one fixed draw of it.
    recipe = payload.get("run", {}).get("recipe", {})
    input_noise = float(recipe.get("input_noise", 0.0)) if name == meta.get("dataset") else 0.0
    scores = evaluate_split(model.to(ctx.device), data, mean, batch_size, ctx, noise_sigma, per_class=True,
                            groups=info.scored_as, input_noise=input_noise, confusion=True)
    result = {"checkpoint": str(checkpoint), "dataset": name, "split": split, "images": len(data),
              "noise_sigma": noise_sigma, "input_noise": input_noise, **scores}
    class_names = (info.scored_as.names if info.scored_as else info.class_names) or tuple(
        str(i) for i in range(config.num_classes))
    if "per_class_iou" in result:
        result["per_class_iou"] = dict(zip(class_names, result["per_class_iou"]))
    result["confusion"] = {"classes": list(class_names), "counts": result["confusion"]}
    return result
