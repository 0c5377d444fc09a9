"""Latency: the one timing loop of every backend's ``time_forward``, its statistics, and the pipeline's
per-stage records."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Callable

import numpy as np
import torch

STAGES = ("decode", "preprocess", "inference", "postprocess", "encode")


class StageTimes:
    """Thread-safe per-frame milliseconds per stage; summarised as p50/p90/mean."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str, list[float]] = defaultdict(list)

    def add(self, stage: str, ms: float, frames: int = 1) -> None:
        """Record ``ms`` spent on ``frames`` frames (a batch counts as ms/frames per frame)."""
        with self._lock:
            self._times[stage].extend([ms / frames] * frames)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        with self._lock:
            for stage in STAGES:
                values = np.asarray(self._times.get(stage, []), np.float64)
                if values.size:
                    out[stage] = {
                        "p50_ms": round(float(np.percentile(values, 50)), 3),
                        "p90_ms": round(float(np.percentile(values, 90)), 3),
                        "mean_ms": round(float(values.mean()), 3),
                    }
        return out


def latency_stats(times_ms: list[float], batch: int) -> dict[str, float]:
    """mean, p50, p90, p95, p99, min, max (ms) and throughput (images/s) of timed forward passes."""
    t = np.asarray(times_ms, np.float64)
    stats = {
        "mean_ms": float(t.mean()),
        "p50_ms": float(np.percentile(t, 50)),
        "p90_ms": float(np.percentile(t, 90)),
        "p95_ms": float(np.percentile(t, 95)),
        "p99_ms": float(np.percentile(t, 99)),
        "min_ms": float(t.min()),
        "max_ms": float(t.max()),
    }
    stats["throughput"] = batch * 1e3 / stats["mean_ms"]
    return {k: round(v, 4) for k, v in stats.items()}


def time_calls(run: Callable[[], object], warmup: int, iters: int,
               stream: torch.cuda.Stream | None = None) -> list[float]:
    """Milliseconds of each of ``iters`` calls of ``run`` after ``warmup`` untimed ones.

    With ``stream``: device time, between CUDA events recorded on ``stream`` before and after each
    call (``run`` must enqueue its work there; the input is already on the device). Without: wall
    clock (CPU backends).
    """
    for _ in range(warmup):
        run()
    times = []
    for _ in range(iters):
        if stream is None:
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) * 1e3)
            continue
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(stream)
        run()
        end.record(stream)
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times
