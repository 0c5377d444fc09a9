"""ENet (Paszke et al., 2016, arXiv:1606.02147), the smallest CamVid anchor, as a reference segmenter.

It is not a Nonlocal Hamiltonian network: it is here so that the anchors' published CamVid numbers,
which are on a test split we do not have, can be set against a run of one of them on our own
held-out drives with our recipe (docs/design.md §2.5). Written from the paper's Table 1 and Figure 2:

- initial block: a 3x3 stride-2 conv to 13 channels beside a 2x2 max pool of the frame (16 channels);
- bottlenecks: 1x1 projection to a quarter of the input channels (2x2 stride 2 when downsampling), a
  main conv (3x3, dilated 3x3, 5x1 then 1x5, or a 3x3 stride-2 transposed conv when upsampling), a 1x1
  expansion, spatial dropout, added to the shortcut (max pooling with zero-padded channels when
  downsampling; a 1x1 conv and max unpooling with the encoder's indices when upsampling); BN and PReLU
  after each conv but the expansion (BN only), PReLU after the sum;
- stages: 1 (64 channels at 1/4, dropout 0.01), 2 and 3 (128 at 1/8 with dilations 2, 4, 8, 16 and
  asymmetric 5x5, dropout 0.1), 4 and 5 (decoder, 64 at 1/4 and 16 at 1/2), a 3x3 stride-2 transposed
  conv to the class logits.

Where the paper is silent: the bottlenecks that change resolution project to a quarter of their *input*
channels (as common re-implementations do; the authors' Torch code takes a quarter of the output:
16 instead of 4 inner channels in bottleneck 1.0, 4 instead of 16 in 5.0; the totals differ by under 1%).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_prelu(c_in: int, c_out: int, kernel: int | tuple[int, int], stride: int = 1,
                   padding: int | tuple[int, int] = 0, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.PReLU(c_out))


class InitialBlock(nn.Module):
    """cat(3x3 stride-2 conv of the frame, 2x2 max pool of the frame) → BN → PReLU: 16 channels at 1/2."""

    def __init__(self, in_channels: int = 3, out_channels: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(torch.cat((self.conv(x), F.max_pool2d(x, 2, ceil_mode=True)), dim=1)))


class Bottleneck(nn.Module):
    """A regular, dilated or asymmetric bottleneck: x + dropout(1x1 → main conv → 1x1), then PReLU."""

    def __init__(self, channels: int, dilation: int = 1, asymmetric: bool = False, dropout: float = 0.1) -> None:
        super().__init__()
        inner = channels // 4
        if asymmetric:
            main: list[nn.Module] = [_conv_bn_prelu(inner, inner, (5, 1), padding=(2, 0)),
                                     _conv_bn_prelu(inner, inner, (1, 5), padding=(0, 2))]
        else:
            main = [_conv_bn_prelu(inner, inner, 3, padding=dilation, dilation=dilation)]
        self.branch = nn.Sequential(_conv_bn_prelu(channels, inner, 1), *main,
                                    nn.Conv2d(inner, channels, 1, bias=False), nn.BatchNorm2d(channels),
                                    nn.Dropout2d(dropout))
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.branch(x))


class DownsamplingBottleneck(nn.Module):
    """Half the resolution: max pool (indices kept for the decoder) with zero channels added, plus the
    branch 2x2 stride-2 conv → 3x3 conv → 1x1 conv → dropout; then PReLU."""

    def __init__(self, c_in: int, c_out: int, dropout: float) -> None:
        super().__init__()
        inner = c_in // 4
        self.extra = c_out - c_in
        self.branch = nn.Sequential(_conv_bn_prelu(c_in, inner, 2, stride=2), _conv_bn_prelu(inner, inner, 3, padding=1),
                                    nn.Conv2d(inner, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.Dropout2d(dropout))
        self.act = nn.PReLU(c_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output, the max pool's indices)."""
        pooled, indices = F.max_pool2d(x, 2, return_indices=True)
        shortcut = F.pad(pooled, (0, 0, 0, 0, 0, self.extra))
        return self.act(shortcut + self.branch(x)), indices


class UpsamplingBottleneck(nn.Module):
    """Twice the resolution: 1x1 conv → max unpool with the encoder's indices, plus the branch
    1x1 conv → 3x3 stride-2 transposed conv (the paper's full convolution) → 1x1 conv → dropout; then PReLU."""

    def __init__(self, c_in: int, c_out: int, dropout: float) -> None:
        super().__init__()
        inner = c_in // 4
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.project = _conv_bn_prelu(c_in, inner, 1)
        self.up = nn.ConvTranspose2d(inner, inner, 3, 2, 1, output_padding=1, bias=False)  # exactly 2x
        self.up_act = nn.Sequential(nn.BatchNorm2d(inner), nn.PReLU(inner))
        self.expand = nn.Sequential(nn.Conv2d(inner, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.Dropout2d(dropout))
        self.act = nn.PReLU(c_out)

    def forward(self, x: torch.Tensor, indices: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """``indices`` and ``size`` (H, W): the matching downsampling's pool indices and input size."""
        shortcut = F.max_unpool2d(self.shortcut(x), indices, 2, output_size=size)
        branch = self.up(self.project(x))  # an odd size: its last row or column is zero before BN
        branch = self.up_act(F.pad(branch, (0, size[1] - branch.shape[-1], 0, size[0] - branch.shape[-2])))
        return self.act(shortcut + self.expand(branch))


def _stage(channels: int, dropout: float) -> nn.Sequential:
    """Bottlenecks x.1–x.8 of stages 2 and 3: regular, dilated 2, asymmetric 5, dilated 4, regular,
    dilated 8, asymmetric 5, dilated 16."""
    plan = [(1, False), (2, False), (1, True), (4, False), (1, False), (8, False), (1, True), (16, False)]
    return nn.Sequential(*(Bottleneck(channels, d, a, dropout) for d, a in plan))


class ENet(nn.Module):
    """ENet for ``num_classes``: logits at the input's size (any height and width)."""

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.initial = InitialBlock(in_channels, 16)
        self.down1 = DownsamplingBottleneck(16, 64, dropout=0.01)
        self.stage1 = nn.Sequential(*(Bottleneck(64, dropout=0.01) for _ in range(4)))
        self.down2 = DownsamplingBottleneck(64, 128, dropout=0.1)
        self.stage2 = _stage(128, 0.1)
        self.stage3 = _stage(128, 0.1)
        self.up4 = UpsamplingBottleneck(128, 64, dropout=0.1)
        self.stage4 = nn.Sequential(Bottleneck(64), Bottleneck(64))
        self.up5 = UpsamplingBottleneck(64, 16, dropout=0.1)
        self.stage5 = Bottleneck(16)
        self.classifier = nn.ConvTranspose2d(16, num_classes, 3, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0 = self.initial(x)
        y1, idx1 = self.down1(y0)
        y1 = self.stage1(y1)
        y2, idx2 = self.down2(y1)
        y = self.stage3(self.stage2(y2))
        y = self.stage4(self.up4(y, idx2, y1.shape[-2:]))
        y = self.stage5(self.up5(y, idx1, y0.shape[-2:]))
        return self.classifier(y, output_size=x.shape[-2:])
