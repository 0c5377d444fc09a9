"""Running an :class:`~experiments.definitions.Experiment`: every (network, column, seed) through
nlseg's own trainer (:func:`nlseg.train.loop.fit`, the code behind ``nlseg train``), or through
:func:`nlseg.analysis.model_cost` for the multiply-add tables.

Run directories are ``OUT/SETTING/PROTOCOL/COLUMN/NETWORK-CONFIG/seed-N``, named by the full
model config, so experiments that share a run (Table 5.6 evaluates Table 5.2's models; the
s = 1/2 rows of Table 5.3 are Table 5.2's) train it once, and an interrupted experiment resumes.
The protocol (:mod:`experiments.protocols`) decides the data, recipe and network details.

Runs are done seed by seed (seed 0 of every network first), and a run that finished before is
read, not retrained: from its run directory, or, on a checkout without ``runs/``, from the
report's JSON (``previous``), which records every run's settings (:func:`portable_spec`) next
to its per-epoch history; only a run with exactly the same settings is taken from there.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from experiments.definitions import EXPERIMENTS, Column, Experiment, NETWORKS, Network, Setting
from experiments.protocols import (DEFAULT_PROTOCOL, QTIPS_DATASETS, Protocol, apply_to_config, apply_to_recipe,
                                   protocol as protocol_named, protocol_detail)
from nlseg.analysis import model_cost
from nlseg.checkpoint import load_model
from nlseg.data import qtips as qt
from nlseg.data.bdd100k import BDD100K_CLASSES_20, with_unknown_class
from nlseg.data.registry import DATA_SEED, Request, dataset_info, load_split
from nlseg.data.split import Split
from nlseg.errors import InputError
from nlseg.nn.baselines import BASELINES
from nlseg.nn.config import ModelConfig, build_model
from nlseg.ops.omega import EULER_GAMMA
from nlseg.train import rundir
from nlseg.runtime.device import cpu_model, resolve_device
from nlseg.train.distributed import Context
from nlseg.train.loop import RunSpec, evaluate, fit
from nlseg.train.recipe import RECIPES, Recipe

PERCENT_METRICS = ("accuracy", "pixel_accuracy", "miou", "soft_iou", "soft_iou_image")


@dataclass
class Cell:
    """One (network, column): per-seed final metrics, their median, parameters, per-epoch history."""

    params: float  # millions
    architecture: str = ""
    per_seed: dict[int, dict[str, float | None]] = field(default_factory=dict)
    history: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    seconds: float = 0.0
    run_dirs: list[str] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)
    specs: dict[int, dict[str, Any]] = field(default_factory=dict)  # per seed: portable_spec of its run
    reused: dict[int, str] = field(default_factory=dict)  # per seed read back: "run directory" or "report JSON"

    def median(self, metric: str) -> float | None:
        values = [v[metric] for v in self.per_seed.values() if v.get(metric) is not None]
        return float(np.median(values)) if values else None


@dataclass
class Outcome:
    """What :func:`run_experiment` measured: cells by row and column key, and how."""

    experiment: Experiment
    setting_name: str
    setting: Setting
    rows: tuple[str, ...]
    cells: dict[str, dict[str, Cell]]
    machine: dict[str, Any]
    seconds: float
    protocol: Protocol | None = None  # None for the cost tables, which no protocol changes


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU model, cores, threads, torch version and the device the runs used."""
    info: dict[str, Any] = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                            "torch": torch.__version__, "device": str(device), "platform": platform.platform()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def network_config(network: Network, dataset: str, setting: Setting, protocol: Protocol | None = None) -> ModelConfig:
    """The ModelConfig of ``network`` for ``dataset``'s preset, scaled down by ``setting.shrink``,
    under ``protocol`` (None: nlseg's defaults, the text's reading)."""
    preset = dataset_info(dataset).preset
    blocks, channels = network.blocks, network.channels
    if setting.shrink is not None and not network.is_baseline:
        base = ModelConfig.from_preset(preset, blocks=blocks, channels=channels)
        block_div, channel_div = setting.shrink
        blocks = tuple(max(1, math.ceil(b / block_div)) for b in base.blocks)
        channels = tuple(max(2, 2 * round(c / channel_div / 2)) for c in base.channels)
    pool = setting.pool if setting.pool is not None and network.nonlocal_op else network.pool
    config = ModelConfig.from_preset(preset, arch=network.model, blocks=blocks, channels=channels,
                                     nonlocal_kernel=network.nonlocal_op, s=network.s, stages=network.stages, pool=pool)
    return config if protocol is None else apply_to_config(protocol, dataset, config)


