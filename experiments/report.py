"""Tables next to the thesis's numbers: Markdown (printed and written), a PNG and a JSON of every number."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from experiments.definitions import NETWORKS, NONLOCAL_ROWS
from experiments.protocols import DIFFERENCES, QTIPS_DATASETS, protocol_detail
from experiments.runner import Outcome, percent
from nlseg.io import atomic_path

METRIC_NAMES = {"accuracy": "acc. (%)", "pixel_accuracy": "pixel acc. (%)", "miou": "mIoU (%)",
                "soft_iou": "soft IoU, split sums (%)", "soft_iou_image": "soft IoU per image (%)",
                "macs": "multiply-adds (M)"}
CURVE_EPOCHS = (1, 5, 10, 20, 30)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pair(ours: float | None, thesis: float | None, digits: int = 2) -> str:
    return f"{_fmt(ours, digits)} / {_fmt(thesis, digits)}"


def plot_label(row: str) -> str:
    """A network's label for matplotlib: 𝓛 is not in its default font, mathtext draws it."""
    return NETWORKS[row].label.replace("𝓛", r"$\mathcal{L}$")


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _seeds_of(outcome: Outcome) -> list[int]:
    return sorted({s for cols in outcome.cells.values() for c in cols.values() for s in c.per_seed})


def _header(outcome: Outcome, command: str) -> list[str]:
    e, m = outcome.experiment, outcome.machine
    where = m.get("gpu") or f"{m['cpu']} ({m['cpu_count']} cores, {m['torch_threads']} torch thread(s))"
    epochs = sorted({len(h) for cols in outcome.cells.values() for c in cols.values() for h in c.history.values()})
    lines = [f"# {e.reference}: {e.title}", "",
             f"- Setting: **{outcome.setting_name}** — {outcome.setting.note}"]
    if outcome.protocol is not None:
        lines.append(f"- Protocol: **{outcome.protocol.name}** — {outcome.protocol.note} (docs/design.md §6; "
                     "the table below)")
    lines += [
             f"- Networks: {', '.join(outcome.rows)}; seeds: {', '.join(map(str, _seeds_of(outcome)))}"
             + (f"; epochs: {', '.join(map(str, epochs))}" if epochs else ""),
             f"- Machine: {where}, device {m['device']}, torch {m['torch']}",
             f"- Command: `{command}`",
             f"- Written {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; wall time of this call "
             f"{outcome.seconds / 60:.1f} min (runs that existed were read, not retrained)"]
    reused = sorted({how for cols in outcome.cells.values() for c in cols.values() for how in c.reused.values()})
    if reused:
        lines.append(f"- Runs finished before were read back (from the {' and the '.join(reused)}), not retrained")
    if e.claim:
        lines.append(f"- Thesis claim: {e.claim}")
    return lines + [""]


def protocol_lines(outcome: Outcome) -> list[str]:
    """The points on which the protocols differ that concern this experiment's datasets, and what ran."""
    if outcome.protocol is None:
        return []
    datasets = set(outcome.experiment.datasets)
    scoped = {"Q-tips": datasets & set(QTIPS_DATASETS), "BDD100K": datasets & {"bdd100k"}}
    rows = [[d.point, d.thesis_text, d.authors, d.source] for d in DIFFERENCES
            if all(not d.point.startswith(prefix) or present for prefix, present in scoped.items())]
    header = ["point", "thesis-text", "authors", "the equation or code fact"]
    return [f"Protocol: this run is **{outcome.protocol.name}**.", ""] + _markdown_table(header, rows) + [""]


def _architectures(outcome: Outcome, row: str) -> str:
    """The row's architecture, or per column where the columns differ (e.g. the Nonlocal pool)."""
    by_column = {c.label: outcome.cells[row][c.key].architecture for c in outcome.experiment.columns
                 if c.key in outcome.cells[row]}
    if len(set(by_column.values())) == 1:
        return next(iter(by_column.values()))
    return "; ".join(f"{label}: {arch}" for label, arch in by_column.items())


