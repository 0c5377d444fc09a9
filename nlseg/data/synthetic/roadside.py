"""What stands beside and on the road: facades, slopes, trees, poles, fences, pedestrians, traffic.

Each function returns (depth, draw) pairs that the scene draws far to near; every object
gets its own random generator (see :mod:`nlseg.data.synthetic.things`).
"""

from __future__ import annotations

import numpy as np

from nlseg.data.synthetic import things as t
from nlseg.data.synthetic.painter import Painter
from nlseg.data.synthetic.street import DRY, FACADES, GRASS, Street, rail, strip
from nlseg.data.synthetic.texture import jitter, pick


def building_row(p: Painter, rng: np.random.Generator, street: Street, side: int, shadows: list, sun: int,
                 night: bool) -> list:
    """Facades along one side as (far depth, draw) pairs; they also cast shadows when the sun is on their side."""
    items = []
    z = p.camera.near * rng.uniform(0.5, 1.0)
    lat = street.outer(side) + side * street.setback[side > 0]
    while z < 160:
        length = rng.uniform(8, 35) if street.kind == "urban" else rng.uniform(8, 16)
        if street.kind == "urban":
            height = rng.uniform(6, 20) if rng.random() < 0.7 else rng.uniform(20, 50)
        else:
            height = rng.uniform(4, 9)
        gap = rng.uniform(0, 2) if street.kind == "urban" else rng.uniform(6, 25)
        z0, z1 = z, z + length
        z = z1 + gap
        if street.crossing is not None and z1 > street.crossing[0] - 1 and z0 < street.crossing[1] + 1:
            continue
        seed = int(rng.integers(2**62))
        items.append((z1, lambda z0=z0, z1=z1, h=height, s=seed: facade(
            p, np.random.default_rng(s), lat, side, z0, z1, h, night)))
        if sun == side:
            shadows.append(strip(p, lat, lat - side * min(height * 0.6, abs(lat)), z0, z1))
    return items


def facade(p: Painter, rng: np.random.Generator, lat: float, side: int, z0: float, z1: float, height: float,
           night: bool) -> None:
    """A building: the end wall facing the camera, the facade along the street, windows, a roof line."""
    colour = jitter(rng, pick(rng, FACADES), 0.15)
    p.fill([t.quad(p, lat, lat + side * 12, z0, z0, 0.0, height)], colour * 0.75, t.BUILDING, z0)
    zs = np.linspace(z0, z1, 8)
    c = p.camera
    wall = np.concatenate([c.on_road(lat, 0.0, zs), c.on_road(lat, height, zs[::-1])])
    p.fill([wall], colour, t.BUILDING, z0)
    glass = jitter(rng, pick(rng, [(45, 55, 65), (70, 85, 100), (30, 30, 35), (110, 120, 130)]), 0.2)
    floor = rng.uniform(3.0, 3.6)
    spacing = rng.uniform(2.2, 4.0)
    ww, wh = spacing * rng.uniform(0.35, 0.7), floor * rng.uniform(0.35, 0.6)
    ys, zs = np.meshgrid(np.arange(floor * 1.2, height - floor * 0.6, floor),
                         np.arange(z0 + spacing * 0.4, z1 - ww, spacing), indexing="ij")
    if ys.size:
        ys, zs = ys.reshape(-1, 1), zs.reshape(-1, 1)
        corners = c.on_road(lat, ys + np.array([0, 0, wh, wh]), zs + np.array([0, ww, ww, 0]))
        lit = rng.random(len(corners)) < (0.4 if night else 0.0)
        p.fill(list(corners[~lit]), glass, t.BUILDING, z0)
        p.fill(list(corners[lit]), jitter(rng, (250, 210, 140), 0.15), t.BUILDING, z0)
    if rng.random() < 0.5:  # shop fronts
        p.fill([t.quad(p, lat, lat, z0 + 0.5, z1 - 0.5, 0.3, min(2.8, height * 0.5))],
               jitter(rng, (40, 45, 50), 0.3), t.BUILDING, z0)


def embankment(p: Painter, rng: np.random.Generator, street: Street, side: int, palette) -> list:
    """A grass slope rising beside the road (highway cuttings, hillsides), with shrubs and trees on it."""
    inner = street.edge(side) + side * rng.uniform(1.0, 8.0)
    run, rise = rng.uniform(6, 40), rng.uniform(3, 30)
    zs = np.geomspace(p.camera.near, 300.0, 48)
    top = rise * (1 + 0.35 * np.sin(zs / rng.uniform(15, 60) + rng.uniform(0, 6)))
    colour = jitter(rng, pick(rng, palette), 0.15)
    c = p.camera
    slope = np.concatenate([c.on_road(inner, 0.0, zs), c.on_road(inner + side * run, top, zs)[::-1]])
    items = [(300.0, lambda: p.fill([slope], colour, t.TERRAIN, 60.0))]
    for z in rng.uniform(p.camera.near + 5, 200, int(rng.integers(0, 12))):
        frac = rng.uniform(0.3, 1.0)
        height = np.interp(z, zs, top) * frac
        seed = int(rng.integers(2**62))
        items.append((z, lambda l=inner + side * run * frac, z=z, s=seed, g=height: t.tree(
            p, np.random.default_rng(s), l, z, t.FOLIAGE, ground=g)))
    return items


