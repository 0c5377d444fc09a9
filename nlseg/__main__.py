"""``python -m nlseg``: the command line without an installed entry point (e.g. PYTHONPATH=.)."""

from nlseg.cli import main

main()
