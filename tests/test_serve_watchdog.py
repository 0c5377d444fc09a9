"""``nlseg serve`` killed outright (SIGKILL of its own process only, as the OOM killer does): its watchdog
stops the tritonserver and stub it started, so clients get an error instead of a connection that never
answers, and no server files are left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nlseg.serve.watchdog import descendants, watch


def _gone(pids, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() and _state(pid) != "Z" for pid in pids):
            return True
        time.sleep(0.1)
    return False


def _state(pid: int) -> str:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return text[text.rindex(")") + 2:].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the watchdog reads Linux's /proc")
def test_watchdog_kills_what_a_killed_parent_started(tmp_path):
    """A parent with a grandchild tree and a watchdog; SIGKILL of the parent -> the tree goes, the folder too."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    parent_code = textwrap.dedent(f"""
        import subprocess, sys, time
        from pathlib import Path
        from nlseg.serve import watchdog
        guard = watchdog.start(Path({str(workdir)!r}))
        tree = subprocess.Popen([sys.executable, "-c",
                                 "import subprocess, sys, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"])
        print(guard.pid, tree.pid, flush=True)
        time.sleep(300)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        guard_pid, tree_pid = map(int, parent.stdout.readline().split())
        deadline = time.monotonic() + 30
        while len(descendants(parent.pid)) < 3 and time.monotonic() < deadline:  # the watchdog, python, sleep
            time.sleep(0.1)
        tree = [pid for pid in descendants(parent.pid) if pid != guard_pid]
        assert tree_pid in tree and len(tree) == 2
        time.sleep(1.5)  # the watchdog has looked at the tree at least once
        parent.kill()
        parent.wait(timeout=10)
        assert _gone(tree + [guard_pid], timeout=15)
        assert not workdir.exists()
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)


def test_watchdog_after_a_clean_stop_kills_nothing(tmp_path):
    """The parent is gone at the first look (a clean stop leaves nothing running): no kill, the folder goes."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    assert watch(-1, workdir) == []  # os.getppid() is never -1: the parent is gone
    assert not workdir.exists()


def test_sigkill_of_nlseg_serve_ends_its_clients_and_tritonserver():
    """SIGKILL of only ``nlseg serve`` with requests in flight: every one is answered (with an error; none
    waits forever, there is no client timeout), and nothing of the server is left running or on disk."""
    pytest.importorskip("pytriton", reason="nvidia-pytriton is not installed (pip install 'nlseg[serve]')")
    import queue

    import numpy as np
    import tritonclient.grpc as grpcclient

    from nlseg.serve.contract import encode_image
    from tests.test_serve import Server

    server = Server("--max-batch", "1")
    tree: dict[int, int] = {}
    try:
        tree = descendants(server.proc.pid)
        workdirs = {parent for pid in tree for arg in _cmdline(pid) if arg.endswith("/bin/tritonserver")
                    for parent in Path(arg).parents if parent.name.startswith("nlseg-serve-")}
        assert len(workdirs) == 1 and next(iter(workdirs)).is_dir()
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
        payload = encode_image(np.random.default_rng(0).integers(0, 256, (360, 640, 3), np.uint8))
        answers: queue.Queue = queue.Queue()

        def send() -> None:
            tensor = grpcclient.InferInput("image", [1, 1], "BYTES")
            tensor.set_data_from_numpy(np.array([[payload]], dtype=np.object_))
            client.async_infer("nlseg", [tensor], callback=lambda result, error: answers.put(error))

        send()
        assert answers.get(timeout=60) is None  # the model runs
        time.sleep(1.5)  # the watchdog has seen the whole tree
        for _ in range(8):  # one at a time on the server (--max-batch 1): most are still queued at the kill
            send()
        time.sleep(0.05)
        os.kill(server.proc.pid, signal.SIGKILL)
        errors = [answers.get(timeout=60) for _ in range(8)]  # queue.Empty: a request never answered
        assert any(error is not None for error in errors)
        assert _gone(tree, timeout=30), [(pid, _cmdline(pid)[:1]) for pid in tree if _state(pid) not in ("gone", "Z")]
        assert not next(iter(workdirs)).exists()
    finally:
        server.kill()
        for pid in tree:  # whatever the watchdog did not stop, if the test failed
            if _state(pid) not in ("gone", "Z"):
                os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> list[str]:
    try:
        return [os.fsdecode(a) for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []
