"""``nlseg serve`` on a real Triton Inference Server (nvidia-pytriton), driven by the stock tritonclient.

Servers run as ``python -m nlseg serve`` subprocesses on 127.0.0.1 with free ports: one for the module
(masks, concurrency, bad requests), and one each for the tests that stop or kill theirs.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

pytest.importorskip("pytriton", reason="nvidia-pytriton is not installed (pip install 'nlseg[serve]')")
grpcclient = pytest.importorskip("tritonclient.grpc")
httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

import nlseg  # noqa: E402
from nlseg.assets import SAMPLE_CLIP  # noqa: E402
from nlseg.serve.contract import decode_mask, encode_image  # noqa: E402
from nlseg.serve.server import free_ports  # noqa: E402

MAX_PIXELS = 640 * 360  # the sample clip's frame size: the largest image the module's server takes
READY_S = 120


class Server:
    """A ``nlseg serve`` subprocess in its own session (so a test can kill it and its tritonserver)."""

    def __init__(self, *args: str) -> None:
        self.http, self.grpc, self.metrics = free_ports(3)
        cmd = [sys.executable, "-m", "nlseg", "serve", "--device", "cpu", "--http-port", str(self.http),
               "--grpc-port", str(self.grpc), "--metrics-port", str(self.metrics), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        deadline = time.monotonic() + READY_S
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                pytest.fail(f"nlseg serve was not ready in {READY_S} s: {''.join(self.stderr)[-2000:]}")
            if "ready" in line:
                self.ready_line = line
                break
            if line == "":
                pytest.fail(f"nlseg serve exited: {''.join(self.stderr)[-2000:]}")

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc}/nlseg"

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    started = Server("--max-batch", "4", "--max-pixels", str(MAX_PIXELS))
    yield started
    started.proc.send_signal(signal.SIGTERM)
    try:
        started.proc.wait(timeout=60)
    finally:
        started.kill()


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    out = []
    for _ in range(3):
        ok, frame = cap.read()
        assert ok
        out.append(frame)
    cap.release()
    return out


@pytest.fixture(scope="module")
def local():
    with nlseg.load(device="cpu") as segmenter:
        yield segmenter


def infer_grpc(client, payloads: list[bytes], name: str = "image", datatype: str = "BYTES"):
    tensor = grpcclient.InferInput(name, [len(payloads), 1], datatype)
    tensor.set_data_from_numpy(np.array(payloads, dtype=np.object_).reshape(-1, 1))
    return [decode_mask(m) for m in client.infer("nlseg", [tensor]).as_numpy("mask").reshape(-1)]


def test_ready_line_names_the_urls(server):
    line = server.ready_line
    assert f"http://127.0.0.1:{server.http}/nlseg" in line and f"grpc://127.0.0.1:{server.grpc}/nlseg" in line
    assert f"http://127.0.0.1:{server.metrics}/metrics" in line


def test_config_carries_the_contract(server, local):
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.http}")
    config = client.get_model_config("nlseg")
    assert [i["name"] for i in config["input"]] == ["image"] and config["input"][0]["data_type"] == "TYPE_STRING"
    assert [o["name"] for o in config["output"]] == ["mask"] and config["output"][0]["data_type"] == "TYPE_STRING"
    assert config["max_batch_size"] == 4 and "dynamic_batching" in config
    params = {k: v["string_value"] for k, v in config["parameters"].items()}
    assert json.loads(params["nlseg-classes"]) == list(local.info.class_names)
    assert [tuple(c) for c in json.loads(params["nlseg-palette"])] == list(local.info.palette)
    assert params["nlseg-input-size"] == "x".join(map(str, local.info.input_size))
    assert client.is_server_ready() and client.is_model_ready("nlseg")


def test_served_masks_equal_local_predict(server, frames, local):
    """PNG and JPEG, several sizes, one batch and single requests, gRPC and HTTP: the masks predict gives."""
    images = [frames[0], cv2.resize(frames[1], (333, 187)), frames[2][:120, :200]]
    jpeg = cv2.imencode(".jpg", frames[1], [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    expected = local.predict(images + [cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)])
    payloads = [encode_image(i) for i in images] + [jpeg]
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
    for got, want in zip(infer_grpc(grpc, payloads), expected):
        assert got.shape == want.shape and np.array_equal(got, want)
    http = httpclient.InferenceServerClient(f"127.0.0.1:{server.http}")
    tensor = httpclient.InferInput("image", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[payloads[1]]], dtype=np.object_))
    assert np.array_equal(decode_mask(http.infer("nlseg", [tensor]).as_numpy("mask")[0, 0]), expected[1])


def test_remote_segmenter_predicts_like_local(server, frames, local):
    for url in (server.grpc_url, f"http://127.0.0.1:{server.http}/nlseg"):
        with nlseg.load(url, timeout=60) as remote:
            assert remote.info.class_names == local.info.class_names
            got = remote.predict(list(frames) * 2, batch=5)  # more than the server's batch of 4: split in two
            for a, b in zip(got, local.predict(list(frames) * 2)):
                assert np.array_equal(a, b)
            with pytest.raises(nlseg.errors.InputError, match="masks, not class scores"):
                remote.predict_proba(frames[0])


def test_eight_concurrent_clients(server, frames, local):
    payload, expected = encode_image(frames[0]), local.predict(frames[0])

    def client_run(_: int) -> int:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
        for _ in range(10):
            assert np.array_equal(infer_grpc(client, [payload])[0], expected)
        return 10

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(client_run, range(8))) == 80


def _png_header_with_size(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` (0x0 cannot be encoded, so it is written by hand)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


BAD_PAYLOADS = {
    "not an image": (b"GIF89a? no, plain text", "not a JPEG or PNG image"),
    "empty bytes": (b"", "empty bytes"),
    "0x0 image": (_png_header_with_size(0, 0), "not a JPEG or PNG image"),
    "1x1 image": (encode_image(np.zeros((1, 1, 3), np.uint8)), "1x1 image is too small"),
    "above --max-pixels": (encode_image(np.zeros((361, 640, 3), np.uint8)), "above the server's limit"),
}


@pytest.mark.parametrize("case", list(BAD_PAYLOADS))
def test_bad_image_then_a_good_request(server, frames, local, case):
    payload, message = BAD_PAYLOADS[case]
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
    with pytest.raises(InferenceServerException, match=message):
        infer_grpc(client, [payload])
    assert np.array_equal(infer_grpc(client, [encode_image(frames[0])])[0], local.predict(frames[0]))


@pytest.mark.parametrize("case", ["wrong dtype", "wrong shape", "unknown input"])
def test_bad_tensor_then_a_good_request(server, frames, local, case):
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
    good = encode_image(frames[0])
    if case == "wrong dtype":
        tensor = grpcclient.InferInput("image", [1, 1], "UINT8")
        tensor.set_data_from_numpy(np.zeros((1, 1), np.uint8))
        match = "data-type is .UINT8., but model .nlseg. expects .BYTES."
    elif case == "wrong shape":
        tensor = grpcclient.InferInput("image", [1, 2], "BYTES")
        tensor.set_data_from_numpy(np.array([[good, good]], dtype=np.object_))
        match = "(?i)shape"
    else:
        tensor = grpcclient.InferInput("pixels", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[good]], dtype=np.object_))
        match = "pixels"
    with pytest.raises(InferenceServerException, match=match):
        client.infer("nlseg", [tensor])
    assert np.array_equal(infer_grpc(client, [good])[0], local.predict(frames[0]))


def test_port_in_use_is_one_line(server):
    run = subprocess.run([sys.executable, "-m", "nlseg", "serve", "--http-port", str(server.http)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{server.http} is in use" in lines[0] and "--http-port" in lines[0]


def test_sigterm_answers_in_flight_requests_and_exits_0(frames, local):
    stopping = Server("--max-batch", "2")
    try:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{stopping.grpc}")
        payload, results = encode_image(frames[0]), queue.Queue()
        for _ in range(6):
            tensor = grpcclient.InferInput("image", [1, 1], "BYTES")
            tensor.set_data_from_numpy(np.array([[payload]], dtype=np.object_))
            client.async_infer("nlseg", [tensor], callback=lambda result, error: results.put((result, error)))
        time.sleep(0.2)  # the requests are queued or running on the server
        stopping.proc.send_signal(signal.SIGTERM)
        assert stopping.proc.wait(timeout=90) == 0
        answers = [results.get(timeout=5) for _ in range(6)]
        assert all(error is None for _, error in answers), [str(e) for _, e in answers if e]
        expected = local.predict(frames[0])
        assert all(np.array_equal(decode_mask(r.as_numpy("mask")[0, 0]), expected) for r, _ in answers)
    finally:
        stopping.kill()


def inference_count(server: Server) -> int:
    """Images the server has segmented, from its Prometheus metrics (nv_inference_count)."""
    from urllib.request import urlopen

    with urlopen(f"http://127.0.0.1:{server.metrics}/metrics", timeout=10) as page:
        text = page.read().decode()
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("nv_inference_count{") and 'model="nlseg"' in line)


def test_remote_infer_on_a_killed_server(tmp_path):
    """The server dies mid-video: one line naming the URL, the MP4 of the frames done so far plays, exit 1."""
    doomed = Server("--max-batch", "1")
    out = tmp_path / "run"
    try:
        infer = subprocess.Popen([sys.executable, "-m", "nlseg", "infer", str(SAMPLE_CLIP), "--weights", doomed.grpc_url,
                                  "--out", str(out), "--timeout", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and inference_count(doomed) < 5:  # kill after a few frames
            time.sleep(0.05)
        doomed.kill()
        stdout, stderr = infer.communicate(timeout=120)
    finally:
        doomed.kill()
    assert infer.returncode == 1, stderr
    url_lines = [line for line in stderr.splitlines() if doomed.grpc_url in line]
    assert len(url_lines) == 1 and "stopped after" in url_lines[0]
    assert "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    video = out / "sample_drive.mp4"
    cap = cv2.VideoCapture(str(video))
    played = 0
    while cap.read()[0]:
        played += 1
    assert 0 < played == summary["frames"] < 120
