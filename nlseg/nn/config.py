"""``ModelConfig``: everything that defines an architecture, serialisable, and ``build_model``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from torch import nn

from nlseg.nn.baselines import BASELINES
from nlseg.nn.blocks import BLOCKS
from nlseg.nn.network import HamiltonianNet
from nlseg.nn.nonlocal_block import NonlocalConfig
from nlseg.nn.presets import LAYOUTS, PRESETS
from nlseg.nn.realtime import RealtimeSegmenter

ARCHITECTURES: tuple[str, ...] = (*BLOCKS, *BASELINES)


@dataclass(frozen=True)
class ModelConfig:
    """An architecture: block type or baseline, Units, Nonlocal Blocks and the dataset's head.

    ``nonlocal_kernel`` is None for the plain network, else a kernel of :mod:`nlseg.ops`.
    ``layout`` is ``thesis`` (§4.4) or ``realtime`` (:class:`RealtimeSegmenter`, segmentation).
    """

    arch: str = "hamiltonian"
    layout: str = "thesis"
    task: str = "classify"
    num_classes: int = 10
    image_size: tuple[int, int] = (32, 32)
    in_channels: int = 3
    blocks: tuple[int, ...] = (6, 6, 6)
    channels: tuple[int, ...] = (32, 64, 112)
    h: float = 0.06
    head_pool: int = 2
    nonlocal_kernel: str | None = None
    s: float = 0.5
    stages: int = 2
    pool: int = 2
    lam: float = 0.1
    n: int = 2

    @classmethod
    def from_preset(cls, dataset: str, **overrides: Any) -> "ModelConfig":
        """The thesis architecture for ``dataset`` with ``overrides`` (None values are ignored)."""
        if dataset not in PRESETS:
            raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(PRESETS)}")
        p = PRESETS[dataset]
        layout = overrides.get("layout") or "thesis"
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        if layout != "thesis" and p.task != "segment":
            raise ValueError(f"layout {layout!r} is a segmenter; dataset {dataset!r} is {p.task}")
        base = cls(
            task=p.task,
            num_classes=p.num_classes,
            image_size=p.image_size,
            in_channels=p.in_channels,
            head_pool=p.head_pool,
            pool=p.nonlocal_pool,
        )
        base = replace(base, **LAYOUTS[layout])
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def nonlocal_config(self) -> NonlocalConfig | None:
        if self.nonlocal_kernel is None:
            return None
        return NonlocalConfig(self.nonlocal_kernel, self.s, self.stages, self.pool, self.lam, self.n)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def build_model(config: ModelConfig) -> nn.Module:
    """The network described by ``config``, He-initialised."""
    if config.arch in BASELINES:
        if config.layout != "thesis":
            raise ValueError(f"baseline {config.arch} only has the thesis layout, not {config.layout!r}")
        if config.nonlocal_kernel is not None:
            raise ValueError(f"baseline {config.arch} has no Nonlocal Blocks; use --nonlocal none")
        cls, depth = BASELINES[config.arch]
        return cls(
            depth,
            num_classes=config.num_classes,
            task=config.task,
            in_channels=config.in_channels,
        )
    if config.arch not in BLOCKS:
        raise ValueError(f"unknown architecture {config.arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    if config.layout == "realtime":
        return RealtimeSegmenter(
            block=config.arch,
            blocks=config.blocks,
            channels=config.channels,
            num_classes=config.num_classes,
            h=config.h,
            nonlocal_config=config.nonlocal_config,
            in_channels=config.in_channels,
        )
    if config.layout != "thesis":
        raise ValueError(f"unknown layout {config.layout!r}; expected one of {', '.join(LAYOUTS)}")
    return HamiltonianNet(
        block=config.arch,
        blocks=config.blocks,
        channels=config.channels,
        num_classes=config.num_classes,
        task=config.task,
        image_size=config.image_size,
        head_pool=config.head_pool,
        h=config.h,
        nonlocal_config=config.nonlocal_config,
        in_channels=config.in_channels,
    )
