"""A real-time Nonlocal Hamiltonian segmenter for full-size dashcam frames.

The thesis's segmenter keeps full resolution everywhere (160x90 input, no pooling), which
costs about 14 GMACs per frame. This variant keeps its parts — Hamiltonian Blocks (2.17)
in Units, one Nonlocal Block per Unit (4.1)–(4.8), 1x1 transitions — but

- a strided stem (two 3x3 stride-2 convs) brings the frame to 1/4 resolution,
- the transitions average-pool by 2 as in the classifier (1/4, 1/8, 1/16),
- Nonlocal Blocks sit only in the low-resolution Units (by default Units 2 and 3),
- a light decoder adds 1x1 projections of every Unit's output from coarse to fine
  (bilinear upsampling), maps them to class logits at 1/4 and upsamples them to the input size
  with :func:`upsample_logits` (``coarse=True`` returns the 1/4 logits: the trainer upsamples them
  to its label grid inside the loss, :func:`nlseg.train.loss.segmenter_loss`).

``decoder="refine"`` adds, after each coarse-to-fine sum, a depthwise 3x3 conv, a 1x1 conv, BN and
ReLU, so coarse context and fine detail mix non-linearly and over a 3x3 neighbourhood before the
classifier (``linear``, the default: the sum of projections alone, as the default weights have).

``output_stride`` (default 4·2^(Units−1), 32 for four Units) caps the downsampling: a Unit that would
sit at a finer stride than that stays at it, its transition does not pool, and its Blocks' 3x3
convolutions are dilated by the factor it skipped (as DeepLab keeps its last stages at 1/16 or 1/8),
so thin objects keep more pixels in the deep Units at the same parameters and more multiply-adds.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nlseg.nn.init import he_init
from nlseg.nn.network import Transition, make_unit
from nlseg.nn.nonlocal_block import NonlocalConfig


DECODERS: tuple[str, ...] = ("linear", "refine")
STEM_STRIDE = 4  # the stem's two stride-2 convolutions


def unit_strides(units: int) -> tuple[int, ...]:
    """Each Unit's stride without a cap: the stem's 4, then ×2 per transition."""
    return tuple(STEM_STRIDE * 2**i for i in range(units))


def unit_dilations(units: int, output_stride: int | None) -> tuple[int, ...]:
    """Each Unit's dilation under ``output_stride``: how much coarser it would be (1 where it is not);
    ValueError unless the cap is one of :func:`unit_strides`."""
    strides = unit_strides(units)
    if output_stride is None:
        return (1,) * units
    if output_stride not in strides:
        raise ValueError(f"output stride {output_stride}: expected one of {', '.join(map(str, strides))} "
                         f"for {units} Units")
    return tuple(max(1, s // output_stride) for s in strides)


def upsample_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The class logits at ``size`` (H, W): bilinear, ``align_corners=False`` (the network's last step)."""
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _separable_refine(channels: int) -> nn.Sequential:
    """Depthwise 3x3, pointwise 1x1, BN, ReLU: the ``refine`` decoder's step after each fusion."""
    return nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False),
                         nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class RealtimeSegmenter(nn.Module):
    """Strided stem, downsampling Units with Nonlocal Blocks at low resolution, light decoder.

    Args:
        block: ``hamiltonian`` | ``leapfrog`` | ``midpoint``.
        blocks: Blocks per Unit.
        channels: channels per Unit.
        num_classes: output classes.
        h: step size of the Blocks and Nonlocal Blocks.
        nonlocal_config: Nonlocal Block settings, or None for none.
        nonlocal_units: how many of the last (lowest-resolution) Units get a Nonlocal Block.
        decoder_channels: width of the decoder's projections.
        decoder: ``linear`` (sum of projections) or ``refine`` (a separable 3x3 step after each sum).
        output_stride: the coarsest stride of any Unit (a power of two times 4; None: no cap).
        in_channels: input channels.
    """

    def __init__(
        self,
        *,
        block: str = "hamiltonian",
        blocks: Sequence[int] = (1, 1, 2),
        channels: Sequence[int] = (16, 32, 64),
        num_classes: int = 19,
        h: float = 0.06,
        nonlocal_config: NonlocalConfig | None = None,
        nonlocal_units: int = 2,
        decoder_channels: int = 32,
        decoder: str = "linear",
        output_stride: int | None = None,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"decoder {decoder!r}: expected one of {', '.join(DECODERS)}")
        if len(blocks) != len(channels) or not blocks:
            raise ValueError(f"blocks {tuple(blocks)} and channels {tuple(channels)} must name the same number of Units")
        dilations = unit_dilations(len(channels), output_stride)
        self.stem = nn.Sequential(_conv_bn_relu(in_channels, channels[0], 2), _conv_bn_relu(channels[0], channels[0], 2))
        first_nonlocal = len(channels) - nonlocal_units
        self.units = nn.ModuleList(
            make_unit(block, c, m, h, nonlocal_config if i >= first_nonlocal else None, dilation=d)
            for i, (m, c, d) in enumerate(zip(blocks, channels, dilations))
        )
        self.transitions = nn.ModuleList(Transition(a, b, downsample=d == 1)
                                         for a, b, d in zip(channels[:-1], channels[1:], dilations[1:]))
        self.lateral = nn.ModuleList(nn.Conv2d(c, decoder_channels, 1) for c in channels)
        self.refine = nn.ModuleList(_separable_refine(decoder_channels) for _ in channels[:-1]) if decoder == "refine" \
            else None
        self.classifier = nn.Sequential(nn.BatchNorm2d(decoder_channels), nn.ReLU(inplace=True),
                                        nn.Conv2d(decoder_channels, num_classes, 1))
        he_init(self)

    @property
    def output_bias(self) -> nn.Parameter:
        """The classifier's per-class bias: a constant added to every pixel's logits."""
        return self.classifier[-1].bias

    def forward(self, x: torch.Tensor, coarse: bool = False) -> torch.Tensor:
        """Class logits at the input's size, or with ``coarse`` at the decoder's 1/4 resolution."""
        features = []
        y = self.stem(x)
        for i, unit in enumerate(self.units):
            if i > 0:
                y = self.transitions[i - 1](y)
            y = unit(y)
            features.append(y)
        decoded = self.lateral[-1](features[-1])
        for j, (lateral, feature) in enumerate(zip(reversed(self.lateral[:-1]), reversed(features[:-1]))):
            decoded = lateral(feature) + F.interpolate(decoded, size=feature.shape[-2:], mode="bilinear", align_corners=False)
            if self.refine is not None:
                decoded = self.refine[j](decoded)
        logits = self.classifier(decoded)
        return logits if coarse else upsample_logits(logits, tuple(x.shape[-2:]))
