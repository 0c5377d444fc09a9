"""Memory of ``nlseg serve`` under a long stream of requests: resident memory of each of its processes.

Starts ``python -m nlseg serve`` on 127.0.0.1 (free ports) and sends ``--requests`` images from
``--clients`` gRPC clients (stock ``tritonclient``): frames of the bundled sample clip, each resized to
a random size between 64x64 and 1280x720 (so the server meets many image sizes and batch compositions),
about one in ten a bad request (not an image). Every ``--every`` requests it reads the resident memory
(VmRSS, and of it the anonymous part RssAnon) of the server's processes: the ``nlseg serve`` Python process (the model), ``tritonserver``, its
Python stub and the stub's own Python processes. Prints Markdown. Bounded by ``--budget-s``.

    nice -n 10 python benchmarks/serve_memory.py [--requests 1200] [--every 200] [--clients 4] [--budget-s 150]
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

from nlseg.assets import SAMPLE_CLIP
from nlseg.serve.contract import encode_image
from nlseg.serve.server import free_ports
from nlseg.serve.watchdog import descendants

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("nlseg serve", "tritonserver", "stub", "stub's Python")


def rss_mib(pid: int) -> tuple[float, float]:
    """(resident, of it anonymous) MiB of ``pid``; the rest is file pages and shared memory."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "RssAnon:")):
                fields[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return fields.get("VmRSS", 0.0), fields.get("RssAnon", 0.0)


def kind(pid: int) -> str | None:
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return None
    if argv0.endswith("/tritonserver"):
        return "tritonserver"
    if argv0.endswith("triton_python_backend_stub"):
        return "stub"
    if "/stub-env/" in argv0:
        return "stub's Python"
    return None  # the watchdog, sh


def memory(server: int) -> dict[str, tuple[float, float]]:
    """(resident, anonymous) MiB per kind of process of the server whose Python process is ``server``."""
    totals = dict.fromkeys(KINDS, (0.0, 0.0))
    totals["nlseg serve"] = rss_mib(server)
    for pid in descendants(server):
        if (k := kind(pid)) is not None:
            rss, anon = rss_mib(pid)
            totals[k] = (totals[k][0] + rss, totals[k][1] + anon)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1200)
    parser.add_argument("--every", type=int, default=200, help="requests between two readings")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--budget-s", type=float, default=150, help="stop sending once the run is this old")
    args = parser.parse_args()
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    start = time.monotonic()
    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    frames = [cap.read()[1] for _ in range(8)]
    cap.release()
    rng = np.random.default_rng(0)
    payloads = []
    for i in range(64):
        if i % 10 == 9:
            payloads.append(b"not an image " * 8)
            continue
        w, h = int(rng.integers(64, 1281)), int(rng.integers(64, 721))
        payloads.append(encode_image(cv2.resize(frames[i % len(frames)], (w, h), interpolation=cv2.INTER_AREA)))

    http, grpc, metrics = free_ports(3)
    cmd = [sys.executable, "-m", "nlseg", "serve", "--device", "cpu", "--http-port", str(http),
           "--grpc-port", str(grpc), "--metrics-port", str(metrics), "--max-batch", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                            start_new_session=True)
    try:
        for line in proc.stdout:
            if "ready" in line:
                break
        else:
            raise SystemExit(f"nlseg serve did not start (exit {proc.wait()})")
        todo: queue.Queue[int] = queue.Queue()
        for i in range(args.requests):
            todo.put(i)
        done, bad = [0], [0]
        lock = threading.Lock()
        readings = [(0, memory(proc.pid))]

        def client() -> None:
            conn = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc}")
            while time.monotonic() < start + args.budget_s:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    break
                tensor = grpcclient.InferInput("image", [1, 1], "BYTES")
                tensor.set_data_from_numpy(np.array([[payloads[i % len(payloads)]]], dtype=np.object_))
                try:
                    conn.infer("nlseg", [tensor])
                except InferenceServerException:
                    with lock:
                        bad[0] += 1
                with lock:
                    done[0] += 1
                    if done[0] % args.every == 0:
                        readings.append((done[0], memory(proc.pid)))
            conn.close()

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if readings[-1][0] != done[0]:
            readings.append((done[0], memory(proc.pid)))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    print(f"`nlseg serve` (bundled weights, torch, CPU, --max-batch 8), {args.clients} gRPC clients, images "
          f"64x64 to 1280x720; {bad[0]} of {done[0]} requests answered with an error (one in ten is not an image, "
          "and it fails the dynamic batch it joins)\n")
    print("Resident MiB (anonymous MiB; the rest is file pages and shared memory)\n")
    print("| requests | " + " | ".join(KINDS) + " | total |")
    print("|---:|" + "---:|" * (len(KINDS) + 1))
    for n, reading in readings:
        cells = [f"{rss:.0f} ({anon:.0f})" for rss, anon in reading.values()]
        total = [sum(v[i] for v in reading.values()) for i in (0, 1)]
        print(f"| {n} | " + " | ".join(cells) + f" | {total[0]:.0f} ({total[1]:.0f}) |")
    print(f"\n{time.monotonic() - start:.0f} s in all")


if __name__ == "__main__":
    main()
