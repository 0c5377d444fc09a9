"""Progress bar of an epoch: batches, loss, metric, images/s and ETA (rich, on stderr)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class EpochBar:
    """A transient bar for one epoch on a terminal; disabled in processes other than rank 0 and in logs."""

    def __init__(self, description: str, total: int, metric_name: str, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.metric_name = metric_name
        self.images = 0
        self.start = time.perf_counter()
        if not self.enabled:
            return
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[metric]}"),
            TextColumn("{task.fields[rate]:.0f} img/s"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True,
        )
        self.task = self.progress.add_task(description, total=total, loss=float("nan"), metric="", rate=0.0)
        self.progress.start()

    def advance(self, images: int) -> None:
        """One batch of ``images`` done."""
        self.images += images
        if self.enabled:
            rate = self.images / max(time.perf_counter() - self.start, 1e-9)
            self.progress.update(self.task, advance=1, rate=rate)

    def show(self, loss: float, metric: float) -> None:
        """The epoch's running loss and metric (fetched every few batches, not to stall the GPU)."""
        if self.enabled:
            self.progress.update(self.task, loss=loss, metric=f"{self.metric_name} {metric:.3f}")

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
