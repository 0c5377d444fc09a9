"""The rich console the commands print tables on (wide enough when piped to a file)."""

from __future__ import annotations

import sys

from rich.console import Console


def table_console() -> Console:
    """Terminal width on a terminal; 120 columns when stdout is a pipe or a file."""
    return Console(width=None if sys.stdout.isatty() else 120)
