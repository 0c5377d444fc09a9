"""The optimization profile of an engine: the min / opt / max input shapes it accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nlseg.errors import InputError
from nlseg.onnx.metadata import ModelMetadata

Shape4 = tuple[int, int, int, int]
PARAMS = {"min": "min_shape", "opt": "opt_shape", "max": "max_shape"}
_AXES = ("batch", "channels", "height", "width")


@dataclass(frozen=True)
class ProfileShapes:
    """Input shapes (B, C, H, W): the engine accepts min <= shape <= max and is tuned for opt."""

    min: Shape4
    opt: Shape4
    max: Shape4

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProfileShapes":
        def shape(key: str) -> Shape4:
            b, c, h, w = (int(v) for v in data[key])
            return (b, c, h, w)

        return cls(shape("min"), shape("opt"), shape("max"))

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """True when ``shape`` lies within min..max on every axis."""
        return len(shape) == 4 and all(lo <= v <= hi for lo, v, hi in zip(self.min, shape, self.max))

    def describe(self) -> str:
        """'1x3x90x160 .. 4x3x360x640' (or one shape for a static profile)."""
        text = ["x".join(map(str, s)) for s in (self.min, self.max)]
        return text[0] if self.min == self.max else f"{text[0]} .. {text[1]}"


def profile_shapes(metadata: ModelMetadata, min_shape: tuple[int, ...] | None = None,
                   opt_shape: tuple[int, ...] | None = None,
                   max_shape: tuple[int, ...] | None = None) -> ProfileShapes:
    """The profile from the flags; opt defaults to min, else batch 1 at the export's input size; min and max to opt.

    InputError naming the shape parameter for shapes that are not BxCxHxW, have the wrong channel count,
    are not ordered min <= opt <= max, or change an axis the export fixed.
    """
    c = metadata.config.in_channels
    h, w = metadata.input_size
    given = {"min": min_shape, "opt": opt_shape, "max": max_shape}
    for key, shape in given.items():
        if shape is not None and len(shape) != 4:
            raise InputError(f"expected BxCxHxW such as 1x{c}x{h}x{w}, got {'x'.join(map(str, shape))}",
                             param=PARAMS[key])
    opt = tuple(opt_shape or min_shape or (1, c, h, w))
    shapes = {"opt": opt, "min": tuple(min_shape) if min_shape is not None else opt,
              "max": tuple(max_shape) if max_shape is not None else opt}
    fixed = {"batch": 1, "height": h, "width": w}
    for key in sorted(shapes, key=lambda k: given[k] is None):  # a flag's own value is blamed first
        shape = shapes[key]
        if shape[1] != c:
            raise InputError(f"the model takes {c} input channels, got {shape[1]}", param=PARAMS[key])
        for axis, value in zip(_AXES, shape):
            if axis in fixed and axis not in metadata.dynamic_axes and value != fixed[axis]:
                raise InputError(f"the export has a fixed {axis} of {fixed[axis]}, got {value}", param=PARAMS[key])
    for low, high in (("min", "opt"), ("opt", "max")):
        bad = [axis for axis, a, b in zip(_AXES, shapes[low], shapes[high]) if a > b]
        if bad:
            raise InputError(f"{'x'.join(map(str, shapes[high]))} is smaller than the {low} shape "
                             f"{'x'.join(map(str, shapes[low]))} in {bad[0]}", param=PARAMS[high])
    return ProfileShapes(*(shapes[k] for k in ("min", "opt", "max")))  # type: ignore[arg-type]
