"""``ModelConfig``: everything that defines an architecture, validated in one place, and ``build_model``.

Every rule an architecture must satisfy is checked by ``ModelConfig`` itself when it is made;
a broken rule raises :class:`~nlseg.errors.InputError` naming the field (``param``), which the
command line shows as the flag that sets it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from torch import nn

from nlseg.errors import InputError
from nlseg.nn.baselines import BASELINES
from nlseg.nn.blocks import BLOCKS
from nlseg.nn.enet import ENet
from nlseg.nn.network import HamiltonianNet
from nlseg.nn.nonlocal_block import NonlocalConfig
from nlseg.nn.presets import LAYOUTS, PRESETS
from nlseg.nn.realtime import DECODERS, RealtimeSegmenter, unit_dilations
from nlseg.ops.omega import EULER_GAMMA, KERNELS, KernelParams, check_kernel, check_log_gamma

# Reference segmenters: published networks run on our data and recipe, not Nonlocal Hamiltonian networks.
REFERENCE_SEGMENTERS: dict[str, type[nn.Module]] = {"enet": ENet}
ARCHITECTURES: tuple[str, ...] = (*BLOCKS, *BASELINES, *REFERENCE_SEGMENTERS)
TASKS: tuple[str, ...] = ("classify", "segment")

# Names of the nonlocal operators besides the kernel names (docs/design.md §2.3): "diffusion" is 𝓛 (4.1),
# "none" the plain network.
NONLOCAL_ALIASES: dict[str, str | None] = {"none": None, "diffusion": "dot"}
NONLOCAL_CHOICES: tuple[str, ...] = ("none", "diffusion", *(k for k in KERNELS if k != "dot"))


def nonlocal_kernel(name: str | None) -> str | None:
    """The pairwise kernel an operator name means: 'diffusion' → 'dot', 'none' → None, kernels as they are."""
    if name is None or name in KERNELS:
        return name
    if name in NONLOCAL_ALIASES:
        return NONLOCAL_ALIASES[name]
    raise InputError(f"unknown nonlocal operator {name!r}; expected one of {', '.join(NONLOCAL_CHOICES)}",
                     param="nonlocal_kernel")


def _positive_ints(values: tuple[int, ...], field: str) -> None:
    if not values or any(not isinstance(v, int) or v <= 0 for v in values):
        raise InputError(f"expected positive integers, got {values}", param=field)


@dataclass(frozen=True)
class ModelConfig:
    """An architecture: block type or baseline, Units, Nonlocal Blocks and the dataset's head.

    ``nonlocal_kernel`` is None for the plain network, else a kernel of :mod:`nlseg.ops`.
    ``log_gamma`` is the constant term γ of the log kernel, c(−2λ log‖·‖ − γ): Euler's γ as
    (4.8) reads, λγ as the thesis authors' code computes (docs/design.md §6).
    ``layout`` is ``thesis`` (§4.4) or ``realtime`` (:class:`RealtimeSegmenter`, segmentation);
    ``decoder`` is the real-time layout's decoder, ``linear`` or ``refine``; ``output_stride`` its
    coarsest Unit stride (None: each transition halves the resolution; 16 with four Units keeps the
    last Unit at 1/16 with dilated convolutions).
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
    log_gamma: float = EULER_GAMMA
    decoder: str = "linear"
    output_stride: int | None = None

    def __post_init__(self) -> None:
        """Check every rule of an architecture; InputError naming the field that breaks one."""
        if self.arch not in ARCHITECTURES:
            raise InputError(f"unknown architecture {self.arch!r}; expected one of {', '.join(ARCHITECTURES)}",
                             param="arch")
        if self.layout not in LAYOUTS:
            raise InputError(f"unknown layout {self.layout!r}; expected one of {', '.join(LAYOUTS)}", param="layout")
        if self.task not in TASKS:
            raise InputError(f"unknown task {self.task!r}; expected one of {', '.join(TASKS)}", param="task")
        for field in ("num_classes", "in_channels"):
            if getattr(self, field) < 1:
                raise InputError(f"need at least 1, got {getattr(self, field)}", param=field)
        _positive_ints(tuple(self.image_size), "image_size")
        if len(self.image_size) != 2:
            raise InputError(f"expected (height, width), got {tuple(self.image_size)}", param="image_size")
        if self.decoder not in DECODERS:
            raise InputError(f"unknown decoder {self.decoder!r}; expected one of {', '.join(DECODERS)}", param="decoder")
        if self.decoder != "linear" and self.layout != "realtime":
            raise InputError(f"the {self.decoder} decoder is the realtime layout's; this is the {self.layout} layout",
                             param="decoder")
        if self.output_stride is not None:
            if self.layout != "realtime":
                raise InputError(f"the output stride is the realtime layout's; this is the {self.layout} layout",
                                 param="output_stride")
            try:
                unit_dilations(len(self.channels), self.output_stride)
            except ValueError as exc:
                raise InputError(str(exc), param="output_stride") from None
        if self.layout != "thesis":
            if self.task != "segment":
                raise InputError(f"the {self.layout} layout is a segmenter; this is a {self.task} network",
                                 param="layout")
            if self.arch not in BLOCKS:
                raise InputError(f"the {self.layout} layout needs a {', '.join(BLOCKS)} block, not {self.arch}",
                                 param="arch")
        if self.arch in REFERENCE_SEGMENTERS and self.task != "segment":
            raise InputError(f"{self.arch} is a segmenter; this is a {self.task} network", param="arch")
        if self.nonlocal_kernel is not None:
            if self.arch in BASELINES or self.arch in REFERENCE_SEGMENTERS:
                raise InputError(f"{self.arch} is a baseline without Nonlocal Blocks; use none", param="nonlocal_kernel")
            if self.nonlocal_kernel not in KERNELS:
                raise InputError(f"unknown kernel {self.nonlocal_kernel!r}; expected one of {', '.join(KERNELS)}",
                                 param="nonlocal_kernel")
            try:
                check_kernel(self.nonlocal_kernel, self.s, self.n)
            except ValueError as exc:
                raise InputError(str(exc), param="s") from None
        try:
            check_log_gamma(self.log_gamma)
        except ValueError as exc:
            raise InputError(str(exc), param="log_gamma") from None
        if self.log_gamma != EULER_GAMMA and self.nonlocal_kernel != "log":
            raise InputError(f"log_gamma is the constant of the log kernel; this network's nonlocal kernel is "
                             f"{self.nonlocal_kernel or 'none'}", param="log_gamma")
        if self.stages < 1:
            raise InputError(f"a Nonlocal Block needs at least 1 stage, got {self.stages}", param="stages")
        if self.pool < 0:
            raise InputError(f"need 0 (no subsampling) or a positive pool size, got {self.pool}", param="pool")
        if not self.h > 0:
            raise InputError(f"the step size must be positive, got {self.h}", param="h")
        if self.arch in BLOCKS:
            _positive_ints(tuple(self.blocks), "blocks")
            _positive_ints(tuple(self.channels), "channels")
            if len(self.blocks) != len(self.channels):
                raise InputError(f"blocks {_dashed(self.blocks)} and channels {_dashed(self.channels)} must name "
                                 "the same number of Units", param="blocks")
            if self.arch == "hamiltonian" and any(c % 2 for c in self.channels):
                raise InputError(f"Hamiltonian Blocks split channels in halves; all must be even, got "
                                 f"{_dashed(self.channels)}", param="channels")

    @classmethod
    def from_preset(cls, dataset: str, **overrides: Any) -> "ModelConfig":
        """The thesis architecture for ``dataset``, its ``layout`` and ``overrides`` (None values are ignored).

        ``nonlocal_kernel`` also takes the operator names 'diffusion' (𝓛, the dot kernel) and 'none'.
        """
        if dataset not in PRESETS:
            raise InputError(f"unknown dataset {dataset!r}; expected one of {', '.join(PRESETS)}", param="dataset")
        p = PRESETS[dataset]
        layout = overrides.get("layout") or "thesis"
        if layout not in LAYOUTS:
            raise InputError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}", param="layout")
        if layout != "thesis" and p.task != "segment":
            raise InputError(f"the {layout} layout is a segmenter; dataset {dataset} is a {p.task} set",
                             param="layout")
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"unknown model setting(s) {', '.join(sorted(unknown))}", param=sorted(unknown)[0])
        chosen = {k: v for k, v in overrides.items() if v is not None}
        if "nonlocal_kernel" in chosen:
            chosen["nonlocal_kernel"] = nonlocal_kernel(chosen["nonlocal_kernel"])
        for key in ("blocks", "channels", "image_size"):
            if key in chosen:
                chosen[key] = tuple(chosen[key])
        base = {"task": p.task, "num_classes": p.num_classes, "image_size": p.image_size,
                "in_channels": p.in_channels, "head_pool": p.head_pool, "pool": p.nonlocal_pool}
        return cls(**{**base, **LAYOUTS[layout], **chosen})

    @property
    def nonlocal_config(self) -> NonlocalConfig | None:
        if self.nonlocal_kernel is None:
            return None
        return NonlocalConfig(KernelParams(self.nonlocal_kernel, self.s, self.lam, self.n, self.log_gamma),
                              self.stages, self.pool)

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


