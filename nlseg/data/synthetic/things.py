"""Objects of the synthetic scenes, each drawn at a place in road coordinates (metres).

Every function takes its own random generator, so what one object draws never changes
another, and a scene renders the same at every image size.
"""

from __future__ import annotations

import numpy as np

from nlseg.data.synthetic.painter import Painter
from nlseg.data.synthetic.texture import jitter, pick

# Train ids (docs/design.md §2.6).
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY = range(11)
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(11, 19)

CAR_COLOURS = [(235, 235, 235), (25, 25, 28), (165, 168, 172), (105, 108, 112), (140, 20, 24), (30, 45, 100),
               (60, 70, 60), (190, 180, 160), (200, 200, 205)]
CAR_WEIGHTS = [22, 20, 16, 14, 8, 8, 3, 4, 5]
CLOTHES = [(30, 30, 35), (60, 60, 70), (20, 30, 70), (120, 120, 125), (150, 30, 30), (200, 200, 195), (90, 70, 50)]
SKIN = [(225, 190, 160), (190, 140, 105), (120, 80, 55), (240, 205, 180)]
FOLIAGE = [(45, 70, 30), (60, 85, 40), (35, 55, 30), (80, 95, 45), (70, 80, 55)]
GLASS = (28, 32, 38)


def quad(p: Painter, lat0: float, lat1: float, z0: float, z1: float, y0: float, y1: float) -> np.ndarray:
    """Pixels of a vertical quad from (lat0, z0) to (lat1, z1), heights y0..y1."""
    c = p.camera
    return np.concatenate([c.on_road([lat0, lat1], y0, [z0, z1]), c.on_road([lat1, lat0], y1, [z1, z0])])


def front(p: Painter, lat: float, width: float, z: float, y0: float, y1: float) -> np.ndarray:
    """Pixels of a quad facing the camera at depth z, centred on ``lat``."""
    return quad(p, lat - width / 2, lat + width / 2, z, z, y0, y1)


def vehicle(p: Painter, rng: np.random.Generator, lat: float, z: float, kind: int, oncoming: bool, lights: list) -> None:
    """Car, truck or bus as boxes: the face towards the camera, the visible side, glass, wheels, lamps."""
    if kind == CAR:
        w, h, length = rng.uniform(1.7, 1.95), rng.uniform(1.35, 1.75), rng.uniform(4.0, 4.9)
        body = jitter(rng, pick(rng, CAR_COLOURS, CAR_WEIGHTS), 0.12)
    elif kind == TRUCK:
        w, h, length = rng.uniform(2.2, 2.5), rng.uniform(2.8, 3.8), rng.uniform(6.0, 12.0)
        body = jitter(rng, pick(rng, [(225, 225, 225), (190, 60, 40), (60, 80, 120), (150, 150, 150)]), 0.1)
    else:
        w, h, length = 2.55, rng.uniform(3.0, 3.4), rng.uniform(10.0, 13.0)
        body = jitter(rng, pick(rng, [(230, 230, 225), (40, 90, 160), (200, 160, 40), (170, 40, 40)]), 0.1)
    side = body * 0.72
    glass = jitter(rng, GLASS, 0.2)
    # Contact shadow on the ground under the box.
    c = p.camera
    shadow = np.concatenate([c.on_road([lat - w / 2 - 0.1, lat + w / 2 + 0.1], 0.0, [z - 0.4, z - 0.4]),
                             c.on_road([lat + w / 2 + 0.1, lat - w / 2 - 0.1], 0.0, [z + length, z + length])])
    p.shade([shadow], 0.45)
    near_side = lat - w / 2 if lat - w / 2 > 0 else lat + w / 2 if lat + w / 2 < 0 else None
    if near_side is not None:
        p.fill([quad(p, near_side, near_side, z, z + length, 0.25, h * (0.62 if kind == CAR else 0.95))], side, kind, z)
        if kind == CAR:
            p.fill([quad(p, near_side, near_side, z + 0.25 * length, z + 0.8 * length, h * 0.62, h * 0.95)],
                   glass, kind, z)
        elif kind == BUS:
            p.fill([quad(p, near_side, near_side, z + 0.3, z + length - 0.3, h * 0.45, h * 0.85)], glass, kind, z)
        for wz in (z + 0.18 * length, z + 0.8 * length):
            p.fill([quad(p, near_side, near_side, wz - 0.35, wz + 0.35, 0.0, 0.65)], (0.06, 0.06, 0.07), kind, z)
    p.fill([front(p, lat, w, z, 0.15, h * (0.62 if kind == CAR else 1.0))], body, kind, z)
    for dx in (-w / 2 + 0.3, w / 2 - 0.3):
        p.fill([front(p, lat + dx, 0.3, z, 0.0, 0.35)], (0.05, 0.05, 0.06), kind, z)
    if kind == CAR:
        roof = front(p, lat, w * 0.78, z + 0.6, h * 0.95, h)
        cabin = np.concatenate([front(p, lat, w * 0.94, z + 0.05, h * 0.62, h * 0.62)[:2],
                                front(p, lat, w * 0.78, z + 0.6, h * 0.95, h * 0.95)[2:]])
        p.fill([cabin], glass, kind, z)
        p.fill([roof], body, kind, z)
    elif kind == BUS:
        p.fill([front(p, lat, w * 0.9, z, h * 0.45, h * 0.9)], glass, kind, z)
    elif oncoming:
        p.fill([front(p, lat, w * 0.85, z, h * 0.55, h * 0.75)], glass * 1.5, kind, z)
    lamp = (1.0, 0.95, 0.8) if oncoming else (0.75, 0.05, 0.05)
    for dx in (-w / 2 + 0.2, w / 2 - 0.2):
        p.fill([front(p, lat + dx, 0.28, z - 0.01, h * 0.42, h * 0.52)], lamp, kind, z)
        lights.append((p.camera.on_road(lat + dx, h * 0.47, np.array([z]))[0], 0.35, lamp, z))
    if kind == CAR and not oncoming:
        p.fill([front(p, lat, 0.5, z - 0.01, h * 0.22, h * 0.32)], (0.85, 0.85, 0.8), kind, z)


