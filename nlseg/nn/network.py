"""The (Nonlocal) Hamiltonian network of thesis §4.4, Figure 4.1 (docs/design.md §2.2).

stem (3x3 conv → BN → ReLU) → Unit 1 → transition → Unit 2 → transition → Unit 3 → head.
A Unit is m normal Blocks with one Nonlocal Block after the 2nd (m > 6: before the last).
Classification: transitions are 2x2 average pooling then 1x1 conv + ReLU, the head is average
pooling, flatten, dense. Segmentation: no pooling anywhere, the head is a 1x1 conv.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from nlseg.nn.blocks import BLOCKS, TwoStepBlock
from nlseg.nn.init import he_init
from nlseg.nn.nonlocal_block import NonlocalBlock, NonlocalConfig


class Unit(nn.Module):
    """Blocks at one resolution and channel count; two-step schemes restart after a non-block layer."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prev: torch.Tensor | None = None
        for layer in self.layers:
            if isinstance(layer, TwoStepBlock):
                x, prev = layer(x, prev), x
            else:
                x, prev = layer(x), None
        return x


def nonlocal_position(num_blocks: int) -> int:
    """Index of the normal Block the Nonlocal Block follows: the 2nd, or for m > 6 the (m−1)-th (§5.3.4)."""
    return min(2, num_blocks) if num_blocks <= 6 else num_blocks - 1


def make_unit(block: str, channels: int, num_blocks: int, h: float, nonlocal_config: NonlocalConfig | None,
              dilation: int = 1) -> Unit:
    """m Blocks of type ``block`` (3x3 convolutions dilated by ``dilation``) with the Nonlocal Block inserted
    at :func:`nonlocal_position`."""
    block_cls = BLOCKS[block]
    layers: list[nn.Module] = [block_cls(channels, h=h, dilation=dilation) for _ in range(num_blocks)]
    if nonlocal_config is not None:
        layers.insert(nonlocal_position(num_blocks), NonlocalBlock(channels, nonlocal_config, h=h))
    return Unit(layers)


class Transition(nn.Sequential):
    """Between Units: optional 2x2 average pooling, then 1x1 conv with ReLU to raise the channels."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool) -> None:
        layers: list[nn.Module] = [nn.AvgPool2d(2)] if downsample else []
        layers += [nn.Conv2d(in_channels, out_channels, 1), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class ClassifierHead(nn.Sequential):
    """Average pooling with ``pool``, flatten, dense layer (thesis §4.4; not global pooling)."""

    def __init__(self, channels: int, grid: tuple[int, int], pool: int, num_classes: int) -> None:
        gh, gw = (grid[0] // pool, grid[1] // pool) if pool > 1 else grid
        if gh < 1 or gw < 1:
            raise ValueError(f"head pool {pool} is larger than the final {grid[0]}x{grid[1]} feature map")
        layers: list[nn.Module] = [nn.AvgPool2d(pool)] if pool > 1 else []
        layers += [nn.Flatten(), nn.Linear(channels * gh * gw, num_classes)]
        super().__init__(*layers)


class SegmentationHead(nn.Sequential):
    """1x1 conv to the class count: per-pixel logits at the input resolution."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__(nn.Conv2d(channels, num_classes, 1))


class HamiltonianNet(nn.Module):
    """Stem, Units of Hamiltonian / Leapfrog / Midpoint Blocks (with Nonlocal Blocks), head.

    Args:
        block: ``hamiltonian`` | ``leapfrog`` | ``midpoint``.
        blocks: Blocks per Unit, e.g. (6, 6, 6).
        channels: channels per Unit, e.g. (32, 64, 112); the stem outputs ``channels[0]``.
        num_classes: classes of the head.
        task: ``classify`` or ``segment``.
        image_size: (H, W) the classifier head is sized for (segmenters take any size).
        head_pool: average-pooling size before the dense layer (classification).
        h: step size of every Block and Nonlocal Block.
        nonlocal_config: Nonlocal Block settings, or None for the plain network.
        in_channels: input channels.
    """

    def __init__(
        self,
        *,
        block: str = "hamiltonian",
        blocks: Sequence[int] = (6, 6, 6),
        channels: Sequence[int] = (32, 64, 112),
        num_classes: int = 10,
        task: str = "classify",
        image_size: tuple[int, int] = (32, 32),
        head_pool: int = 2,
        h: float = 0.06,
        nonlocal_config: NonlocalConfig | None = None,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; expected one of {', '.join(BLOCKS)}")
        if len(blocks) != len(channels) or not blocks:
            raise ValueError(f"blocks {tuple(blocks)} and channels {tuple(channels)} must name the same number of Units")
        if task not in ("classify", "segment"):
            raise ValueError(f"unknown task {task!r}; expected 'classify' or 'segment'")
        downsample = task == "classify"
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        )
        self.units = nn.ModuleList(make_unit(block, c, m, h, nonlocal_config) for m, c in zip(blocks, channels))
        self.transitions = nn.ModuleList(
            Transition(c_in, c_out, downsample) for c_in, c_out in zip(channels[:-1], channels[1:])
        )
        if task == "classify":
            factor = 2 ** (len(channels) - 1)
            grid = (image_size[0] // factor, image_size[1] // factor)
            self.head: nn.Module = ClassifierHead(channels[-1], grid, head_pool, num_classes)
        else:
            self.head = SegmentationHead(channels[-1], num_classes)
        he_init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The output of the last Unit."""
        x = self.stem(x)
        for i, unit in enumerate(self.units):
            if i > 0:
                x = self.transitions[i - 1](x)
            x = unit(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