def run_name(config: ModelConfig) -> str:
    """A folder name that identifies the architecture: equal names, equal networks."""
    if config.arch in BASELINES:
        return config.arch
    parts = [config.arch, "-".join(map(str, config.blocks)), "-".join(map(str, config.channels)), f"h{config.h:g}"]
    if config.nonlocal_kernel is not None:
        parts += [config.nonlocal_kernel, f"s{config.s:g}", f"st{config.stages}", f"p{config.pool}"]
    if config.nonlocal_kernel == "log" and config.log_gamma != EULER_GAMMA:
        parts.append(f"g{config.log_gamma:.6g}")
    return "_".join(parts)


def architecture(config: ModelConfig) -> str:
    """What was built, for the tables: 'resnet44', or '2-2-2 / 16-32-56, dot pool 8'."""
    if config.arch in BASELINES:
        return config.arch
    text = f"{'-'.join(map(str, config.blocks))} / {'-'.join(map(str, config.channels))}"
    if config.nonlocal_kernel is not None:
        text += f", {config.nonlocal_kernel} pool {config.pool}"
    return text


def recipe_for(dataset: str, setting: Setting, protocol: Protocol | None = None, arch: str = "hamiltonian") -> Recipe:
    """The dataset's thesis recipe with the setting's epochs, batch size and rate, under ``protocol``."""
    changes = {k: v for k, v in (("epochs", setting.epochs), ("batch_size", setting.batch_size), ("lr", setting.lr))
               if v is not None}
    recipe = replace(RECIPES[dataset], **changes)
    return recipe if protocol is None else apply_to_recipe(protocol, dataset, arch, recipe)


def load_data(dataset: str, request: Request, protocol: Protocol) -> Split:
    """A split of ``dataset`` under ``protocol``: Q-tips in its style, BDD100K with or without the unknown class."""
    if dataset in QTIPS_DATASETS:
        return qt.qtips(request.split, DATA_SEED, segmentation=dataset == "qtips-seg", style=protocol.qtips_style)
    split = load_split(dataset, request)
    if dataset == "bdd100k" and protocol.bdd100k_unknown_class:
        split = with_unknown_class(split)
    return split


def class_names(dataset: str, protocol: Protocol) -> tuple[str, ...]:
    """The class names the checkpoints carry: BDD100K's 19, plus 'unknown' under the 20-class protocol."""
    if dataset == "bdd100k" and protocol.bdd100k_unknown_class:
        return BDD100K_CLASSES_20
    return dataset_info(dataset).class_names


def portable_spec(spec: RunSpec) -> dict[str, Any]:
    """A run's settings as the report JSON records them: the data folder as 'DIR', no machine path."""
    out = spec.to_dict()
    if out["data_dir"] is not None:
        out["data_dir"] = "DIR"
    return out


def previous_runs(path: Path | None, protocol: Protocol) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Finished runs recorded in a report JSON written under ``protocol`` as it is now (none otherwise):
    (row, column key, seed) -> spec, per-seed result, history."""
    if path is None or not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable report JSON ({exc}); move it away to start afresh") from None
    # JSON has no tuples: compare the recorded detail with the current one as JSON would hold it
    if doc.get("protocol_detail") != json.loads(json.dumps(protocol_detail(protocol))):
        return {}
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    for row, columns in doc.get("cells", {}).items():
        for key, cell in columns.items():
            for seed, spec in cell.get("specs", {}).items():
                if seed in cell.get("history", {}) and seed in cell.get("per_seed", {}):
                    out[(row, key, int(seed))] = {"spec": spec, "final": cell["per_seed"][seed],
                                                  "history": cell["history"][seed]}
    return out


def _same_spec(recorded: dict[str, Any], spec: RunSpec) -> bool:
    """Whether a recorded spec is ``spec`` (settings added since compare as their defaults)."""
    try:
        normalised = portable_spec(RunSpec.from_dict(recorded))
    except (TypeError, ValueError, KeyError):
        return False
    return normalised == portable_spec(spec)


def _first(split: Split, limit: int | None) -> Split:
    return split if limit is None or limit >= len(split) else split.subset(torch.arange(limit))


def _data_dir(dataset: str, data_dirs: dict[str, Path]) -> Path | None:
    if dataset_info(dataset).data_dir == "none":
        return None
    path = data_dirs.get(dataset, data_dirs.get("*"))
    if path is None:
        raise InputError(f"--data-dir: {dataset} reads a local copy of the dataset; pass --data-dir {dataset}=FOLDER "
                         "(or one FOLDER holding every dataset)")
    return path


def _count_params(config: ModelConfig) -> float:
    return sum(p.numel() for p in build_model(config).parameters()) / 1e6


def run_cost(experiment: Experiment, setting_name: str, rows: tuple[str, ...], device: torch.device,
             log: Callable[[str], None]) -> Outcome:
    """Tables 6.1, 6.2: multiply-adds counted like the thesis (pairwise products as if N×M were formed)."""
    start = time.perf_counter()
    setting = experiment.settings[setting_name]
    cells: dict[str, dict[str, Cell]] = {}
    for row in rows:
        for column in experiment.columns:
            config = network_config(NETWORKS[row], column.dataset, setting)
            model = build_model(config)
            cost = model_cost(model, (1, config.in_channels, *config.image_size))
            cell = Cell(params=cost.params / 1e6, architecture=architecture(config), per_seed={0: {"macs": cost.macs / 1e6}},
                        extra={"macs_executed": cost.macs_executed / 1e6})
            cells.setdefault(row, {})[column.key] = cell
            log(f"{row} on {column.label}: {cost.macs / 1e6:.1f}M multiply-adds (executed {cost.macs_executed / 1e6:.1f}M)")
    return Outcome(experiment, setting_name, setting, rows, cells, machine_info(device), time.perf_counter() - start)


def run_training(experiment: Experiment, setting_name: str, rows: tuple[str, ...], seeds: tuple[int, ...],
                 out: Path, data_dirs: dict[str, Path], device: torch.device, workers: int,
                 log: Callable[[str], None], setting: Setting | None = None, protocol: Protocol | None = None,
                 previous: Path | None = None, on_run: Callable[["Outcome"], None] | None = None) -> Outcome:
    """Train (or resume, or just read) the runs of ``rows`` × ``seeds``, seed 0 of every network first.

    ``previous``: a report JSON whose finished runs are taken instead of training them again; its
    other runs of this experiment (other networks or seeds) stay in the outcome, so a report
    rewritten from it loses nothing. ``on_run``: called with the outcome so far after each run
    trained here (to rewrite the report).
    """
    start = time.perf_counter()
    setting = setting or experiment.settings[setting_name]
    protocol = protocol or protocol_named(DEFAULT_PROTOCOL)
    ctx = Context(0, 1, device)
    recorded = previous_runs(previous, protocol)
    cells: dict[str, dict[str, Cell]] = {}
    loaded: dict[str, tuple[Split, Split, Path | None]] = {}

    def outcome() -> Outcome:
        """The runs done so far: the rows with a result in every column, in the experiment's order."""
        done = tuple(r for r in experiment.rows if r in cells and len(cells[r]) == len(experiment.columns)
                     and all(c.history for c in cells[r].values()))
        return Outcome(experiment, setting_name, setting, done, {r: cells[r] for r in done}, machine_info(device),
                       time.perf_counter() - start, protocol)

    def plan(row: str, column: Column, seed: int) -> tuple[ModelConfig, Recipe, RunSpec, Path, Cell]:
        """Config, recipe, spec and run directory of one run, and the cell it belongs to."""
        config = network_config(NETWORKS[row], column.dataset, setting, protocol)
        recipe = recipe_for(column.dataset, setting, protocol, config.arch)
        data_dir = loaded[column.dataset][2]
        spec = RunSpec(column.dataset, None if data_dir is None else str(data_dir.resolve()),
                       config.image_size, config, recipe, seed, column.train_fraction)
        run_dir = out / setting_name / protocol.name / column.key / run_name(config) / f"seed-{seed}"
        if column.key not in cells.get(row, {}):
            cells.setdefault(row, {})[column.key] = Cell(params=_count_params(config), architecture=architecture(config))
        return config, recipe, spec, run_dir, cells[row][column.key]

    def record(cell: Cell, seed: int, spec: RunSpec, run_dir: Path, final: dict, history: list[dict]) -> None:
        cell.per_seed[seed] = final
        cell.history[seed] = history
        cell.specs[seed] = portable_spec(spec)
        cell.seconds += sum(r["seconds"] for r in history)
        cell.run_dirs.append(str(run_dir.relative_to(out)))  # under --out: no machine path in reports

    for column in experiment.columns:
        if column.dataset not in loaded:
            data_dir = _data_dir(column.dataset, data_dirs)
            preset_size = ModelConfig.from_preset(dataset_info(column.dataset).preset).image_size
            request = Request("train", data_dir, preset_size, workers)
            log(f"loading {column.dataset} ({'generated' if data_dir is None else data_dir}) ...")
            train = _first(load_data(column.dataset, request, protocol), setting.train_limit)
            val = _first(load_data(column.dataset, replace(request, split="val"), protocol), setting.val_limit)
            loaded[column.dataset] = (train, val, data_dir)
    columns = {c.key: c for c in experiment.columns}
    for (row, key, seed), earlier in sorted(recorded.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
        if row in rows and seed in seeds or row not in experiment.rows or key not in columns:
            continue  # runs of this call are looked up below, in order
        _, _, spec, run_dir, cell = plan(row, columns[key], seed)
        if _same_spec(earlier["spec"], spec):
            record(cell, seed, spec, run_dir, earlier["final"], earlier["history"])
            cell.reused[seed] = "report JSON"
    for seed in seeds:
        for column in experiment.columns:
            train, val, _ = loaded[column.dataset]
            for row in rows:
                _, recipe, spec, run_dir, cell = plan(row, column, seed)
                tag = f"[{experiment.name} {row} {column.label} seed {seed}]"
                earlier = recorded.get((row, column.key, seed))
                if not (run_dir / rundir.LAST).exists() and earlier is not None and _same_spec(earlier["spec"], spec):
                    log(f"{tag} finished before: taken from {previous.name}")  # type: ignore[union-attr]
                    record(cell, seed, spec, run_dir, earlier["final"], earlier["history"])
                    cell.reused[seed] = "report JSON"
                    continue
                log(f"{tag} {run_dir}")
                done_before = _finished_epochs(run_dir) >= recipe.epochs
                history = fit(spec, train, val, run_dir, ctx, resume=True, class_names=class_names(column.dataset, protocol),
                              log=lambda line, tag=tag: log(f"{tag} {line}"))
                final = {m: history[-1].get(f"val_{m}") for m in experiment.metrics}
                if column.noise_sigma > 0:
                    model, _, payload = load_model(run_dir / rundir.LAST)
                    noisy = evaluate(model.to(device), val, payload["input_mean"], recipe.batch_size, ctx,
                                     noise_sigma=column.noise_sigma)
                    final = {m: noisy.get(m) for m in experiment.metrics}
                    log(f"{tag} with test noise σ = {column.noise_sigma}: " +
                        ", ".join(f"{m} {v:.4f}" for m, v in final.items() if v is not None))
                record(cell, seed, spec, run_dir, final, history)
                if done_before:
                    cell.reused[seed] = "run directory"
                elif on_run is not None:
                    on_run(outcome())
    return outcome()


def _finished_epochs(run_dir: Path) -> int:
    """Epochs recorded in a run directory's metrics (0 when it has none)."""
    metrics = run_dir / rundir.METRICS
    return sum(1 for line in metrics.read_text().splitlines() if line.strip()) if metrics.exists() else 0


def select(experiment: Experiment, networks: str | None) -> tuple[str, ...]:
    """The rows to run: all, or the comma-separated subset ``networks``; InputError names --networks."""
    if networks is None:
        return experiment.rows
    chosen = tuple(n.strip() for n in networks.split(",") if n.strip())
    unknown = [n for n in chosen if n not in experiment.rows]
    if unknown or not chosen:
        raise InputError(f"--networks: {', '.join(unknown) or repr(networks)} not in {experiment.name}; "
                         f"expected some of {', '.join(experiment.rows)}")
    return tuple(n for n in experiment.rows if n in chosen)


def run_experiment(name: str, setting_name: str = "reduced", *, out: Path, networks: str | None = None,
                   seeds: tuple[int, ...] | None = None, data_dirs: dict[str, Path] | None = None,
                   device: str = "auto", workers: int = 1, log: Callable[[str], None] = print,
                   setting: Setting | None = None, protocol: str = DEFAULT_PROTOCOL, previous: Path | None = None,
                   on_run: Callable[[Outcome], None] | None = None) -> Outcome:
    """Run experiment ``name`` in ``setting_name`` (or an explicit ``setting``, e.g. for tests) under
    ``protocol``; ``previous`` and ``on_run`` as in :func:`run_training`."""
    if name not in EXPERIMENTS:
        raise InputError(f"EXPERIMENT: unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    experiment = EXPERIMENTS[name]
    if setting_name not in experiment.settings:
        raise InputError(f"--setting: expected one of {', '.join(experiment.settings)}, got {setting_name!r}")
    rows = select(experiment, networks)
    try:
        chosen_protocol = protocol_named(protocol)
    except ValueError as exc:
        raise InputError(str(exc), param="protocol") from None
    dev = resolve_device(device)
    if experiment.kind == "cost":
        return run_cost(experiment, setting_name, rows, dev, log)
    chosen = setting or experiment.settings[setting_name]
    return run_training(experiment, setting_name, rows, seeds or chosen.seeds, out, data_dirs or {}, dev, workers,
                        log, chosen, chosen_protocol, previous, on_run)


def percent(metric: str, value: float | None) -> float | None:
    """Fractions become percentages (as the thesis prints them); multiply-adds stay in millions."""
    if value is None:
        return None
    return 100.0 * value if metric in PERCENT_METRICS else value


