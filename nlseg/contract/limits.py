"""The input sizes a network accepts: at least its total stride on each side, at most ``MAX_PIXELS``.

Checked before anything is allocated, by every entry that takes a size (``infer --imgsz``,
``profile --shape``, ``check --shape``, ``export --size``, ``Segmenter.predict(imgsz=)``,
``profile_backend(shape=)``), so a size that cannot work is one line, not a traceback or an
out-of-memory kill.
"""

from __future__ import annotations

from collections.abc import Sequence

from nlseg.errors import InputError
from nlseg.nn.config import ModelConfig

#: The largest H x W a model is run at: 16,777,216 pixels (4096x4096, twice a 4K UHD frame).
#: The thesis segmenter keeps 32+ float32 channels at full resolution (≥ 2 GiB per activation here).
MAX_PIXELS = 4096 * 4096
#: The largest side, so that a 1 x 10^7 strip is refused too.
MAX_SIDE = 8192


def total_stride(config: ModelConfig) -> int:
    """How many input pixels one pixel of the network's coarsest feature map covers, per side.

    The realtime layout's stem halves twice and each Transition between Units halves again
    (4 · 2^(Units−1)); thesis and baseline segmenters keep full resolution (1). A classifier's
    size is fixed by its dense head and checked elsewhere.
    """
    if config.task == "segment" and config.layout == "realtime":
        return 4 * 2 ** (len(config.channels) - 1)
    return 1


def parse_shape(shape: str | Sequence[int], param: str) -> tuple[int, ...]:
    """'1x3x90x160' or (1, 3, 90, 160) -> a tuple of ints; InputError naming ``param`` otherwise."""
    parts = shape.lower().split("x") if isinstance(shape, str) else list(shape)
    try:
        values = tuple(int(v) for v in parts)
    except (TypeError, ValueError):
        raise InputError(f"expected integers such as 1x3x90x160 or (1, 3, 90, 160), got {shape!r}", param=param) from None
    if not values or any(v <= 0 for v in values):
        raise InputError(f"expected positive integers, got {shape!r}", param=param)
    return values


def check_size(size: tuple[int, int], min_side: int, param: str) -> tuple[int, int]:
    """``size`` (H, W) if a network with total stride ``min_side`` can run at it; InputError naming ``param``."""
    h, w = size
    if h < min_side or w < min_side:
        raise InputError(f"{h}x{w} is too small: this network downsamples by {min_side}, so each side "
                         f"must be at least {min_side}", param=param)
    if h > MAX_SIDE or w > MAX_SIDE or h * w > MAX_PIXELS:
        raise InputError(f"{h}x{w} is too large: at most {MAX_SIDE} per side and {MAX_PIXELS:,} pixels "
                         "(4096x4096)", param=param)
    return size
