"""Baselines of the thesis (docs/design.md §2.5), as in the widely used Keras CIFAR-10 ResNet example.

ResNet v1: basic blocks, depth 6n+2, 16-32-64 channels, 1x1 projection shortcuts when the
shape changes (ResNet-44/110/164: n = 7, 18, 27). PreResNet (ResNet v2): pre-activation
bottleneck blocks, depth 9n+2, 64-128-256 output channels (PreResNet-20: n = 2).
Classification: stride-2 stages, global average pooling (the Keras example's 8x8 pool on
CIFAR; global on STL-10 and Q-tips, which matches the thesis's parameter counts), dense.
Segmentation (as for BDD100K in the thesis): no downsampling, a 1x1 conv head.
"""

from __future__ import annotations

import torch
from torch import nn

from nlseg.nn.init import he_init
from nlseg.nn.network import SegmentationHead


def conv_bn(c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """Conv (with bias, as Keras) → BN → optional ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2), nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def bn_conv(c_in: int, c_out: int, kernel_size: int, stride: int = 1, preact: bool = True) -> nn.Sequential:
    """Pre-activation layer: optional BN → ReLU, then conv (with bias)."""
    layers: list[nn.Module] = [nn.BatchNorm2d(c_in), nn.ReLU(inplace=True)] if preact else []
    layers.append(nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet v1 block: relu(x' + BN(conv(relu(BN(conv(x)))))), x' a 1x1 projection when needed."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(c_in, c_out, 3, stride), conv_bn(c_out, c_out, 3, 1, relu=False))
        needs_projection = stride != 1 or c_in != c_out
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride) if needs_projection else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.shortcut(x) + self.body(x))


class PreActBottleneck(nn.Module):
    """ResNet v2 bottleneck: 1x1 → 3x3 → 1x1 pre-activation convs plus a (projected) shortcut."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, stride: int, preact: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            bn_conv(c_in, c_mid, 1, stride, preact=preact),
            bn_conv(c_mid, c_mid, 3),
            bn_conv(c_mid, c_out, 1),
        )
        needs_projection = stride != 1 or c_in != c_out
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride) if needs_projection else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.body(x)


def _head(task: str, channels: int, num_classes: int) -> nn.Module:
    if task == "classify":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))
    return SegmentationHead(channels, num_classes)


class ResNetV1(nn.Module):
    """ResNet v1 of depth 6n+2 (ResNet-44: n = 7)."""

    def __init__(
        self,
        depth: int,
        *,
        num_classes: int = 10,
        task: str = "classify",
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"ResNet v1 depth must be 6n+2, got {depth}")
        per_stage = (depth - 2) // 6
        stride = 2 if task == "classify" else 1
        self.stem = conv_bn(in_channels, 16)
        layers: list[nn.Module] = []
        c_in = 16
        for stage, c_out in enumerate((16, 32, 64)):
            for i in range(per_stage):
                layers.append(BasicBlock(c_in, c_out, stride if stage > 0 and i == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.head = _head(task, 64, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


class PreResNetV2(nn.Module):
    """Pre-activation bottleneck ResNet (v2) of depth 9n+2 (PreResNet-20: n = 2)."""

    def __init__(
        self,
        depth: int,
        *,
        num_classes: int = 10,
        task: str = "classify",
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if (depth - 2) % 9:
            raise ValueError(f"PreResNet depth must be 9n+2, got {depth}")
        per_stage = (depth - 2) // 9
        stride = 2 if task == "classify" else 1
        self.stem = conv_bn(in_channels, 16)
        layers: list[nn.Module] = []
        c_in, c_mid = 16, 16
        for stage in range(3):
            c_out = c_mid * 4 if stage == 0 else c_mid * 2
            for i in range(per_stage):
                first = i == 0
                layers.append(
                    PreActBottleneck(
                        c_in,
                        c_mid,
                        c_out,
                        stride if stage > 0 and first else 1,
                        preact=not (stage == 0 and first),
                    )
                )
                c_in = c_out
            c_mid = c_out
        self.layers = nn.Sequential(*layers)
        self.post = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(inplace=True))
        self.head = _head(task, c_in, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.post(self.layers(self.stem(x))))


BASELINES: dict[str, tuple[type[nn.Module], int]] = {
    "resnet44": (ResNetV1, 44),
    "resnet110": (ResNetV1, 110),
    "resnet164": (ResNetV1, 164),
    "preresnet20": (PreResNetV2, 20),
}
