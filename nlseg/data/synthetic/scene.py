"""One synthetic driving scene: layout, sky, ground, road, roadside, traffic, light and camera.

Three kinds of street (urban, suburban, highway), four kinds of light (clear day, overcast,
dusk, night), a random camera (focal length, pitch as horizon row, small roll, road bend),
shadows, haze with distance, sensor noise, blur, JPEG artefacts and sometimes the ego
car's hood (label 255). Labels are BDD100K train ids; lane markings count as road.
Geometry and colours come from one generator and textures from another, so a seed gives
the same scene at every size.
"""

from __future__ import annotations

import numpy as np

from nlseg.data.synthetic.look import apply_camera, apply_light, apply_textures
from nlseg.data.synthetic.painter import Painter
from nlseg.data.synthetic.roadside import building_row, roadside, traffic
from nlseg.data.synthetic.street import paint_backdrop, paint_ground, paint_sky, sample_camera, sample_street
from nlseg.data.synthetic.texture import pick

SKY_WEIGHTS = {"clear": 0.4, "overcast": 0.32, "dusk": 0.08, "night": 0.2}


def render_scene(seed: int | list[int], size: tuple[int, int] = (90, 160)) -> tuple[np.ndarray, np.ndarray]:
    """Render scene ``seed`` at ``size`` = (H, W): RGB uint8 (H, W, 3) and train-id labels uint8 (H, W)."""
    geo = np.random.default_rng([*np.atleast_1d(seed).tolist(), 0])
    tex = np.random.default_rng([*np.atleast_1d(seed).tolist(), 1])
    camera = sample_camera(geo, size)
    street = sample_street(geo)
    light = pick(geo, list(SKY_WEIGHTS), list(SKY_WEIGHTS.values()))
    p = Painter(camera)
    haze = paint_sky(p, geo, light)
    paint_backdrop(p, geo, street, haze)
    paint_ground(p, geo, street)
    sun = int(geo.choice([-1, 1])) if light == "clear" else 0
    shadows: list = []
    items = roadside(p, geo, street, light) + traffic(p, geo, street)
    for side in (-1, 1):
        if street.kind != "highway" or geo.random() < 0.1:
            items += building_row(p, geo, street, side, shadows, sun, light == "night")
    if shadows:
        p.shade(shadows, geo.uniform(0.45, 0.7))
    for _, draw in sorted(items, key=lambda item: -item[0]):
        draw()
    apply_textures(p, tex)
    apply_light(p, geo, light, haze, street.lights)
    image = apply_camera(p, geo, tex, light)
    return image, p.labels
