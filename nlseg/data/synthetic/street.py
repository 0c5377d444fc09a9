"""The street and its ground: camera and layout sampling, sky, distant backdrop, road, markings.

Sizes in metres and colours in 0–255 RGB; everything draws through a :class:`Painter`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nlseg.data.synthetic import things as t
from nlseg.data.synthetic.painter import FAR, Camera, Painter
from nlseg.data.synthetic.texture import jitter, pick, value_noise

SKIES = {  # (top, horizon) RGB ranges as base colours
    "clear": ((70, 130, 205), (185, 205, 228)),
    "overcast": ((165, 172, 182), (215, 218, 222)),
    "dusk": ((55, 70, 120), (235, 160, 100)),
    "night": ((6, 8, 16), (38, 34, 40)),
}
STREETS = ("urban", "suburban", "highway")
STREET_WEIGHTS = (0.45, 0.25, 0.3)
GRASS = [(95, 120, 60), (120, 135, 70), (175, 155, 105), (150, 140, 95), (105, 110, 80)]
DRY = [(185, 160, 110), (165, 145, 105), (200, 175, 125)]
FACADES = [(150, 150, 150), (175, 165, 150), (140, 85, 65), (195, 185, 165), (110, 115, 125), (90, 95, 100),
           (210, 205, 195), (125, 110, 95)]


@dataclass
class Street:
    """Lateral layout (metres, road coordinates): road edges, sidewalks, setbacks, kind of street."""

    kind: str
    lane: float
    lanes: int
    first_lane: float
    left: float
    right: float
    sidewalk: tuple[float, float]
    setback: tuple[float, float]
    two_way: bool
    crossing: tuple[float, float] | None
    lights: list = field(default_factory=list)

    def edge(self, side: int) -> float:
        return self.right if side > 0 else self.left

    def outer(self, side: int) -> float:
        """Lateral of the outer edge of the sidewalk on ``side``."""
        return self.edge(side) + side * self.sidewalk[side > 0]


def sample_camera(rng: np.random.Generator, size: tuple[int, int]) -> Camera:
    """Focal length 0.62–0.95 W, horizon at 36–60 % of H (pitch), height 1.25–1.7 m, bend, roll ±1.5°."""
    h, w = size
    return Camera(height_px=h, width_px=w, focal=w * rng.uniform(0.62, 0.95), cx=w * rng.uniform(0.44, 0.56),
                  horizon=h * rng.uniform(0.36, 0.6), height=rng.uniform(1.25, 1.7),
                  curvature=rng.choice([0.0, rng.uniform(-2e-3, 2e-3)]), roll=np.deg2rad(rng.uniform(-1.5, 1.5)))


def sample_street(rng: np.random.Generator) -> Street:
    """Urban (dense facades), suburban (houses set back, trees) or highway (3–5 lanes, slopes)."""
    kind = STREETS[int(rng.choice(3, p=STREET_WEIGHTS))]
    lane = rng.uniform(3.0, 3.7)
    lanes = int(rng.integers(3, 6)) if kind == "highway" else int(rng.integers(2, 5))
    ego = int(rng.integers(0, lanes)) if kind == "highway" else int(rng.integers(lanes // 2, lanes))
    left, right = -(ego + 0.5) * lane, (lanes - ego - 0.5) * lane
    if kind == "highway":
        left -= rng.uniform(0.5, 3.0)
        right += rng.uniform(1.0, 3.5)
        walks, setback = (0.0, 0.0), (rng.uniform(3, 30), rng.uniform(3, 30))
    else:
        walks = (rng.uniform(1.5, 5.0), rng.uniform(1.5, 5.0))
        setback = (rng.uniform(0, 1.5), rng.uniform(0, 1.5)) if kind == "urban" else (
            rng.uniform(4, 14), rng.uniform(4, 14))
    crossing = None
    if kind != "highway" and rng.random() < 0.4:
        z = rng.uniform(12, 70)
        crossing = (z, z + rng.uniform(9, 16))
    return Street(kind, lane, lanes, -(ego + 0.5) * lane, left, right, walks, setback,
                  kind != "highway" and rng.random() < 0.7, crossing)


def ground_depth(camera: Camera) -> np.ndarray:
    """Depth (metres) of the ground seen by each pixel row (roll ignored); FAR above the horizon."""
    rows = np.arange(camera.height_px, dtype=np.float32)[:, None] + 0.5 - camera.horizon
    with np.errstate(divide="ignore"):
        depth = np.where(rows > 0, camera.focal * camera.height / np.maximum(rows, 1e-3), FAR)
    return np.broadcast_to(depth, (camera.height_px, camera.width_px)).astype(np.float32)


def rail(p: Painter, lat: float, z0: float, z1: float, height: float) -> np.ndarray:
    """Pixels of a vertical band along the road (barrier, guard rail) from the ground to ``height``."""
    zs = np.geomspace(max(z0, 0.3), z1, 40)
    return np.concatenate([p.camera.on_road(lat, 0.0, zs), p.camera.on_road(lat, height, zs[::-1])])


def strip(p: Painter, lat0: float, lat1: float, z0: float, z1: float, y: float = 0.0) -> np.ndarray:
    """Pixels of a ground strip between two lateral offsets, from depth z0 to z1 (follows the bend)."""
    zs = np.geomspace(max(z0, 0.3), z1, 40)
    c = p.camera
    return np.concatenate([c.on_road(lat0, y, zs), c.on_road(lat1, y, zs[::-1])])


def paint_sky(p: Painter, rng: np.random.Generator, light: str) -> np.ndarray:
    """Vertical gradient (plus soft clouds by day) over the whole image; returns the horizon colour."""
    top_base, hor_base = SKIES[light]
    top, hor = jitter(rng, top_base, 0.15), jitter(rng, hor_base, 0.1)
    if light == "clear" and rng.random() < 0.3:  # washed-out, overexposed sky, common in dashcams
        top = np.clip(top * 1.35 + 0.15, 0, 1)
    rows = np.arange(p.camera.height_px, dtype=np.float32)[:, None] / max(p.camera.horizon, 1.0)
    s = np.clip(rows, 0.0, 1.0) ** rng.uniform(0.6, 1.6)
    sky = top[None, None, :] * (1 - s[..., None]) + hor[None, None, :] * s[..., None]
    sky = np.broadcast_to(sky, p.image.shape).copy()
    if light in ("clear", "overcast", "dusk") and rng.random() < 0.6:
        clouds = np.clip(value_noise(rng, p.labels.shape, rng.uniform(3, 8)) * 1.5 - rng.uniform(0, 0.8), 0, 1)
        cloud_colour = np.clip(hor * 1.1, 0, 1) if light != "overcast" else hor * 0.85
        sky += (cloud_colour - sky) * clouds[..., None] * rng.uniform(0.3, 0.9)
    p.paint(np.ones(p.labels.shape, bool), sky, t.SKY, FAR)
    return hor


def paint_backdrop(p: Painter, rng: np.random.Generator, street: Street, haze: np.ndarray) -> None:
    """Distant hills, tree lines or a skyline just above the horizon, blended towards the haze colour."""
    c, w = p.camera, p.camera.width_px
    xs = np.linspace(-0.05 * w, 1.05 * w, 64)
    for layer in range(int(rng.integers(1, 3))):
        kind = pick(rng, ["hills", "trees", "skyline"],
                    [1, 2, 3] if street.kind == "urban" else [3, 3, 0.5] if street.kind == "highway" else [1, 3, 1])
        depth = rng.uniform(150, 600) / (layer + 1)
        scale = c.focal / depth
        if kind == "hills":
            height = rng.uniform(5, 60) * scale * (1 + 0.6 * np.sin(xs / w * rng.uniform(2, 9) + rng.uniform(0, 6)))
            label, colour = pick(rng, [t.VEGETATION, t.TERRAIN]), jitter(rng, pick(rng, GRASS + DRY), 0.15)
        elif kind == "trees":
            height = rng.uniform(6, 18) * scale * (1 + 0.35 * rng.uniform(-1, 1, xs.size))
            label, colour = t.VEGETATION, jitter(rng, pick(rng, t.FOLIAGE), 0.2)
        else:
            height = np.repeat(rng.uniform(5, 60, xs.size // 4), 4) * scale
            label, colour = t.BUILDING, jitter(rng, pick(rng, FACADES), 0.15)
        mist = np.exp(-depth / rng.uniform(300, 1500))
        colour = colour * mist + haze * (1 - mist)
        top = c.horizon - height + (xs - c.width_px / 2) * np.sin(c.roll)
        poly = np.concatenate([np.stack([xs, top], 1), [[xs[-1], c.horizon + 2], [xs[0], c.horizon + 2]]])
        p.fill([poly], colour, label, depth)


def paint_ground(p: Painter, rng: np.random.Generator, street: Street) -> None:
    """Terrain, sidewalks with curbs, the road with markings and a crossing street."""
    c = p.camera
    depth = ground_depth(c)
    far = 2000.0
    below = np.arange(c.height_px)[:, None] >= c.horizon
    outer_palette = GRASS if street.kind != "highway" or rng.random() < 0.4 else DRY
    p.paint(np.broadcast_to(below, p.labels.shape), jitter(rng, pick(rng, outer_palette), 0.15), t.TERRAIN, depth)
    for side in (-1, 1):
        if street.kind == "urban":  # paved to the facades
            p.fill([strip(p, street.outer(side), street.outer(side) + side * 80, c.near, far)],
                   jitter(rng, (150, 148, 145), 0.15), t.SIDEWALK, 60.0)
        if street.sidewalk[side > 0] > 0:
            p.fill([strip(p, street.edge(side), street.outer(side), c.near, far)],
                   jitter(rng, pick(rng, [(170, 168, 160), (150, 150, 150), (185, 175, 160)]), 0.12), t.SIDEWALK, 60.0)
            p.fill([strip(p, street.edge(side), street.edge(side) + side * 0.25, c.near, far, y=0.0)],
                   jitter(rng, (120, 120, 118), 0.15), t.SIDEWALK, 60.0)
    asphalt = jitter(rng, pick(rng, [(95, 95, 100), (80, 80, 84), (110, 108, 105), (70, 70, 75), (125, 123, 120)]), 0.12)
    road = p.fill([strip(p, street.left, street.right, c.near, far)], asphalt, t.ROAD, 60.0)
    if street.crossing is not None:
        z0, z1 = street.crossing
        p.fill([strip(p, -150, 150, z0, z1)], asphalt, t.ROAD, z0)
    if road is not None:
        p.depth[road] = depth[road]
    for _ in range(int(rng.integers(0, 5))):  # patches and stains in the asphalt
        lat, z = rng.uniform(street.left, street.right), rng.uniform(c.near, 60)
        p.shade([strip(p, lat, lat + rng.uniform(0.5, 3), z, z + rng.uniform(1, 12))], rng.uniform(0.8, 1.15))
    paint_markings(p, rng, street)


def paint_markings(p: Painter, rng: np.random.Generator, street: Street) -> None:
    """Lane lines (dashed white, solid edges, double yellow centre) and zebra crossings; label road."""
    c = p.camera
    white = jitter(rng, (225, 225, 215), 0.1) * rng.uniform(0.7, 1.0)
    yellow = jitter(rng, (215, 175, 50), 0.1)
    width = rng.uniform(0.1, 0.16)
    dash, gap = (3.0, 9.0) if street.kind == "highway" else (rng.uniform(2, 4), rng.uniform(4, 8))
    phase = rng.uniform(0, dash + gap)
    ranges = [(c.near, 300.0)] if street.crossing is None else [(c.near, street.crossing[0]), (street.crossing[1], 300.0)]
    n, start = street.lanes, street.first_lane
    centre = int(rng.integers(1, n)) if street.two_way and n > 1 else None
    for k in range(1, n):
        lat = start + k * street.lane
        for z0, z1 in ranges:
            if k == centre:
                for off in (-0.12, 0.12):
                    p.fill([strip(p, lat + off - width / 2, lat + off + width / 2, z0, z1)], yellow, t.ROAD, None)
                continue
            quads = [strip(p, lat - width / 2, lat + width / 2, z, min(z + dash, z1))
                     for z in np.arange(z0 + phase, z1, dash + gap)]
            p.fill(quads, white, t.ROAD, None)
    for side in (-1, 1):
        if street.kind == "highway" or rng.random() < 0.5:
            lat = street.edge(side) - side * rng.uniform(0.2, 0.6)
            colour = yellow if side < 0 and street.kind == "highway" else white
            for z0, z1 in ranges:
                p.fill([strip(p, lat - width / 2, lat + width / 2, z0, z1)], colour, t.ROAD, None)
    if street.crossing is not None and rng.random() < 0.7:
        z0 = street.crossing[0] - 4.0
        bars = [strip(p, lat, lat + 0.5, z0, z0 + 3.0) for lat in np.arange(street.left, street.right, 1.0)]
        p.fill(bars, white, t.ROAD, None)
