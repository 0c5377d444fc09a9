"""A small process that cleans up after ``nlseg serve`` when that process is killed outright.

``nvidia-pytriton`` starts ``tritonserver`` with ``PR_SET_PDEATHSIG`` = SIGTERM, so a SIGKILL of the
``nlseg serve`` process (the OOM killer's choice: it holds the model) starts Triton's graceful stop; but
Triton's Python stub waits for the model process that is gone, and ``tritonserver`` stays up after
its exit timeout, holding the ports and the clients' connections open without ever answering them.
The watchdog, a child of ``nlseg serve`` in a session of its own, notes the server's descendants once a
second; when its parent is gone it SIGKILLs the ones still there (connections close, clients get an
error at once) and removes the server's work folder and Triton's copy of the model.

    python -m nlseg.serve.watchdog PARENT_PID WORKDIR
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

#: Seconds between looks at the process table.
INTERVAL_S = 1.0


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of ``pid`` from /proc, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ..., starttime (22nd)
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every process below ``root``: pid -> start time (which tells a process from a later one with its pid)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            children.setdefault(stat[0], []).append((int(entry), stat[1]))
    found, todo = {}, [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            if pid not in found:
                found[pid] = start
                todo.append(pid)
    return found


def model_copies(pids: list[int]) -> set[Path]:
    """The folders Triton copied a model to (``/tmp/folderXXXXXX``, removed on a clean stop): from the
    command lines of its Python stubs, ``triton_python_backend_stub /tmp/folderXXXXXX/1/model.py ...``."""
    folders = set()
    for pid in pids:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"triton_python_backend_stub") and len(args) > 1:
            model = Path(os.fsdecode(args[1]))
            if model.name == "model.py" and model.parents[1].name.startswith("folder"):
                folders.add(model.parents[1])
    return folders


def watch(parent: int, workdir: Path, interval: float = INTERVAL_S) -> list[int]:
    """Wait for ``parent`` to go; then SIGKILL its descendants that remain and remove ``workdir`` and
    Triton's copies of the model. Returns the pids killed.
    """
    me = os.getpid()
    known: dict[int, int] = {}
    folders: set[Path] = set()
    while True:
        current = {pid: start for pid, start in descendants(parent).items() if pid != me}
        if os.getppid() != parent:  # reparented: the parent went, maybe while we looked; keep the last full look
            break
        known, folders = current, model_copies(list(current))
        time.sleep(interval)
    killed = []
    for pid, start in known.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == start:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
    if killed:  # after a clean stop Triton has removed its copies itself (and a new server may reuse the name)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(workdir, ignore_errors=True)
    return killed


def start(workdir: Path) -> subprocess.Popen:
    """Start the watchdog of this process (in its own session, so a terminal's Ctrl-C reaches the server only)."""
    return subprocess.Popen([sys.executable, "-m", "nlseg.serve.watchdog", str(os.getpid()), str(workdir)],
                            stdin=subprocess.DEVNULL, start_new_session=True)


if __name__ == "__main__":
    killed = watch(int(sys.argv[1]), Path(sys.argv[2]))
    if killed:
        print(f"nlseg serve (pid {sys.argv[1]}) was killed; stopped what it had started (pids "
              f"{', '.join(map(str, killed))})", file=sys.stderr)