def person(p: Painter, rng: np.random.Generator, lat: float, z: float, label: int = PERSON) -> None:
    """A pedestrian: legs, torso, arms and head (label ``label``: person or rider)."""
    h = rng.uniform(1.55, 1.9)
    trousers, shirt = jitter(rng, pick(rng, CLOTHES), 0.2), jitter(rng, pick(rng, CLOTHES), 0.25)
    skin = jitter(rng, pick(rng, SKIN), 0.1)
    stride = rng.uniform(0.0, 0.18)
    base = 0.0 if label == PERSON else 0.55
    for dx in (-0.1 - stride, 0.1 + stride):
        p.fill([quad(p, lat + dx - 0.08, lat + dx + 0.08, z, z, base, base + 0.47 * h)], trousers, label, z)
    p.fill([front(p, lat, 0.42, z, base + 0.45 * h, base + 0.82 * h)], shirt, label, z)
    for dx in (-0.26, 0.26):
        p.fill([front(p, lat + dx, 0.1, z, base + 0.5 * h, base + 0.8 * h)], shirt * 0.85, label, z)
    head = p.camera.on_road(lat, base + 0.91 * h, np.array([z]))[0]
    r = p.camera.focal * 0.11 * h / max(z, 0.1)
    p.ellipse(head, (r * 0.85, r), skin, label, z)
    p.ellipse(head - np.array([0, r * 0.4]), (r * 0.85, r * 0.6), jitter(rng, (35, 25, 20), 0.3), label, z)


def cyclist(p: Painter, rng: np.random.Generator, lat: float, z: float) -> None:
    """A rider on a bicycle or a motorcycle, seen from behind."""
    motor = rng.random() < 0.4
    kind = MOTORCYCLE if motor else BICYCLE
    wheel = p.camera.focal * (0.33 if motor else 0.34) / max(z, 0.1)
    for dz in (0.0, 1.1):
        centre = p.camera.on_road(lat, 0.34, np.array([z + dz]))[0]
        p.ellipse(centre, (max(wheel * 0.18, 0.6), wheel), (0.08, 0.08, 0.08), kind, z)
    frame = (0.15, 0.15, 0.17) if motor else jitter(rng, pick(rng, [(160, 20, 20), (30, 30, 30), (30, 60, 140)]), 0.2)
    p.fill([front(p, lat, 0.45 if motor else 0.12, z + 0.3, 0.3, 0.9)], frame, kind, z)
    person(p, rng, lat, z + 0.5, label=RIDER)