def table_lines(outcome: Outcome) -> list[str]:
    """Rows × columns, each cell 'ours / thesis' for the parameters and every metric."""
    e = outcome.experiment
    header = ["Network", "architecture"]
    for column in e.columns:
        header.append(f"{column.label} params (M)")
        header += [f"{column.label} {METRIC_NAMES[m]}" for m in e.metrics]
    rows = []
    for row in outcome.rows:
        line = [NETWORKS[row].label, _architectures(outcome, row)]
        for column in e.columns:
            cell = outcome.cells[row].get(column.key)
            thesis = e.thesis.get(row, {}).get(column.key, {})
            line.append(_pair(None if cell is None else cell.params, thesis.get("params")))
            digits = 1 if e.kind == "cost" else 2
            line += [_pair(None if cell is None else percent(m, cell.median(m)), thesis.get(m), digits)
                     for m in e.metrics]
        rows.append(line)
    note = ("Cells: ours / thesis. Ours: "
            + ("multiply-adds counted like the thesis (pairwise products as if the N×M matrix were formed)."
               if e.kind == "cost" else "median over seeds of the final-epoch test (validation) metric."))
    lines = [note, ""] + _markdown_table(header, rows)
    if e.kind == "cost":
        executed = [[NETWORKS[r].label] + [_fmt(outcome.cells[r][c.key].extra.get("macs_executed"), 1)
                                           for c in e.columns] for r in outcome.rows]
        lines += ["", "Multiply-adds nlseg actually executes (M; 𝓛 in its associative form, docs/design.md §2.3):", ""]
        lines += _markdown_table(["Network"] + [c.label for c in e.columns], executed)
    return lines


def median_curve(histories: list[list[dict[str, Any]]], key: str) -> list[float | None]:
    """Per-epoch median over seeds' histories of ``key`` (None where no seed has a value)."""
    epochs = max(len(h) for h in histories)
    out: list[float | None] = []
    for i in range(epochs):
        values = [h[i][key] for h in histories if i < len(h) and h[i].get(key) is not None]
        out.append(float(np.median(values)) if values else None)
    return out


def curve_lines(outcome: Outcome) -> list[str]:
    """Summary at chosen epochs, the claim checks, and the full per-epoch tables (train and validation)."""
    e = outcome.experiment
    column = e.columns[0]
    metric = e.metrics[0]
    name = METRIC_NAMES[metric]
    cells = {row: outcome.cells[row][column.key] for row in outcome.rows}
    curves = {row: {split: [percent(metric, v) for v in median_curve(list(c.history.values()), f"{split}_{metric}")]
                    for split in ("train", "val")} for row, c in cells.items()}
    n = max(len(c["train"]) for c in curves.values())
    marks = [ep for ep in CURVE_EPOCHS if ep <= n] + ([n] if n not in CURVE_EPOCHS else [])
    header = ["Network", "architecture", "params (M) ours / thesis", "seeds"] + [f"train {name} ep {ep}" for ep in marks] + [
        f"val {name} ep {n}", f"best val {name} (epoch)", "train min/run"]
    rows = []
    for row, cell in cells.items():
        tr, va = curves[row]["train"], curves[row]["val"]
        best = max((v, i + 1) for i, v in enumerate(va) if v is not None) if any(v is not None for v in va) else None
        thesis = e.thesis.get(row, {}).get(column.key, {})
        rows.append([NETWORKS[row].label, cell.architecture, _pair(cell.params, thesis.get("params")),
                     str(len(cell.per_seed))]
                    + [_fmt(tr[ep - 1]) if ep <= len(tr) else "—" for ep in marks]
                    + [_fmt(va[-1]), "—" if best is None else f"{best[0]:.2f} ({best[1]})",
                       f"{cell.seconds / 60 / max(len(cell.per_seed), 1):.1f}"])
    lines = [f"Median over seeds, per epoch, of the training {name} (as in the thesis's figure) and the "
             f"validation {name} on the {column.label} validation split.", ""]
    lines += _markdown_table(header, rows) + [""] + claim_lines(curves, name) + [""] + per_seed_lines(outcome) + [""]
    for split, title in (("train", "Training"), ("val", "Validation")):
        lines += [f"{title} {name} per epoch (median over seeds):", ""]
        lines += _markdown_table(["epoch"] + [NETWORKS[r].label for r in cells],
                                 [[str(i + 1)] + [_fmt(curves[r][split][i]) if i < len(curves[r][split]) else "—"
                                                  for r in cells] for i in range(n)])
        lines.append("")
    return lines


def per_seed_lines(outcome: Outcome) -> list[str]:
    """Each seed's training metric at epochs 10, 20 and the last, and its final validation metric."""
    e = outcome.experiment
    column, metric = e.columns[0], e.metrics[0]
    name = METRIC_NAMES[metric]
    rows = []
    for row in outcome.rows:
        cell = outcome.cells[row][column.key]
        for seed in sorted(cell.history):
            h = cell.history[seed]
            train = [percent(metric, r.get(f"train_{metric}")) for r in h]
            marks = [_fmt(train[ep - 1]) if ep <= len(train) else "—" for ep in (10, 20)]
            rows.append([NETWORKS[row].label, str(seed), *marks, _fmt(train[-1]),
                         _fmt(percent(metric, h[-1].get(f"val_{metric}"))), str(len(h))])
    header = ["Network", "seed", f"train {name} ep 10", f"train {name} ep 20", f"train {name} last",
              f"val {name} last", "epochs"]
    return [f"Per seed ({name}):", ""] + _markdown_table(header, rows)


def claim_lines(curves: dict[str, dict[str, list[float | None]]], name: str) -> list[str]:
    """Each Nonlocal network against the local ones: final and mean-over-epochs training metric, final validation."""
    baselines = [b for b in ("hamiltonian", "resnet44") if b in curves]
    nonlocal_rows = [r for r in NONLOCAL_ROWS if r in curves]
    if not baselines or not nonlocal_rows:
        return []

    def stats(row: str) -> tuple[float, float, float]:
        tr = [v for v in curves[row]["train"] if v is not None]
        va = [v for v in curves[row]["val"] if v is not None]
        return tr[-1], float(np.mean(tr)), va[-1]

    header = ["Nonlocal network", *[f"Δ vs {NETWORKS[b].label}: final train / mean train / final val" for b in baselines]]
    rows = []
    for row in nonlocal_rows:
        mine = stats(row)
        rows.append([NETWORKS[row].label] + [" / ".join(f"{a - b:+.2f}" for a, b in zip(mine, stats(b)))
                                             for b in baselines])
    return [f"Claim check (percentage points of {name}; positive: the Nonlocal network is ahead; 'mean train' is the "
            "mean over epochs of the training curve, i.e. how fast it climbs):", ""] + _markdown_table(header, rows)