def _dashed(values: tuple[int, ...]) -> str:
    return "-".join(map(str, values))


def build_model(config: ModelConfig) -> nn.Module:
    """The network described by ``config`` (validated when it was made), He-initialised (a reference
    segmenter keeps PyTorch's default initialisation)."""
    common = {"num_classes": config.num_classes, "in_channels": config.in_channels}
    if config.arch in REFERENCE_SEGMENTERS:
        return REFERENCE_SEGMENTERS[config.arch](**common)
    if config.arch in BASELINES:
        cls, depth = BASELINES[config.arch]
        return cls(depth, task=config.task, **common)
    blocks = {"block": config.arch, "blocks": config.blocks, "channels": config.channels, "h": config.h,
              "nonlocal_config": config.nonlocal_config, **common}
    if config.layout == "realtime":
        return RealtimeSegmenter(decoder=config.decoder, output_stride=config.output_stride, **blocks)
    return HamiltonianNet(task=config.task, image_size=config.image_size, head_pool=config.head_pool, **blocks)


def create_model(preset: str = "bdd100k", **overrides: Any) -> nn.Module:
    """A plain ``nn.Module``: the thesis architecture for dataset ``preset`` with ``overrides``.

    ``overrides`` are :class:`ModelConfig` fields, e.g. ``create_model("cifar10", nonlocal_kernel="frac",
    s=0.5)`` or ``create_model("bdd100k", layout="realtime")``; InputError naming a bad field.
    """
    return build_model(ModelConfig.from_preset(preset, **overrides))
