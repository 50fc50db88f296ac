"""``moving-shapes``: synthetic clip classification generated from a seed; the class is the motion.

Each clip shows one shape (square, triangle, cross or bar, striped along its own axis, in a
random hue 50-80 levels lighter or darker than the background) over a static textured background (grey level, two random
gratings, fixed per-pixel grain), with fresh Gaussian noise in every frame. The shape moves at a
random speed in one of four directions and, in half of the classes, also spins at a random rate
in a random sense: ``CLASS_NAMES`` = direction × {translate, translate + spin}.

No single frame tells the class: the start position is uniform over the frame, which is a torus
(a shape leaving one side re-enters on the other), and the start angle is uniform, both drawn
independently of the class; translating a uniform position or rotating a uniform angle leaves it
uniform, so every frame of every class has the same distribution. The class only shows in how
consecutive frames differ: direction needs a temporal filter, spin versus no spin needs the
orientation change read off the shape's outline and stripes.
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES = ("right", "left", "up", "down", "right+spin", "left+spin", "up+spin", "down+spin")
DIRECTIONS = ((1.0, 0.0), (-1.0, 0.0), (0.0, -1.0), (0.0, 1.0))  # (dx, dy) per frame, image axes
SHAPES = ("square", "triangle", "cross", "bar")
FRAMES = 8
SPEED = (2.0, 3.0)  # pixels per frame at 32 pixels, scaled with the frame size
SPIN = (np.deg2rad(15.0), np.deg2rad(30.0))  # radians per frame (below any shape's symmetry angle / 2)


def generate_moving_shapes(
    num_samples: int, image_size: tuple[int, int] = (32, 32), seed: int = 0, frames: int = FRAMES
) -> tuple[np.ndarray, np.ndarray]:
    """Clips ``uint8 [N, T, H, W, 3]`` and labels ``int64 [N]`` (classes balanced to within one),
    the same for the same arguments."""
    rng = np.random.default_rng([seed, 2025])
    height, width = image_size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    labels = rng.permutation(np.arange(num_samples) % len(CLASS_NAMES)).astype(np.int64)
    clips = np.empty((num_samples, frames, height, width, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        level = rng.uniform(70, 185)
        canvas = np.broadcast_to(_background(rng, level, yy, xx), (frames, height, width, 3)).copy()
        _draw_moving_shape(rng, int(label), canvas, _contrasting(rng, level), yy, xx)
        canvas += rng.normal(0.0, rng.uniform(2.0, 6.0), canvas.shape)
        clips[i] = np.clip(canvas, 0, 255).astype(np.uint8)
    return clips, labels


def _background(rng: np.random.Generator, level: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A greyish static background around ``level``: two random gratings and a fixed grain, float ``[H, W, 3]``."""
    base = level + rng.uniform(-10, 10, 3)
    out = np.zeros(yy.shape, dtype=np.float64)
    for _ in range(2):
        angle, period = rng.uniform(0, np.pi), rng.uniform(4.0, 12.0)
        phase = xx * np.cos(angle) + yy * np.sin(angle)
        out += rng.uniform(2.0, 6.0) * np.sin(2 * np.pi * phase / period + rng.uniform(0, 2 * np.pi))
    out += rng.normal(0.0, 3.0, yy.shape)
    return base + out[..., None]


def _contrasting(rng: np.random.Generator, level: float) -> np.ndarray:
    """A random hue 50-80 grey levels lighter or darker than the background (whichever fits in 0..255)."""
    hue = rng.normal(size=3)
    hue -= hue.mean()
    step = rng.uniform(50.0, 80.0) * (1.0 if level < 128 else -1.0)
    return level + step + hue / np.linalg.norm(hue) * rng.uniform(20.0, 40.0)


def _draw_moving_shape(rng: np.random.Generator, label: int, canvas: np.ndarray, colour: np.ndarray,
                       yy: np.ndarray, xx: np.ndarray) -> None:
    """Paint one shape into every frame of ``canvas`` ``[T, H, W, 3]`` following class ``label``'s motion."""
    frames, height, width = canvas.shape[:3]
    side = min(height, width)
    kind = SHAPES[int(rng.integers(len(SHAPES)))]
    radius = rng.uniform(0.18, 0.26) * side
    stripe_amp, period = rng.uniform(10.0, 20.0), rng.uniform(3.0, 5.0)
    start = rng.uniform(0, 1, 2) * (width, height)  # uniform on the torus, whatever the class
    angle0 = rng.uniform(0.0, 2 * np.pi)
    speed = rng.uniform(*SPEED) * side / 32.0
    spin = rng.uniform(*SPIN) * rng.choice([-1.0, 1.0]) if label >= len(DIRECTIONS) else 0.0
    dx, dy = DIRECTIONS[label % len(DIRECTIONS)]
    for t in range(frames):
        cx, cy = start[0] + speed * dx * t, start[1] + speed * dy * t
        ox = (xx - cx + width / 2) % width - width / 2  # offsets on the torus
        oy = (yy - cy + height / 2) % height - height / 2
        a = angle0 + spin * t
        u = ox * np.cos(a) + oy * np.sin(a)
        v = -ox * np.sin(a) + oy * np.cos(a)
        inside = _inside(kind, u, v, radius)
        stripes = stripe_amp * np.sin(2 * np.pi * u[inside] / period)
        canvas[t][inside] = colour + stripes[:, None]


def _inside(kind: str, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Boolean mask of a shape in its own coordinates ``u, v`` (all but the square are chiral enough
    to show their angle modulo less than 2 × the largest spin per frame)."""
    if kind == "square":  # 90° symmetry > 2 × 30°
        r = radius * 0.8
        return (np.abs(u) <= r) & (np.abs(v) <= r)
    if kind == "triangle":
        s3, r = np.sqrt(3.0), radius * 1.2
        return (v <= r / 2) & (s3 * u - v <= r) & (-s3 * u - v <= r)
    if kind == "cross":  # an off-centre cross: one long arm breaks the 90° symmetry
        arm = radius * 0.35
        return ((u >= -radius * 0.6) & (u <= radius * 1.2) & (np.abs(v) <= arm)) | (
            (np.abs(v) <= radius) & (np.abs(u) <= arm)
        )
    return (np.abs(u) <= radius * 1.3) & (np.abs(v) <= radius * 0.45)  # bar
