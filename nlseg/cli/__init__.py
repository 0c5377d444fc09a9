"""The ``nlseg`` command line (Typer). Each subcommand lives in its own module."""

from __future__ import annotations

import sys

import typer

from nlseg.errors import InputError, os_error_line

app = typer.Typer(
    name="nlseg",
    help="Nonlocal Hamiltonian networks: train, export, segment video, profile.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _root() -> None:
    """Nonlocal Hamiltonian networks: train, export, segment video, profile."""


from nlseg.cli import summary as _summary  # noqa: E402,F401  (registers the command)
from nlseg.cli import train as _train  # noqa: E402,F401
from nlseg.cli import eval as _eval  # noqa: E402,F401
from nlseg.cli import synth as _synth  # noqa: E402,F401
from nlseg.cli import export as _export  # noqa: E402,F401
from nlseg.cli import check as _check  # noqa: E402,F401
from nlseg.cli import infer as _infer  # noqa: E402,F401
from nlseg.cli import profile as _profile  # noqa: E402,F401
from nlseg.cli import spectrum as _spectrum  # noqa: E402,F401
from nlseg.cli import benchmark as _benchmark  # noqa: E402,F401
from nlseg.cli import serve as _serve  # noqa: E402,F401


def run_app(typer_app: typer.Typer, argv: list[str] | None, prog_name: str) -> None:
    """Run a Typer app: user errors become one line on stderr and exit status 2, never a traceback."""
    try:
        typer_app(args=argv, prog_name=prog_name)
    except InputError as exc:
        from nlseg.cli.options import FLAGS

        print(f"error: {exc.as_flag(FLAGS)}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # a full disk, a read-only or forbidden folder: the path and the reason, exit 1
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """The ``nlseg`` entry point."""
    run_app(app, argv, "nlseg")
