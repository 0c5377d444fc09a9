"""A pinhole camera over a flat road and a painter that fills image, labels and depth together.

World coordinates in metres: X to the right, Y up, Z forward; the camera sits at height
``height`` above the ground at X = 0. The road's centre line bends as X = κZ²/2, so points
given in road coordinates (lateral offset from the centre line, Z) follow the curve.
Everything is drawn far to near (painter's algorithm); polygons use sub-pixel coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHIFT = 4  # cv2 fixed-point bits for sub-pixel polygon vertices
FAR = 1e4  # depth of the sky, metres


@dataclass(frozen=True)
class Camera:
    """Image size, focal length (pixels), principal point and horizon row, camera height and road bend."""

    height_px: int
    width_px: int
    focal: float
    cx: float
    horizon: float
    height: float = 1.4
    curvature: float = 0.0
    roll: float = 0.0

    @property
    def near(self) -> float:
        """The nearest ground depth visible at the bottom row."""
        return self.focal * self.height / max(self.height_px - self.horizon, 1.0)

    def road_x(self, lateral: np.ndarray, z: np.ndarray) -> np.ndarray:
        """World X of a point ``lateral`` metres right of the road's centre line at depth z."""
        return lateral + 0.5 * self.curvature * z * z

    def project(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Pixel coordinates (..., 2) of world points; z is clipped to stay in front of the camera."""
        z = np.maximum(z, 0.05)
        u, v = np.broadcast_arrays(self.cx + self.focal * x / z, self.horizon + self.focal * (self.height - y) / z)
        if self.roll:
            c, s = np.cos(self.roll), np.sin(self.roll)
            du, dv = u - self.width_px / 2, v - self.horizon
            u, v = self.width_px / 2 + c * du - s * dv, self.horizon + s * du + c * dv
        out = np.empty((*u.shape, 2))
        out[..., 0], out[..., 1] = u, v
        return out

    def on_road(self, lateral: float | np.ndarray, y: float | np.ndarray, z: np.ndarray) -> np.ndarray:
        """Pixels of points given in road coordinates (lateral offset, height, depth)."""
        z = np.asarray(z, dtype=np.float64)
        return self.project(self.road_x(np.asarray(lateral, dtype=np.float64), z), np.asarray(y, dtype=np.float64), z)


class Painter:
    """Float RGB image in [0, 1], uint8 labels and float depth, drawn together."""

    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        shape = (camera.height_px, camera.width_px)
        self.image = np.zeros((*shape, 3), np.float32)
        self.labels = np.zeros(shape, np.uint8)
        self.depth = np.full(shape, FAR, np.float32)
        self.scale = camera.width_px / 1280.0

    def _mask(self, polygons: list[np.ndarray]) -> np.ndarray | None:
        pts = [np.round(p * (1 << SHIFT)).astype(np.int32) for p in polygons if len(p) >= 3 and np.isfinite(p).all()]
        if not pts:
            return None
        mask = np.zeros(self.labels.shape, np.uint8)
        cv2.fillPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=SHIFT)
        return mask.view(bool)

    def fill(self, polygons: list[np.ndarray], colour, label: int | None, depth: float) -> np.ndarray | None:
        """Fill pixel polygons with ``colour`` (RGB in [0, 1] or an HxWx3 array), ``label`` (None: keep)."""
        mask = self._mask(polygons)
        if mask is None or not mask.any():
            return None
        self.paint(mask, colour, label, depth)
        return mask

    def paint(self, mask: np.ndarray, colour, label: int | None, depth: float | np.ndarray | None) -> None:
        """Paint the pixels of a boolean ``mask``."""
        colour = np.asarray(colour, np.float32)
        self.image[mask] = colour[mask] if colour.ndim == 3 else colour
        if label is not None:
            self.labels[mask] = label
        if depth is not None:
            self.depth[mask] = depth[mask] if isinstance(depth, np.ndarray) else depth

    def shade(self, polygons: list[np.ndarray], factor: float) -> None:
        """Multiply the image under the polygons by ``factor`` (shadows, lit windows); labels unchanged."""
        mask = self._mask(polygons)
        if mask is not None:
            self.image[mask] *= factor

    def ellipse(self, centre: np.ndarray, axes: tuple[float, float], colour, label: int | None, depth: float) -> None:
        """A filled axis-aligned ellipse in pixel coordinates."""
        if min(axes) <= 0:
            return
        mask = np.zeros(self.labels.shape, np.uint8)
        c = tuple(int(round(v * (1 << SHIFT))) for v in centre)
        a = tuple(max(1, int(round(v * (1 << SHIFT)))) for v in axes)
        cv2.ellipse(mask, c, a, 0, 0, 360, 1, -1, cv2.LINE_8, SHIFT)
        self.paint(mask.view(bool), colour, label, depth)
