"""``python -m experiments list`` / ``run NAME`` / ``report JSON``: the thesis's experiments."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import torch
import typer

from experiments.definitions import EXPERIMENTS
from experiments.protocols import DEFAULT_PROTOCOL, PROTOCOLS
from experiments.report import report_stem, write_report
from experiments.runner import run_experiment
from experiments.summary import load, plot_medians, summary_text
from nlseg.cli import run_app
from nlseg.cli.train import parse_seeds
from nlseg.errors import InputError

app = typer.Typer(name="experiments", help="The thesis's experiments: Figure 5.2, Tables 5.1–5.8, 6.1, 6.2.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def parse_data_dirs(values: list[str]) -> dict[str, Path]:
    """'cifar10=/data/c10' per dataset, or one plain folder ('*') for every dataset."""
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        key, folder = (name, Path(path)) if sep else ("*", Path(value))
        if not folder.is_dir():
            raise InputError(f"--data-dir {value}: folder not found")
        out[key] = folder
    return out


@app.command("list")
def list_command() -> None:
    """Every experiment with its networks, columns and settings."""
    for e in EXPERIMENTS.values():
        typer.echo(f"{e.name:10s} {e.reference:18s} {e.kind:6s} {e.title}")
        typer.echo(f"{'':36s}networks: {', '.join(e.rows)}")
        typer.echo(f"{'':36s}columns: {', '.join(c.label for c in e.columns)}")
        for name, s in e.settings.items():
            typer.echo(f"{'':36s}{name}: {s.note}")


def portable_arguments(argv: list[str]) -> list[str]:
    """The arguments as a report records them: without ``--out`` (where checkpoints go changes no result)
    and with ``--data-dir`` folders as ``DATASET=DIR``, so no path of this machine ends up in a report."""
    kept: list[str] = []
    args = iter(argv)
    for arg in args:
        flag, _, value = arg.partition("=")
        if flag in ("--out", "--data-dir"):
            value = value if "=" in arg else next(args, "")
            if flag == "--data-dir":
                name = value.partition("=")[0] if "=" in value else "DATASET"
                kept += ["--data-dir", f"{name}=DIR"]
            continue
        kept.append(arg)
    return kept


@app.command("run")
def run_command(
    name: Annotated[str, typer.Argument(help=f"One of {', '.join(EXPERIMENTS)}.", show_default=False)],
    setting: Annotated[str, typer.Option("--setting", help="reduced (minutes on a CPU) or full (the thesis's).")] = "reduced",
    out: Annotated[Path, typer.Option("--out", help="Root of the run directories (checkpoints; shared between "
                                      "experiments, resumed when they exist).")] = Path("runs/experiments"),
    results: Annotated[Path, typer.Option("--results", help="Folder for NAME-SETTING.md, .png, .json.")] = Path("docs/results"),
    networks: Annotated[Optional[str], typer.Option("--networks", help="Comma-separated subset of the rows.")] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="Seeds instead of the setting's, e.g. 0,1.")] = None,
    data_dir: Annotated[Optional[list[str]], typer.Option("--data-dir", help="DATASET=FOLDER (repeatable), or one "
                                                          "FOLDER for every dataset.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    workers: Annotated[int, typer.Option("--workers", help="Threads that read the datasets.")] = 1,
    threads: Annotated[Optional[int], typer.Option("--threads", help="torch CPU threads (default: torch's).")] = None,
    protocol: Annotated[str, typer.Option("--protocol", help=f"{' or '.join(PROTOCOLS)}: the thesis as its authors' "
                                          "code ran it, or as its text states it (docs/design.md §6).")] = DEFAULT_PROTOCOL,
) -> None:
    """Run (or resume, or re-tabulate) one experiment; print its table next to the thesis's numbers.

    Runs go seed by seed; after each run trained here the report is rewritten. Runs recorded in
    the report's JSON (in --results) are taken from there when --out does not hold them.
    """
    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads: need at least 1, got {threads}")
        torch.set_num_threads(threads)
    command = "python -m experiments " + " ".join(shlex.quote(a) for a in portable_arguments(sys.argv[1:]))
    experiment = EXPERIMENTS.get(name)
    stem = None if experiment is None else report_stem(name, setting, None if experiment.kind == "cost" else protocol)
    outcome = run_experiment(name, setting, out=out, networks=networks,
                             seeds=None if seeds is None else tuple(parse_seeds(seeds)),
                             data_dirs=parse_data_dirs(data_dir or []), device=device, workers=workers,
                             protocol=protocol, previous=None if stem is None else results / f"{stem}.json",
                             on_run=lambda partial: write_report(partial, results, command))
    text, paths = write_report(outcome, results, command)
    typer.echo(text)
    for path in paths.values():
        typer.echo(f"wrote {path}")


@app.command("report")
def report_command(
    path: Annotated[Path, typer.Argument(help="A curves report JSON, e.g. docs/results/qtips-full-authors.json.",
                                         show_default=False)],
    figure: Annotated[Optional[Path], typer.Option("--figure", help="Also write the median curves of every "
                                                   "network to this PNG.")] = None,
) -> None:
    """Every figure docs/results.md quotes for a curves experiment (Q-tips), from its report JSON: medians,
    per-seed numbers, ResNet-44's stagnation and the verdict per Nonlocal network."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if figure is not None and figure.suffix.lower() != ".png":
        raise InputError(f"--figure {figure}: must end in .png")
    nets = load(path)
    typer.echo(summary_text(nets), nl=False)
    if figure is not None:
        doc_title = path.stem
        plot_medians(nets, f"{doc_title}: median over seeds", figure)
        typer.echo(f"wrote {figure}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors are one line on stderr and exit status 2."""
    run_app(app, argv, "python -m experiments")


if __name__ == "__main__":
    main()