def roadside(p: Painter, rng: np.random.Generator, street: Street, light: str) -> list:
    """Trees, poles, signs, fences, walls and pedestrians as (depth, draw) pairs."""
    items: list = []
    palette = t.FOLIAGE if light != "night" else [(25, 35, 20)]
    for side in (-1, 1):
        if rng.random() < {"highway": 0.6, "suburban": 0.2, "urban": 0.0}[street.kind]:
            items += embankment(p, rng, street, side, GRASS + DRY + DRY)
        walk = street.sidewalk[side > 0]
        inner = street.edge(side) + side * (walk * rng.uniform(0.6, 0.9) if walk else 1.5)
        if rng.random() < (0.75 if street.kind != "urban" else 0.4):  # trees
            spacing = rng.uniform(6, 18)
            zs = np.arange(p.camera.near + rng.uniform(0, spacing), 150, spacing)
            for z in zs:
                lat = inner + side * rng.uniform(0, street.setback[side > 0] * (street.kind != "urban") + 0.5)
                if street.kind == "highway":
                    lat = street.edge(side) + side * rng.uniform(3, 25)
                seed = int(rng.integers(2**62))
                items.append((z, lambda l=lat, z=z, s=seed: t.tree(p, np.random.default_rng(s), l, z, palette)))
        spacing = rng.uniform(18, 45)
        for z in np.arange(p.camera.near + rng.uniform(0, spacing), 200, spacing):  # poles
            lat = street.edge(side) + side * rng.uniform(0.4, 1.2)
            seed = int(rng.integers(2**62))
            items.append((z, lambda l=lat, z=z, s=seed, d=-side: t.pole(
                p, np.random.default_rng(s), l, z, d, street.lights)))
        if street.kind == "highway" and rng.random() < 0.5:
            lat = street.edge(side) + side * rng.uniform(0.3, 1.5)
            kind = pick(rng, [t.WALL, t.FENCE])
            colour = jitter(rng, (150, 150, 145) if kind == t.WALL else (130, 135, 140), 0.15)
            top = rng.uniform(0.8, 1.1) if kind == t.WALL else rng.uniform(0.7, 0.9)
            items.append((300.0, lambda l=lat, k=kind, c=colour, y=top: p.fill(
                [rail(p, l, p.camera.near, 300.0, y)], c, k, 50.0)))
        if street.kind != "highway" and rng.random() < 0.3:
            lat = street.outer(side) + side * 0.2
            colour = jitter(rng, pick(rng, [(130, 110, 90), (160, 160, 160), (90, 90, 85)]), 0.15)
            z0 = rng.uniform(p.camera.near, 30)
            z1 = z0 + rng.uniform(10, 60)
            kind, height = pick(rng, [(t.FENCE, rng.uniform(1.0, 2.0)), (t.WALL, rng.uniform(0.8, 2.5))])
            items.append((z1, lambda l=lat, a=z0, b=z1, c=colour, k=kind, h=height: p.fill(
                [t.quad(p, l, l, a, b, 0.0, h)], c, k, a)))
        if street.kind != "highway":  # pedestrians on the sidewalk
            for _ in range(int(rng.poisson(2.5 if street.kind == "urban" else 0.8))):
                z = rng.uniform(p.camera.near + 2, 60)
                lat = street.edge(side) + side * rng.uniform(0.5, max(street.sidewalk[side > 0] - 0.3, 0.6))
                seed = int(rng.integers(2**62))
                items.append((z, lambda l=lat, z=z, s=seed: t.person(p, np.random.default_rng(s), l, z)))
    return items


def traffic(p: Painter, rng: np.random.Generator, street: Street) -> list:
    """Vehicles in the lanes (oncoming on the left of a two-way street), parked cars, cyclists."""
    items: list = []
    density = rng.uniform(0.1, 1.0)
    for k in range(street.lanes):
        lat = street.first_lane + (k + 0.5) * street.lane
        oncoming = street.two_way and lat < -street.lane / 2
        z = p.camera.near + rng.uniform(2, 20)
        while z < 150:
            if rng.random() < density:
                kind = int(rng.choice([t.CAR, t.TRUCK, t.BUS], p=[0.85, 0.1, 0.05]))
                jitter_lat = lat + rng.uniform(-0.4, 0.4)
                seed = int(rng.integers(2**62))
                items.append((z, lambda l=jitter_lat, z=z, s=seed, kd=kind, o=oncoming: t.vehicle(
                    p, np.random.default_rng(s), l, z, kd, o, street.lights)))
            z += rng.uniform(8, 40)
    if street.kind != "highway":
        for side in (-1, 1):
            if rng.random() < 0.6:
                lat = street.edge(side) - side * 1.2
                for z in np.arange(p.camera.near + rng.uniform(0, 6), 90, rng.uniform(5.5, 8)):
                    if rng.random() < 0.75:
                        seed = int(rng.integers(2**62))
                        items.append((z, lambda l=lat, z=z, s=seed: t.vehicle(
                            p, np.random.default_rng(s), l, z, t.CAR, False, street.lights)))
        if rng.random() < 0.25:
            z = rng.uniform(p.camera.near + 3, 40)
            seed = int(rng.integers(2**62))
            items.append((z, lambda l=street.right - 1.0, z=z, s=seed: t.cyclist(p, np.random.default_rng(s), l, z)))
    return items
