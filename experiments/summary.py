"""Every figure docs/results.md quotes for a curves experiment (Q-tips), computed from its report JSON.

``python -m experiments report JSON`` prints them: the medians over seeds, each seed's numbers, how
ResNet-44 stagnates, and the verdict per Nonlocal network against ResNet-44 and against the
Hamiltonian network without a Nonlocal Block.

"Climbs faster" is decided as docs/results.md decides it: the mean over the epochs of a seed's
training-accuracy curve (the area under it, i.e. how fast it climbs) is compared seed by seed (the
networks of one seed see the same images and noise). A network climbs *faster* when its mean is
higher on every seed, *slower* when lower on every seed, and is *level* otherwise; with fewer than
``MIN_SEEDS`` seeds in common it is *undecided* (one seed says nothing about the spread between seeds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.definitions import NETWORKS, NONLOCAL_ROWS, Column
from experiments.report import METRIC_NAMES, median_curve, plot_label
from experiments.runner import percent
from nlseg.errors import InputError
from nlseg.io import atomic_path

EARLY = 10  # "the first epochs": epochs 1–10
BAND = (15, 30)  # the epochs of ResNet-44's stagnation band
LAST = 5  # validation is averaged over the last five epochs (it fluctuates)
MIN_SEEDS = 2  # a verdict needs at least this many seeds in common
MARKS = (10, 20)  # training accuracy quoted at these epochs and the last


SHORT = {"hamiltonian": "H", "diffusion": "𝓛", "frac": "(−Δ)^1/2", "invfrac": "(−Δ)^−1/2", "log": "log"}


@dataclass(frozen=True)
class Run:
    """One seed of one network: training and validation accuracy per epoch, in percent."""

    train: list[float]
    val: list[float]
    minutes: float  # wall time of the run's epochs

    @property
    def mean_train(self) -> float:
        return float(np.mean(self.train))

    @property
    def mean_val_last(self) -> float:
        return float(np.mean(self.val[-LAST:]))


@dataclass(frozen=True)
class Network:
    """A row of the report: its label, parameters (M) and runs per seed."""

    row: str
    label: str
    params: float
    runs: dict[int, Run]
    histories: dict[int, list[dict[str, Any]]]  # as the JSON holds them, for the median curves
    metric: str


def load(path: Path) -> dict[str, Network]:
    """The networks of a curves report JSON, in its row order (only the first column and metric)."""
    try:
        doc = json.loads(path.read_text())
        if doc["kind"] != "curves":
            raise InputError(f"{path}: a '{doc['kind']}' report, not a curves one (Q-tips)")
        metric, key = doc["metrics"][0], Column(**doc["columns"][0]).key
        out: dict[str, Network] = {}
        for row in doc["rows"]:
            cell = doc["cells"][row][key]
            runs = {int(s): Run([100 * e[f"train_{metric}"] for e in h], [100 * e[f"val_{metric}"] for e in h],
                                sum(e.get("seconds", 0.0) for e in h) / 60) for s, h in cell["history"].items() if h}
            label = SHORT.get(row, NETWORKS[row].label if row in NETWORKS else row)
            histories = {int(s): h for s, h in cell["history"].items() if h}
            out[row] = Network(row, label, float(cell["params_m"]), dict(sorted(runs.items())), histories, metric)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable report JSON ({exc})") from None
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a report JSON of nlseg's experiments (missing {exc})") from None
    return out


def _median(values: list[float]) -> float:
    return float(np.median(values))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _at(run: Run, epoch: int) -> str:
    return f"{run.train[epoch - 1]:.1f}" if epoch <= len(run.train) else "—"


def median_lines(nets: dict[str, Network]) -> list[str]:
    """Per network, the median over seeds of each seed's value (as docs/results.md's tables)."""
    n = max(len(r.train) for net in nets.values() for r in net.runs.values())
    header = ["network", "params", "seeds", *[f"train acc. ep {e}" for e in (*MARKS, n)], f"mean train acc., epochs 1–{n}",
              f"val acc. ep {n}", f"mean val, last {LAST} epochs"]
    rows = []
    for net in nets.values():
        runs = list(net.runs.values())
        at = [_median([r.train[e - 1] for r in runs if e <= len(r.train)]) for e in (*MARKS, n)]
        rows.append([net.label, f"{net.params:.2f}M", str(len(runs)), *[f"{v:.1f}" for v in at],
                     f"{_median([r.mean_train for r in runs]):.1f}", f"{_median([r.val[-1] for r in runs]):.1f}",
                     f"{_median([r.mean_val_last for r in runs]):.1f}"])
    seeds = sorted({s for net in nets.values() for s in net.runs})
    return [f"Medians over seeds {', '.join(map(str, seeds))} (the median of each seed's value; `seeds`: how many "
            "of them the network ran):", ""] + _table(header, rows)


def epochs_ahead(a: Run, b: Run, first: int | None = None) -> int:
    """Epochs (of the first ``first``, or all) in which ``a``'s training accuracy is strictly above ``b``'s."""
    pairs = list(zip(a.train, b.train))[:first]
    return sum(x > y for x, y in pairs)


def _band(values: list[float]) -> str:
    return f"{min(values):.0f}–{max(values):.0f}" if values else "—"


def per_seed_lines(nets: dict[str, Network]) -> list[str]:
    """Each seed: last training accuracy, mean training accuracy, the epoch 15–30 band, the mean and range
    of the validation over the last five epochs and the minutes of every network, and the epochs each
    Nonlocal network is ahead of the Hamiltonian network."""
    names = " / ".join(net.label for net in nets.values())
    ham = nets.get("hamiltonian")
    nonlocal_rows = [r for r in NONLOCAL_ROWS if r in nets and ham is not None]
    lo, hi = BAND
    header = ["seed", f"train acc. last: {names}", f"mean train acc.: {names}",
              f"train acc., epochs {lo}–{hi} (min–max): {names}", f"mean val, last {LAST}: {names}",
              f"val, last {LAST} (min–max): {names}", f"minutes per run: {names}"]
    header += [f"epochs with {nets[r].label} ahead of H (of all; of the first {EARLY})" for r in nonlocal_rows]
    rows = []
    for seed in sorted({s for net in nets.values() for s in net.runs}):
        runs = [net.runs.get(seed) for net in nets.values()]

        def each(f: Any) -> str:
            return " / ".join("—" if r is None else f(r) for r in runs)

        line = [str(seed), each(lambda r: f"{r.train[-1]:.1f}"), each(lambda r: f"{r.mean_train:.1f}"),
                each(lambda r: _band(r.train[lo - 1:hi])),
                each(lambda r: f"{r.mean_val_last:.1f}"),
                each(lambda r: _band(r.val[-LAST:])), each(lambda r: f"{r.minutes:.0f}")]
        for row in nonlocal_rows:
            a, b = nets[row].runs.get(seed), ham.runs.get(seed)  # type: ignore[union-attr]
            line.append("—" if a is None or b is None else
                        f"{epochs_ahead(a, b)} of {len(a.train)}; {epochs_ahead(a, b, EARLY)}")
        rows.append(line)
    return ["Per seed (percentages; H: the Hamiltonian network, log: (−Δ)^−1):", ""] + _table(header, rows)


def _epoch_ranges(epochs: list[int]) -> str:
    """[1, 2, 3, 7] -> '1–3, 7'."""
    spans: list[list[int]] = []
    for e in epochs:
        if spans and e == spans[-1][1] + 1:
            spans[-1][1] = e
        else:
            spans.append([e, e])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in spans) or "none"


def _extreme(deltas: list[float], sign: int) -> str:
    """The largest lead (sign 1) or lag (sign −1) in points with its first epoch, or '—'."""
    value, epoch = max((sign * d, -(i + 1)) for i, d in enumerate(deltas))
    return f"{sign * value:+.1f} (ep {-epoch})" if value > 0 else "—"


def lead_lines(nets: dict[str, Network]) -> list[str]:
    """Each Nonlocal network against the Hamiltonian network, per seed: the epochs it is ahead in training
    accuracy, its largest lead and lag (training) and its largest lead in validation accuracy."""
    ham = nets.get("hamiltonian")
    rows = []
    for row in (r for r in NONLOCAL_ROWS if r in nets and ham is not None):
        for seed in sorted(set(nets[row].runs) & set(ham.runs)):  # type: ignore[union-attr]
            a, b = nets[row].runs[seed], ham.runs[seed]  # type: ignore[union-attr]
            train = [x - y for x, y in zip(a.train, b.train)]
            val = [x - y for x, y in zip(a.val, b.val)]
            rows.append([nets[row].label, str(seed), _epoch_ranges([i + 1 for i, d in enumerate(train) if d > 0]),
                         _extreme(train, 1), _extreme(train, -1), _extreme(val, 1)])
    if not rows:
        return []
    header = ["Nonlocal network", "seed", "epochs ahead of H (train acc.)", "largest lead, train (points)",
              "largest lag, train", "largest lead, val"]
    return ["Each Nonlocal network against H, epoch by epoch:", ""] + _table(header, rows)


@dataclass(frozen=True)
class Verdict:
    """One Nonlocal network against one baseline, paired by seed."""

    network: str
    baseline: str
    seeds: int
    mean_delta: tuple[float, ...]  # per seed, network − baseline mean over the training curve
    median_mean: tuple[float, float]  # (network, baseline): median over seeds of the mean training accuracy
    median_last: tuple[float, float]  # median training accuracy at the last epoch
    median_val: tuple[float, float]  # median of the mean validation over the last five epochs
    last_delta: tuple[float, ...]  # per seed, network − baseline training accuracy at the last epoch
    early_ahead: int  # epochs of the first EARLY, summed over seeds, with the network ahead

    @property
    def word(self) -> str:
        """faster, slower, level or undecided (module docstring)."""
        if self.seeds < MIN_SEEDS:
            return "undecided"
        if all(d > 0 for d in self.mean_delta):
            return "faster"
        return "slower" if all(d < 0 for d in self.mean_delta) else "level"


def verdict(net: Network, base: Network) -> Verdict:
    """Paired over the seeds both have."""
    seeds = sorted(set(net.runs) & set(base.runs))
    if not seeds:
        raise InputError(f"{net.row} and {base.row} share no seed")
    pairs = [(net.runs[s], base.runs[s]) for s in seeds]
    deltas = [a.train[-1] - b.train[-1] for a, b in pairs]
    return Verdict(
        net.label, base.label, len(seeds),
        tuple(a.mean_train - b.mean_train for a, b in pairs),
        (_median([a.mean_train for a, _ in pairs]), _median([b.mean_train for _, b in pairs])),
        (_median([a.train[-1] for a, _ in pairs]), _median([b.train[-1] for _, b in pairs])),
        (_median([a.mean_val_last for a, _ in pairs]), _median([b.mean_val_last for _, b in pairs])),
        tuple(deltas),
        sum(epochs_ahead(a, b, EARLY) for a, b in pairs))


def _spread(deltas: tuple[float, ...]) -> str:
    """'k of n ahead by a–b; behind by c–d' (points; ties count as neither)."""
    ahead = sorted(d for d in deltas if d > 0)
    behind = sorted(-d for d in deltas if d < 0)
    def by(values: list[float]) -> str:
        return f" by {values[0]:.1f}" + (f"–{values[-1]:.1f}" if len(values) > 1 else "")

    text = f"{len(ahead)} of {len(deltas)} ahead" + (by(ahead) if ahead else "")
    return text + (f"; behind{by(behind)}" if behind else "")


def verdicts(nets: dict[str, Network]) -> list[Verdict]:
    """Every Nonlocal network present against ResNet-44 and the Hamiltonian network (those present)."""
    return [verdict(nets[row], nets[base]) for row in NONLOCAL_ROWS if row in nets
            for base in ("resnet44", "hamiltonian") if base in nets]


def verdict_lines(nets: dict[str, Network]) -> list[str]:
    """The verdict table: does each Nonlocal network climb faster than each baseline?"""
    rows = []
    for v in verdicts(nets):
        rows.append([v.network, v.baseline, f"**{v.word}** ({_spread(v.mean_delta)})",
                     f"{v.median_mean[0]:.1f} / {v.median_mean[1]:.1f}",
                     f"{v.median_last[0]:.1f} / {v.median_last[1]:.1f} ({_spread(v.last_delta)})",
                     f"{v.median_val[0]:.1f} / {v.median_val[1]:.1f}",
                     f"{v.early_ahead} of {v.seeds} × {EARLY}"])
    if not rows:
        return []
    header = ["Nonlocal network", "against", "climbs (mean over the training curve, per seed, points)",
              "median mean train acc.", "median train acc. last epoch (per seed, points)",
              f"median mean val, last {LAST}", f"epochs ahead in the first {EARLY}"]
    return [f"Verdict: a network climbs **faster** when the mean over its training curve is higher on every seed, "
            f"**slower** when lower on every seed, **level** otherwise, **undecided** on fewer than {MIN_SEEDS} seeds "
            "(paired by seed; network / baseline):", ""] + \
        _table(header, rows)


def stagnation_lines(nets: dict[str, Network]) -> list[str]:
    """ResNet-44 against the Hamiltonian networks: the last epoch it is ahead of any on any seed, and on how
    many seeds it is ahead of each in the first epochs."""
    res = nets.get("resnet44")
    others = [net for row, net in nets.items() if row != "resnet44" and (row == "hamiltonian" or row in NONLOCAL_ROWS)]
    if res is None or not others:
        return []
    last = 0
    early: list[str] = []
    for net in others:
        seeds = sorted(set(res.runs) & set(net.runs))
        for s in seeds:
            ahead = [i + 1 for i, (x, y) in enumerate(zip(res.runs[s].train, net.runs[s].train)) if x > y]
            last = max([last, *ahead])
        n = sum(epochs_ahead(res.runs[s], net.runs[s], EARLY) > 0 for s in seeds)
        early.append(f"{net.label} on {n} of {len(seeds)} seeds")
    return [f"ResNet-44: ahead (training accuracy) in some epoch of the first {EARLY} of " + ", ".join(early)
            + "; " + (f"the last epoch it is ahead of any of them on any seed: {last}" if last else
                      "never ahead of any of them") + "."]


def plot_medians(nets: dict[str, Network], title: str, path: Path) -> None:
    """One figure, two panels: the median over seeds of the training and of the validation curve of every
    network (no bands, so that six networks stay readable; the report's own figure has them)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for net in nets.values():
        for ax, split in zip(axes, ("train", "val")):
            median = [percent(net.metric, v) for v in median_curve(list(net.histories.values()), f"{split}_{net.metric}")]
            ax.plot(np.arange(1, len(median) + 1), [np.nan if v is None else v for v in median], marker=".",
                    label=f"{plot_label(net.row)}: {net.params:.2f}M, {len(net.runs)} seed(s)")
    for ax, split in zip(axes, ("training", "validation")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{split} {METRIC_NAMES[next(iter(nets.values())).metric]}, median over seeds")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def summary_text(nets: dict[str, Network]) -> str:
    """Every section, Markdown."""
    parts = [median_lines(nets), per_seed_lines(nets), lead_lines(nets), verdict_lines(nets), stagnation_lines(nets)]
    return "\n".join(line for part in parts if part for line in [*part, ""]).rstrip() + "\n"
