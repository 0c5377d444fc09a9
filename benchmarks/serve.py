"""Serving overhead of ``nlseg serve``: throughput and latency against in-process ``predict``, on 127.0.0.1.

Starts ``nlseg serve`` twice on free local ports (dynamic batching on: ``--max-batch 8``; off:
``--max-batch 1``), sends the sample clip's 640x360 frames (PNG, encoded once beforehand) with the
stock ``tritonclient`` over HTTP and gRPC from 1, 4 and 16 concurrent clients (one client object
per thread), ``--requests`` images per row, and prints a Markdown table: images/s, p50 and p99
latency per request, and the ratio to in-process ``Segmenter.predict`` on the same decoded frames
(batch 1; from the main thread and from a worker thread, as the server calls it; the ratio is to the
faster of the two). Bounded: at most ``--requests`` per row and ``--row-seconds`` per row.

    python benchmarks/serve.py [--requests 48] [--row-seconds 30] [--weights W]
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nlseg  # noqa: E402
from nlseg.assets import SAMPLE_CLIP  # noqa: E402
from nlseg.serve.contract import encode_image  # noqa: E402
from nlseg.serve.server import free_ports  # noqa: E402

CONCURRENCY = (1, 4, 16)


def start_server(weights: str | None, max_batch: int) -> tuple[subprocess.Popen, int, int]:
    http, grpc, metrics = free_ports(3)
    cmd = [sys.executable, "-m", "nlseg", "serve", *([weights] if weights else []), "--device", "cpu",
           "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
           "--max-batch", str(max_batch)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    for line in proc.stdout:
        if "ready" in line:
            return proc, http, grpc
    raise SystemExit(f"nlseg serve did not start (exit {proc.wait()})")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_row(protocol: str, port: int, payloads: list[bytes], concurrency: int, requests: int,
            seconds: float) -> tuple[int, float, list[float]]:
    """(requests done, wall seconds, per-request latencies in ms) for ``concurrency`` client threads."""
    if protocol == "grpc":
        import tritonclient.grpc as client_module
    else:
        import tritonclient.http as client_module
    todo: queue.Queue[int] = queue.Queue()
    for i in range(requests):
        todo.put(i)
    latencies: list[float] = []
    errors: list[BaseException] = []
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        client = client_module.InferenceServerClient(f"127.0.0.1:{port}", **({"concurrency": 1} if protocol == "http" else {}))
        try:
            while time.perf_counter() < deadline:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                tensor = client_module.InferInput("image", [1, 1], "BYTES")
                tensor.set_data_from_numpy(np.array([[payloads[i % len(payloads)]]], dtype=np.object_))
                t0 = time.perf_counter()
                client.infer("nlseg", [tensor]).as_numpy("mask")
                latencies.append((time.perf_counter() - t0) * 1e3)
        except BaseException as exc:  # reported after the row
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{protocol} x{concurrency}: {errors[0]}")
    return len(latencies), wall, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None)
    parser.add_argument("--requests", type=int, default=48, help="images per row")
    parser.add_argument("--row-seconds", type=float, default=30.0, help="time limit per row")
    args = parser.parse_args()

    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    frames = [cap.read()[1] for _ in range(8)]
    payloads = [encode_image(f) for f in frames]

    local = nlseg.load(args.weights, device="cpu")
    local.predict(frames[0])  # warm-up (the CPU kernel compiles on first use)

    def predict_row(label: str) -> tuple:
        t0 = time.perf_counter()
        lat = []
        for i in range(args.requests):
            s = time.perf_counter()
            local.predict(frames[i % len(frames)])
            lat.append((time.perf_counter() - s) * 1e3)
        return (label, "-", 1, args.requests, args.requests / (time.perf_counter() - t0), np.percentile(lat, 50),
                np.percentile(lat, 99))

    # the server calls predict from a worker thread; the main thread's OpenMP team can behave differently
    rows = [predict_row("in-process predict, main thread")]
    threaded: list[tuple] = []
    worker = threading.Thread(target=lambda: threaded.append(predict_row("in-process predict, worker thread")))
    worker.start()
    worker.join()
    rows += threaded
    local_ips = max(row[4] for row in rows)  # the faster in-process row: the ratio does not flatter the server
    local.close()
    for batching, max_batch in (("on", 8), ("off", 1)):
        proc, http, grpc = start_server(args.weights, max_batch)
        try:
            for protocol, port in (("http", http), ("grpc", grpc)):
                run_row(protocol, port, payloads, 1, 4, args.row_seconds)  # warm-up
                for concurrency in CONCURRENCY:
                    done, wall, lat = run_row(protocol, port, payloads, concurrency, args.requests, args.row_seconds)
                    rows.append((f"nlseg serve, batching {batching}", protocol, concurrency, done, done / wall,
                                 np.percentile(lat, 50), np.percentile(lat, 99)))
        finally:
            stop_server(proc)

    print(f"frames 640x360 PNG ({np.mean([len(p) for p in payloads]) / 1024:.0f} KiB), model input "
          f"{'x'.join(map(str, nlseg.load(args.weights, device='cpu').info.input_size))}, CPU threads "
          f"{os.cpu_count()}")
    print("| path | protocol | clients | images | images/s | p50 ms | p99 ms | vs in-process |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for path, protocol, concurrency, done, ips, p50, p99 in rows:
        print(f"| {path} | {protocol} | {concurrency} | {done} | {ips:.1f} | {p50:.1f} | {p99:.1f} | "
              f"{ips / local_ips:.2f}x |")


if __name__ == "__main__":
    main()
