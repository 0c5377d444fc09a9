"""How the scene looks through a camera: class textures, haze, night lighting, sensor effects."""

from __future__ import annotations

import cv2
import numpy as np

from nlseg.data.labels import IGNORE_INDEX
from nlseg.data.synthetic import things as t
from nlseg.data.synthetic.painter import Painter
from nlseg.data.synthetic.texture import fractal_noise, jitter, pick

TEXTURE = {  # class: (features across the image width, multiplicative amplitude)
    t.ROAD: (90.0, 0.07), t.SIDEWALK: (70.0, 0.08), t.BUILDING: (40.0, 0.07), t.WALL: (50.0, 0.08),
    t.VEGETATION: (110.0, 0.42), t.TERRAIN: (90.0, 0.22), t.SKY: (4.0, 0.04), t.FENCE: (60.0, 0.1),
}


def apply_textures(p: Painter, rng: np.random.Generator) -> None:
    """Class-wise multiplicative noise: foliage, asphalt grain, terrain, facades; a little everywhere else."""
    shape = p.labels.shape
    for label, (cells, amp) in TEXTURE.items():
        mask = p.labels == label
        if not mask.any():
            continue
        noise = fractal_noise(rng, shape, min(cells, shape[1] / 2), octaves=3)
        factor = 1.0 + amp * noise[mask]
        p.image[mask] *= factor[:, None]
        if label == t.VEGETATION:  # sunlit leaves are yellower, shaded ones bluer
            p.image[mask, 0] *= 1.0 + 0.15 * noise[mask]


def apply_light(p: Painter, rng: np.random.Generator, light: str, haze: np.ndarray, lights: list) -> None:
    """Haze with distance, night ambient with headlights and glowing lamps."""
    visibility = rng.uniform(120, 600) if light == "overcast" else rng.uniform(250, 3000)
    mist = np.exp(-p.depth / visibility)[..., None]
    p.image[:] = p.image * mist + haze * (1 - mist)
    if light == "night":
        h, w = p.labels.shape
        ambient = rng.uniform(0.12, 0.35)
        p.image *= ambient
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        cone = np.exp(-(((xs - p.camera.cx) / (0.35 * w)) ** 2) - ((h - ys) / (0.3 * h)) ** 2)
        cone *= ys > p.camera.horizon
        p.image += (p.image / ambient) * cone[..., None] * rng.uniform(0.3, 0.7)
        glow = np.zeros_like(p.image)
        for centre, size, colour, z in lights:
            r = max(p.camera.focal * size / max(z, 0.5), 0.7)
            d2 = (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2
            glow += np.exp(-d2 / (2 * r * r))[..., None] * np.asarray(colour, np.float32)
        p.image += glow


def apply_camera(p: Painter, rng: np.random.Generator, grain: np.random.Generator, light: str) -> np.ndarray:
    """Exposure, white balance, gamma, vignetting, hood, blur, noise and JPEG; returns uint8 RGB."""
    h, w = p.labels.shape
    img = p.image * rng.uniform(0.8, 1.2) * rng.uniform(0.93, 1.07, 3).astype(np.float32)
    img = np.clip(img, 0, 1) ** rng.uniform(0.85, 1.15)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xs / w - 0.5) ** 2 + (ys / h - 0.5) ** 2) * 2
    img *= (1 - rng.uniform(0, 0.35) * r2)[..., None]
    if rng.random() < 0.35:  # the ego car's hood, ignored in the labels
        top = h * rng.uniform(0.85, 0.95) + h * rng.uniform(0.02, 0.08) * ((xs[0] / w - 0.5) * 2) ** 2
        hood = ys > top[None, :]
        shade = jitter(rng, pick(rng, [(20, 20, 22), (60, 60, 65), (150, 150, 155), (90, 20, 20)]), 0.2)
        img[hood] = shade * (0.7 + 0.3 * (1 - (ys[hood] - top[None, :].repeat(h, 0)[hood]) / h * 4))[:, None]
        p.labels[hood] = IGNORE_INDEX
    sigma = rng.uniform(0.3, 1.2) * w / 640
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = rng.uniform(0.004, 0.02) * (2.0 if light == "night" else 1.0)
    img = img + grain.normal(0, noise, img.shape).astype(np.float32)
    out = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    if w >= 320:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(45, 95))])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(out)
