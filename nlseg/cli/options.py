"""Flags shared by several commands: the model flags (declared once, added by :func:`with_model_flags`),
size parsing, and the names under which the command line shows a library parameter.

The command line only parses strings here; every rule of an architecture is checked by
:class:`~nlseg.nn.config.ModelConfig` itself, whose errors name a field that :data:`FLAGS`
turns into the flag that sets it.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, fields
from typing import Annotated, Any, Callable, Optional

import typer

from nlseg.errors import InputError
from nlseg.nn.config import ARCHITECTURES, NONLOCAL_CHOICES, ModelConfig
from nlseg.nn.presets import LAYOUTS, PRESETS
from nlseg.nn.realtime import DECODERS

# Library parameter / ModelConfig field -> the flag that sets it, where the two names differ.
FLAGS: dict[str, str] = {"arch": "--model", "nonlocal_kernel": "--nonlocal", "image_size": "--size",
                         "input_size": "--size", "precision": "--half"}

Dataset = Annotated[str, typer.Option("--dataset", help=f"Architecture preset: {', '.join(PRESETS)}.")]


@dataclass(frozen=True)
class ModelFlags:
    """The model flags as typed (None: the preset's or layout's value)."""

    model: str = "hamiltonian"
    blocks: Optional[str] = None
    channels: Optional[str] = None
    nonlocal_op: Optional[str] = None
    layout: str = "thesis"
    s: Optional[float] = None
    stages: Optional[int] = None
    pool: Optional[int] = None
    h: Optional[float] = None
    decoder: Optional[str] = None
    output_stride: Optional[int] = None

    def config(self, dataset: str, **settings: Any) -> ModelConfig:
        """The ModelConfig for preset ``dataset``; ``settings`` are further ModelConfig fields."""
        return ModelConfig.from_preset(
            dataset, layout=self.layout, arch=self.model, blocks=parse_ints(self.blocks, "--blocks"),
            channels=parse_ints(self.channels, "--channels"), nonlocal_kernel=self.nonlocal_op, s=self.s,
            stages=self.stages, pool=self.pool, h=self.h, decoder=self.decoder, output_stride=self.output_stride,
            **settings)


# The flags of ModelFlags, in the order --help lists them.
_MODEL_FLAGS: dict[str, Any] = {
    "model": Annotated[str, typer.Option("--model", help=f"Block type or baseline: {', '.join(ARCHITECTURES)}.")],
    "blocks": Annotated[Optional[str], typer.Option("--blocks", help="Blocks per Unit, e.g. 6-6-6.")],
    "channels": Annotated[Optional[str], typer.Option("--channels", help="Channels per Unit, e.g. 32-64-112.")],
    "nonlocal_op": Annotated[Optional[str], typer.Option(
        "--nonlocal", help=f"Nonlocal operator: {', '.join(NONLOCAL_CHOICES)} (default: none; realtime layout: "
                           "diffusion).")],
    "layout": Annotated[str, typer.Option(
        "--layout", help=f"Network layout: {', '.join(LAYOUTS)} (realtime: segmenters only).")],
    "s": Annotated[Optional[float], typer.Option("--s", help="Exponent s of frac / invfrac, 0 < s < 1 (default 0.5).")],
    "stages": Annotated[Optional[int], typer.Option("--stages", help="Stages per Nonlocal Block (default 2).")],
    "pool": Annotated[Optional[int], typer.Option(
        "--pool", help="Subsampling pool of the Nonlocal Block, 0 = none (default: preset).")],
    "h": Annotated[Optional[float], typer.Option("--h", help="Step size h of the Blocks (default 0.06).")],
    "decoder": Annotated[Optional[str], typer.Option(
        "--decoder", help=f"Decoder of the realtime layout: {', '.join(DECODERS)} (default linear; refine: a "
                          "separable 3x3 conv after each coarse-to-fine sum).")],
    "output_stride": Annotated[Optional[int], typer.Option(
        "--output-stride", help="Coarsest stride of the realtime layout's Units, e.g. 16: the last Unit stays at "
                                "1/16 with dilated 3x3 convolutions (default: none, 1/32 with four Units).")],
}
MODEL_FLAG_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ModelFlags))


def with_model_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the model flags to a Typer command, which receives them as ``model_flags: ModelFlags``."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "model_flags"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=_MODEL_FLAGS[name],
                               default=getattr(ModelFlags, name)) for name in MODEL_FLAG_NAMES]
    keyword_only = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        flags = ModelFlags(**{name: kwargs.pop(name) for name in MODEL_FLAG_NAMES})
        return command(**kwargs, model_flags=flags)

    wrapper.__signature__ = signature.replace(parameters=[*keyword_only, *added])  # type: ignore[attr-defined]
    return wrapper


def flag_names(**flags: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A command's own flags for library parameters, e.g. ``flag_names(dataset="DATASET")`` where the
    dataset is an argument: errors naming that parameter are shown under that name."""
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except InputError as exc:
                exc.flag = flags.get(exc.param or "", exc.flag)
                raise

        return wrapper

    return decorate


def parse_ints(text: str | None, flag: str) -> tuple[int, ...] | None:
    """'6-6-6' -> (6, 6, 6); an InputError naming ``flag`` for anything else."""
    if text is None:
        return None
    try:
        values = tuple(int(part) for part in text.split("-"))
    except ValueError:
        values = ()
    if not values or any(v <= 0 for v in values):
        raise InputError(f"{flag}: expected dash-separated positive integers such as 6-6-6, got {text!r}")
    return values


def parse_size(text: str, flag: str) -> tuple[int, ...]:
    """'90x160' -> (90, 160); '1x3x90x160' -> (1, 3, 90, 160); an InputError naming ``flag`` otherwise."""
    try:
        values = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        values = ()
    if not values or any(v <= 0 for v in values):
        raise InputError(f"{flag}: expected positive integers joined by 'x' such as 90x160, got {text!r}")
    return values


def parse_hw(text: str | None, flag: str) -> tuple[int, int] | None:
    """'90x160' -> (90, 160) (None stays None); an InputError naming ``flag`` for anything but HxW."""
    if text is None:
        return None
    size = parse_size(text, flag)
    if len(size) != 2:
        raise InputError(f"{flag}: expected HxW such as 90x160, got {text!r}")
    return size[0], size[1]

