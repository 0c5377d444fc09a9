"""The run directory: ``config.json``, ``metrics.jsonl``, ``curves.png``, ``last.pt``, ``best.pt``.

Every file is written atomically. ``metrics.jsonl`` and ``curves.png`` are rewritten from
the history stored in ``last.pt``, so after a kill at any moment they agree with the
checkpoint a resumed run continues from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nlseg.io import atomic_path

CONFIG, METRICS, CURVES, LAST, BEST = "config.json", "metrics.jsonl", "curves.png", "last.pt", "best.pt"


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    """One JSON object per epoch."""
    with atomic_path(out / METRICS) as tmp:
        tmp.write_text("".join(json.dumps(row) + "\n" for row in history))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl``."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(out: Path, history: list[dict[str, Any]], title: str) -> None:
    """Loss and metric curves (train and validation) against epochs, as ``curves.png``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    def series(key: str) -> tuple[list[int], list[Any]]:  # the epochs that have the key (validation may skip some)
        kept = [(e, row[key]) for e, row in zip(epochs, history) if row.get(key) is not None]
        return [e for e, _ in kept], [v for _, v in kept]

    for key, style in (("train_loss", "-"), ("val_loss", "--")):
        ax_loss.plot(*series(key), style, marker=".", label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend()
    metric_keys = [k for k in dict.fromkeys(k for row in history for k in row)
                   if k.startswith(("train_", "val_")) and not k.endswith(("loss", "per_class_iou"))]
    for key in metric_keys:
        ax_metric.plot(*series(key), "--" if key.startswith("val_") else "-", marker=".", label=key)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylim(0, 1)
    ax_metric.legend()
    for ax in (ax_loss, ax_metric):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out / CURVES) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