def tree(p: Painter, rng: np.random.Generator, lat: float, z: float, palette, ground: float = 0.0) -> None:
    """Trunk and a crown of overlapping ellipses (vegetation) standing at height ``ground``; foliage
    texture is added per class later."""
    height = rng.uniform(4.0, 14.0)
    radius = rng.uniform(0.25, 0.45) * height
    trunk_top = height - radius * rng.uniform(1.0, 1.6)
    p.fill([front(p, lat, max(0.15, 0.04 * height), z, ground, ground + trunk_top + 0.5)],
           jitter(rng, (70, 60, 50), 0.3), VEGETATION, z)
    base = jitter(rng, pick(rng, palette), 0.2)
    centre = np.array([0.0, ground + height - radius])
    for _ in range(int(rng.integers(6, 14))):
        off = rng.normal(0.0, 0.45, 2) * radius
        r = radius * rng.uniform(0.45, 0.8)
        pix = p.camera.on_road(lat + off[0], centre[1] + off[1] * 0.8, np.array([z]))[0]
        rp = p.camera.focal * r / max(z, 0.1)
        p.ellipse(pix, (rp, rp * rng.uniform(0.8, 1.1)), base * rng.uniform(0.8, 1.15), VEGETATION, z)


def pole(p: Painter, rng: np.random.Generator, lat: float, z: float, arm_towards: float, lights: list) -> None:
    """A street-light or utility pole, sometimes with a traffic sign or a traffic light."""
    height = rng.uniform(6.0, 10.0)
    metal = jitter(rng, pick(rng, [(120, 120, 118), (70, 72, 70), (150, 140, 120)]), 0.2)
    p.fill([front(p, lat, 0.22, z, 0.0, height)], metal, POLE, z)
    fitting = rng.random()
    if fitting < 0.45:
        end = lat + arm_towards * rng.uniform(1.5, 3.5)
        p.fill([quad(p, lat, end, z, z, height - 0.15, height)], metal, POLE, z)
        lamp = p.camera.on_road(end, height - 0.2, np.array([z]))[0]
        lights.append((lamp, 0.9, (1.0, 0.85, 0.6), z))
    if fitting > 0.35:
        sign(p, rng, lat, z, rng.uniform(2.2, 3.2))
    if fitting > 0.8:
        traffic_light(p, rng, lat + arm_towards * 0.3, z, height * 0.7, lights)


def sign(p: Painter, rng: np.random.Generator, lat: float, z: float, y: float) -> None:
    """A traffic sign: rectangle, diamond or disc, in one of the usual colour schemes."""
    size = rng.uniform(0.6, 1.1)
    colour = jitter(rng, pick(rng, [(230, 230, 230), (220, 200, 20), (200, 30, 30), (30, 70, 160), (20, 110, 60)]), 0.1)
    shape = rng.integers(3)
    centre = p.camera.on_road(lat, y + size / 2, np.array([z]))[0]
    r = p.camera.focal * size / 2 / max(z, 0.1)
    if shape == 0:
        p.fill([front(p, lat, size, z - 0.05, y, y + size * rng.uniform(0.7, 1.3))], colour, SIGN, z)
    elif shape == 1:
        p.fill([centre + np.array([[0, -r], [r, 0], [0, r], [-r, 0]])], colour, SIGN, z)
    else:
        p.ellipse(centre, (r, r), colour, SIGN, z)
        p.ellipse(centre, (r * 0.7, r * 0.7), (0.92, 0.92, 0.92), SIGN, z)


def traffic_light(p: Painter, rng: np.random.Generator, lat: float, z: float, y: float, lights: list) -> None:
    """A three-lamp traffic light housing with one lamp lit."""
    housing = jitter(rng, pick(rng, [(25, 25, 25), (180, 150, 30)]), 0.15)
    p.fill([front(p, lat, 0.4, z - 0.05, y, y + 1.1)], housing, LIGHT, z)
    lit = int(rng.integers(3))
    for k, colour in enumerate([(1.0, 0.15, 0.1), (1.0, 0.75, 0.1), (0.2, 1.0, 0.5)]):
        centre = p.camera.on_road(lat, y + 0.9 - 0.35 * k, np.array([z - 0.06]))[0]
        r = p.camera.focal * 0.12 / max(z, 0.1)
        c = colour if k == lit else tuple(0.25 * v for v in colour)
        p.ellipse(centre, (r, r), c, LIGHT, z)
        if k == lit:
            lights.append((centre, 0.4, colour, z))
