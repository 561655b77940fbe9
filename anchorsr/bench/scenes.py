"""Synthetic camera work over real photographs: HR ground truth with known, sub-pixel motion.

A virtual camera pans (and optionally zooms) over a photograph; each HR frame is resampled
from the photo with a cubic spline, so the motion is smooth and sub-pixel like a real camera
and the texture is real. Used by the demo, the benchmarks and (at tiny sizes) the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
from scipy import ndimage

from ..stream.frames import YUV, resize_yuv, rgb_to_yuv


def photo(name: str = "astronaut") -> np.ndarray:
    """A real photograph that scikit-image ships (no download): uint8 (H, W, 3) RGB."""
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


@dataclass(frozen=True)
class CameraPath:
    """Camera motion in photo pixels per frame, and zoom per frame (1.0 = none)."""

    dx_px: float = 0.61
    dy_px: float = 0.37
    zoom_per_frame: float = 1.0


def render_pan(image: np.ndarray, width: int, height: int, n_frames: int,
               path: CameraPath = CameraPath(), magnify: float = 1.0, order: int = 3) -> Iterator[YUV]:
    """HR frames (yuv420p planes) of a ``width`` x ``height`` camera moving over ``image``.

    ``magnify`` > 1 films the photo closer than 1:1 (for frames larger than the photo); it
    interpolates the photo, so it adds no detail: prefer large photos for large frames.
    ``order`` is the spline order of the resampling (3 for ground truth, 1 is faster).
    """
    img = image.astype(np.float32)
    ih, iw = img.shape[:2]
    for t in range(n_frames):
        zoom = magnify * path.zoom_per_frame**t
        cy = ih / 2 + path.dy_px * (t - n_frames / 2)
        cx = iw / 2 + path.dx_px * (t - n_frames / 2)
        ys = cy + (np.arange(height, dtype=np.float32) - height / 2) / zoom
        xs = cx + (np.arange(width, dtype=np.float32) - width / 2) / zoom
        grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
        rgb = np.empty((height, width, 3), np.float32)
        for c in range(3):
            rgb[..., c] = ndimage.map_coordinates(img[..., c], [grid_y, grid_x], order=order, mode="reflect")
        yield rgb_to_yuv(np.clip(rgb + 0.5, 0, 255).astype(np.uint8))


def downscale(frames: Iterator[YUV], scale: int) -> Iterator[YUV]:
    """LR frames: HR downscaled by ``scale`` (bicubic, antialiased, swscale)."""
    for y, u, v in frames:
        yield resize_yuv(y, u, v, y.shape[1] // scale, y.shape[0] // scale)


def hr_planes_for_lr(y: np.ndarray, u: np.ndarray, v: np.ndarray, scale: int) -> YUV:
    """HR ground truth in the reconstruction's layout: chroma ``scale`` x the LR chroma size.

    For even LR sizes this is the HR frame unchanged; odd sizes get one edge row/column
    replicated in chroma.
    """
    lh, lw = y.shape[0] // scale, y.shape[1] // scale
    ch, cw = scale * -(-lh // 2), scale * -(-lw // 2)

    def fit(p: np.ndarray, h: int, w: int) -> np.ndarray:
        p = p[:h, :w]
        return np.pad(p, ((0, h - p.shape[0]), (0, w - p.shape[1])), mode="edge")

    return fit(y, scale * lh, scale * lw), fit(u, ch, cw), fit(v, ch, cw)
