"""SIGINT and SIGTERM for commands that keep what they finished: one stop, then a clean exit (130)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def signals_stop_once(note: str) -> Iterator[None]:
    """SIGINT and SIGTERM (even where SIGINT was inherited ignored) while the block runs.

    The first raises KeyboardInterrupt, for the command to finish what it has done so far. A
    second one meanwhile writes ``note`` to stderr and is otherwise ignored, so the finished
    outputs are kept. A third exits at once with status 130. Once stopping, later signals are
    ignored through the exit, so it stays 130.
    """
    count = 0

    def handler(signum: int, frame: object) -> None:
        nonlocal count
        count += 1
        if count == 1:
            raise KeyboardInterrupt
        if count == 2:  # os.write: print() in a handler can meet stderr mid-write and raise
            os.write(2, f"note: {note}\n".encode())
            return
        os._exit(130)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if count == 0 else signal.SIG_IGN)