def plot(outcome: Outcome, path: Path) -> None:
    """Curves: training and validation metric per epoch. Tables: ours against the thesis, per column."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    e = outcome.experiment
    metric = e.metrics[0]
    if e.kind == "curves":
        column = e.columns[0]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for row in outcome.rows:
            cell = outcome.cells[row][column.key]
            for ax, split in zip(axes, ("train", "val")):
                histories = list(cell.history.values())
                median = [percent(metric, v) for v in median_curve(histories, f"{split}_{metric}")]
                epochs = np.arange(1, len(median) + 1)
                line, = ax.plot(epochs, [np.nan if v is None else v for v in median], marker=".",
                                label=f"{plot_label(row)}: {cell.architecture}, {cell.params:.2f}M, "
                                      f"{len(cell.history)} seed(s)")
                if len(cell.history) > 1:
                    per = np.array([[np.nan if r.get(f"{split}_{metric}") is None else percent(metric, r[f"{split}_{metric}"])
                                     for r in h] for h in cell.history.values() if len(h) == len(median)])
                    if len(per) > 1:
                        ax.fill_between(epochs, np.nanmin(per, 0), np.nanmax(per, 0), alpha=0.15, color=line.get_color())
        for ax, split in zip(axes, ("training", "validation")):
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"{split} {METRIC_NAMES[metric]}")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        seeds = _seeds_of(outcome)
        protocol = "" if outcome.protocol is None else f", {outcome.protocol.name} protocol"
        fig.suptitle(f"{e.reference}: {column.label}, {outcome.setting_name} setting{protocol}, median over seeds"
                     + (" (band: min–max)" if len(seeds) > 1 else ""))
    else:
        fig, axes = plt.subplots(1, len(e.columns), figsize=(max(5.0, 3.2 * len(e.columns)), 4.5), squeeze=False)
        x = np.arange(len(outcome.rows))
        for ax, column in zip(axes[0], e.columns):
            ours = [percent(metric, outcome.cells[r][column.key].median(metric)) for r in outcome.rows]
            theirs = [e.thesis.get(r, {}).get(column.key, {}).get(metric) for r in outcome.rows]
            ax.bar(x - 0.2, [np.nan if v is None else v for v in ours], 0.4, label="nlseg")
            ax.bar(x + 0.2, [np.nan if v is None else v for v in theirs], 0.4, label="thesis", hatch="//", alpha=0.7)
            ax.set_xticks(x, [plot_label(r) for r in outcome.rows], rotation=60, ha="right", fontsize=7)
            ax.set_title(column.label, fontsize=9)
            ax.set_ylabel(METRIC_NAMES[metric])
        axes[0][0].legend(fontsize=8)
        fig.suptitle(f"{e.reference} ({outcome.setting_name} setting)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def to_json(outcome: Outcome, command: str) -> dict[str, Any]:
    """Every number of the outcome, per seed, with the thesis's and the per-epoch histories."""
    e = outcome.experiment
    cells: dict[str, Any] = {}
    for row, columns in outcome.cells.items():
        for key, cell in columns.items():
            cells.setdefault(row, {})[key] = {
                "params_m": cell.params, "architecture": cell.architecture, "median": {m: cell.median(m) for m in e.metrics},
                "per_seed": {str(s): v for s, v in cell.per_seed.items()}, "extra": cell.extra,
                "thesis": e.thesis.get(row, {}).get(key, {}), "run_dirs": cell.run_dirs, "seconds": cell.seconds,
                "history": {str(s): h for s, h in cell.history.items()},
                "specs": {str(s): spec for s, spec in cell.specs.items()},
                "reused": {str(s): how for s, how in cell.reused.items()},
            }
    return {"experiment": e.name, "reference": e.reference, "title": e.title, "kind": e.kind,
            "setting": outcome.setting_name, "setting_detail": asdict(outcome.setting), "rows": list(outcome.rows),
            "columns": [asdict(c) for c in e.columns], "metrics": list(e.metrics), "machine": outcome.machine,
            "command": command, "seconds": outcome.seconds,
            "protocol": None if outcome.protocol is None else outcome.protocol.name,
            "protocol_detail": None if outcome.protocol is None else protocol_detail(outcome.protocol),
            "cells": cells}


def report_stem(experiment: str, setting: str, protocol: str | None) -> str:
    """``NAME-SETTING`` for the cost tables (no protocol changes them), else ``NAME-SETTING-PROTOCOL``."""
    return f"{experiment}-{setting}" if protocol is None else f"{experiment}-{setting}-{protocol}"


def write_report(outcome: Outcome, results: Path, command: str) -> tuple[str, dict[str, Path]]:
    """Write ``STEM.md``, ``.png`` and ``.json`` (:func:`report_stem`) into ``results``; returns the Markdown and
    the paths."""
    stem = report_stem(outcome.experiment.name, outcome.setting_name,
                       None if outcome.protocol is None else outcome.protocol.name)
    paths = {"md": results / f"{stem}.md", "png": results / f"{stem}.png", "json": results / f"{stem}.json"}
    body = protocol_lines(outcome) + (curve_lines(outcome) if outcome.experiment.kind == "curves"
                                      else table_lines(outcome))
    text = "\n".join(_header(outcome, command) + body + ["", f"![{stem}]({paths['png'].name})", ""])
    results.mkdir(parents=True, exist_ok=True)
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(text)
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(to_json(outcome, command), indent=1) + "\n")
    plot(outcome, paths["png"])
    return text, paths
