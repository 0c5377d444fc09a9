"""Parameters and multiply-adds per layer, counted two ways (thesis Tables 6.1, 6.2).

``macs_executed`` is what nlseg actually runs: convolutions, dense layers and matrix products
as dispatched (the dot kernel in its associative form), from PyTorch's FlopCounterMode.
``macs`` counts like the thesis: the pairwise part of each Nonlocal Block as if the N×M
matrix were formed (ω once, then one product per stage; :meth:`NonlocalBlock.dense_pairwise_macs`).
The forward pass runs on the meta device, so counting a 720p segmenter costs nothing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nlseg.nn.network import Unit
from nlseg.nn.nonlocal_block import NonlocalBlock


@dataclass(frozen=True)
class LayerCost:
    """One row of the summary table."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    macs_executed: int


@dataclass(frozen=True)
class ModelCost:
    """Totals and per-layer rows for one input shape."""

    input_shape: tuple[int, ...]
    params: int
    macs: int
    macs_executed: int
    layers: list[LayerCost] = field(default_factory=list)


def _is_container(module: nn.Module) -> bool:
    """ModuleLists, Units and plain Sequentials of composite layers are expanded into rows."""
    if isinstance(module, (nn.ModuleList, Unit)):
        return True
    children = list(module.children())
    return type(module) is nn.Sequential and bool(children) and all(any(True for _ in c.children()) for c in children)


def _main_shape(output: torch.Tensor | tuple) -> tuple[int, ...]:
    """A layer's output shape; for a layer that also returns side outputs (ENet's pool indices), its first."""
    return tuple((output[0] if isinstance(output, tuple) else output).shape)


def report_layers(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The (qualified name, module) rows of a summary: top-level layers, containers expanded."""
    rows: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        qualified = f"{prefix}{name}"
        if _is_container(child):
            rows += report_layers(child, qualified + ".")
        else:
            rows.append((qualified, child))
    return rows


def model_cost(model: nn.Module, input_shape: tuple[int, ...]) -> ModelCost:
    """Count parameters and multiply-adds of ``model`` on an input of ``input_shape`` (B, C, H, W)."""
    meta = copy.deepcopy(model).to("meta").eval()
    rows = report_layers(meta)
    shapes: dict[str, tuple[int, ...]] = {}
    dense_pairwise: dict[str, int] = {}
    hooks = []
    for name, module in rows:
        hooks.append(module.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, _main_shape(o))))
    for name, module in meta.named_modules():
        if isinstance(module, NonlocalBlock):

            def record(m: NonlocalBlock, inputs: tuple[torch.Tensor], out: torch.Tensor, name: str = name) -> None:
                b, _, height, width = inputs[0].shape
                dense_pairwise[name] = dense_pairwise.get(name, 0) + b * m.dense_pairwise_macs(height, width)

            hooks.append(module.register_forward_hook(record))
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            meta(torch.empty(input_shape, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()

    root = type(meta).__name__
    flops = {key: sum(ops.values()) for key, ops in counter.get_flop_counts().items()}

    def executed(name: str) -> int:
        return flops.get(f"{root}.{name}", 0) // 2

    def thesis_count(name: str) -> int:
        """Executed MACs under ``name`` with each Nonlocal Block's pairwise part counted densely."""
        total = executed(name)
        for block, dense in dense_pairwise.items():
            if block == name or block.startswith(name + "."):
                total += dense - executed(f"{block}.pairwise")
        return total

    layers = [
        LayerCost(
            name=name,
            kind=type(module).__name__,
            output_shape=shapes.get(name, ()),
            params=sum(p.numel() for p in module.parameters()),
            macs=thesis_count(name),
            macs_executed=executed(name),
        )
        for name, module in rows
    ]
    total_executed = counter.get_total_flops() // 2
    total_dense = total_executed + sum(dense - executed(f"{b}.pairwise") for b, dense in dense_pairwise.items())
    return ModelCost(
        input_shape=tuple(input_shape),
        params=sum(p.numel() for p in model.parameters()),
        macs=total_dense,
        macs_executed=total_executed,
        layers=layers,
    )
