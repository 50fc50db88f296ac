"""``shapes``: synthetic semantic segmentation generated from a seed.

Each image has a greyish background (luminance gradient, faint texture) and 1-4 objects of
four classes (square, circle, triangle, cross) with random size, position, rotation and
strongly saturated random colour; later objects occlude earlier ones, and Gaussian noise is
added on top. Each class usually wears its own texture (stripes, rings, checks, speckle),
otherwise a random one, so shape has to settle the rest.

What this asks of an architecture: telling object from background means detecting
saturation whatever the hue, which is nonlinear (a one-layer network cannot); textures need
a few layers; shapes and occlusions need a receptive field about the object's size (depth,
dilation) and precise borders need high-resolution features (skips). Masks hold class ids
with ``0`` = background.
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES = ("background", "square", "circle", "triangle", "cross")
TEXTURES = ("flat", "stripes", "rings", "checks", "speckle")
CLASS_TEXTURE = {1: 1, 2: 2, 3: 3, 4: 4}  # the texture a class usually wears (square: stripes ...)
TEXTURE_MATCH = 0.75  # how often it does; otherwise any texture, so shape must decide


def generate_shapes(
    num_samples: int, image_size: tuple[int, int], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 [N, H, W, 3]`` and masks ``uint8 [N, H, W]``, the same for the same seed."""
    rng = np.random.default_rng([seed, 2024])
    height, width = image_size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    images = np.empty((num_samples, height, width, 3), dtype=np.uint8)
    masks = np.zeros((num_samples, height, width), dtype=np.uint8)
    for i in range(num_samples):
        canvas = _background(rng, yy, xx)
        for _ in range(int(rng.integers(1, 5))):
            cls = int(rng.integers(1, len(CLASS_NAMES)))
            inside, u, v = _shape(rng, cls, yy, xx, min(height, width))
            kind = CLASS_TEXTURE[cls] if rng.random() < TEXTURE_MATCH else None
            canvas[inside] = _texture(rng, u[inside], v[inside], _saturated(rng), kind=kind)
            masks[i][inside] = cls
        canvas += rng.normal(0.0, rng.uniform(3.0, 10.0), canvas.shape)
        images[i] = np.clip(canvas, 0, 255).astype(np.uint8)
    return images, masks


def _background(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A colour gradient plus a faint texture, as float ``[H, W, 3]``."""
    base = rng.uniform(50, 205) + rng.uniform(-12, 12, 3)
    slope = rng.uniform(-1.2, 1.2, (2, 1)) + rng.uniform(-0.2, 0.2, (2, 3))
    canvas = base + yy[..., None] * slope[0] + xx[..., None] * slope[1]
    texture = _texture(rng, yy, xx, base, amplitude=(0.0, 10.0))
    return canvas + texture - base


def _shape(
    rng: np.random.Generator, cls: int, yy: np.ndarray, xx: np.ndarray, side: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean mask of one object and its rotated local coordinates ``u, v``."""
    radius = rng.uniform(0.14, 0.32) * side
    cy, cx = rng.uniform(0.1, 0.9, 2) * np.array(yy.shape)
    angle = rng.uniform(0.0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    if cls == 1:  # square
        r = radius * 0.85
        inside = (np.abs(u) <= r) & (np.abs(v) <= r)
    elif cls == 2:  # circle
        inside = u * u + v * v <= radius * radius
    elif cls == 3:  # equilateral triangle, circumradius `radius`
        s3 = np.sqrt(3.0)
        r = radius * 1.2
        inside = (v <= r / 2) & (s3 * u - v <= r) & (-s3 * u - v <= r)
    else:  # cross (plus sign)
        arm = radius * 0.38
        inside = ((np.abs(u) <= radius) & (np.abs(v) <= arm)) | ((np.abs(v) <= radius) & (np.abs(u) <= arm))
    return inside, u, v


def _saturated(rng: np.random.Generator) -> np.ndarray:
    """A strongly coloured RGB: a random hue 60-100 levels away from grey (backgrounds are greyish)."""
    hue = rng.normal(size=3)
    hue -= hue.mean()
    return rng.uniform(80.0, 175.0) + hue / np.linalg.norm(hue) * rng.uniform(60.0, 100.0)


def _texture(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, colour: np.ndarray,
    amplitude: tuple[float, float] = (15.0, 45.0), kind: int | None = None,
) -> np.ndarray:
    """Pixels ``[..., 3]``: ``colour`` modulated by a flat, striped, ringed, checked or speckled pattern."""
    amp = rng.uniform(*amplitude)
    kind = int(rng.integers(len(TEXTURES))) if kind is None else kind
    period = rng.uniform(3.0, 6.0)
    if kind == 0:  # flat
        pattern = np.zeros_like(u)
    elif kind == 1:  # stripes along the object's own axis
        pattern = np.sin(2 * np.pi * u / period)
    elif kind == 2:  # concentric rings
        pattern = np.sin(2 * np.pi * np.sqrt(u * u + v * v) / period)
    elif kind == 3:  # checkerboard
        pattern = np.where((np.floor(u / period) + np.floor(v / period)) % 2 == 0, 1.0, -1.0)
    else:  # speckle
        pattern = rng.uniform(-1.0, 1.0, u.shape)
    return colour + amp * pattern[..., None] * rng.choice([-1.0, 1.0], 3)
