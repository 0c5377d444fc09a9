"""Where the errors go: the confusion matrix of ``nlseg eval`` as a figure.

Each row is a label and sums to 100%: the share of that class's pixels (images) given to each
predicted class, so the diagonal is the class's recall (5.1) and a row's largest off-diagonal
entry is what the class is mistaken for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nlseg.io import atomic_path

ANNOTATE_UP_TO = 24  # classes; above this the cells are too small to print their percentages


def row_percentages(counts: list[list[int]]) -> np.ndarray:
    """Each row of ``counts`` as percentages of its sum; rows of an absent label are NaN."""
    conf = np.asarray(counts, dtype=np.float64)
    totals = conf.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, 100.0 * conf / totals, np.nan)


def plot_confusion(counts: list[list[int]], classes: list[str], path: str | Path, title: str) -> Path:
    """Write the row-normalised confusion matrix (label × prediction, %) as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    share = row_percentages(counts)
    n = len(classes)
    side = max(4.0, 0.45 * n + 2.0)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(np.nan_to_num(share, nan=0.0), cmap="Blues", vmin=0.0, vmax=100.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of the label's pixels")
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), [f"{name} ({'absent' if np.isnan(row[0]) else f'{row[i]:.0f}%'})"
                             for i, (name, row) in enumerate(zip(classes, share))], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("label (recall)")
    if n <= ANNOTATE_UP_TO:
        for i in range(n):
            for j in range(n):
                if not np.isnan(share[i, j]) and share[i, j] >= 0.5:
                    ax.text(j, i, f"{share[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 60 else "black")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return Path(path)
