"""Bicubic upsampling at an integer scale, crop-exact (shared by the networks and chroma).

Two forms of one function: :func:`bicubic_planes_np` (numpy, what chroma and the numpy engine
use; importing this module does not import torch) and :func:`bicubic_planes` (torch, inside the
torch networks' bicubic skip, differentiable for training).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

BICUBIC_RADIUS_PX = 2  # LR pixels each side that one output pixel reads


def _cubic(d: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel (a = -0.75, as torch's and OpenCV's bicubic)."""
    d = abs(d)
    if d <= 1:
        return ((a + 2) * d - (a + 3)) * d * d + 1
    if d < 2:
        return (((d - 5) * d + 8) * d - 4) * a
    return 0.0


@lru_cache(maxsize=None)
def phase_taps(scale: int) -> np.ndarray:
    """float32 (scale, 5): weights of LR offsets -2..2 for each HR sub-pixel phase (half-pixel
    centres), each row summing to 1."""
    taps = np.zeros((scale, 5), np.float64)
    for k in range(scale):
        t = (k + 0.5) / scale - 0.5
        for j, off in enumerate(range(-2, 3)):
            taps[k, j] = _cubic(t - off)
    taps = (taps / taps.sum(axis=1, keepdims=True)).astype(np.float32)
    taps.flags.writeable = False
    return taps


def _upsample_last_axis(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """float32 (..., w) -> (..., s*w): bicubic along the last axis, edges replicated."""
    s, w = taps.shape[0], x.shape[-1]
    xp = np.empty(x.shape[:-1] + (w + 4,), np.float32)  # edges replicated by 2 (np.pad is slower)
    xp[..., 2:w + 2] = x
    xp[..., :2] = x[..., :1]
    xp[..., w + 2:] = x[..., -1:]
    out = np.empty(x.shape[:-1] + (w, s), np.float32)
    for k in range(s):
        acc = out[..., k]
        np.multiply(xp[..., 0:w], taps[k, 0], out=acc)
        for j in range(1, 5):
            acc += taps[k, j] * xp[..., j:j + w]
    return out.reshape(x.shape[:-1] + (s * w,))


def bicubic_planes_np(planes: np.ndarray, scale: int) -> np.ndarray:
    """float32 (..., h, w) -> (..., s*h, s*w), bicubic with edges clamped (numpy).

    The same fixed per-phase taps as :func:`bicubic_planes`, so a crop's output equals the same
    pixels of a whole-plane run exactly (every output pixel is the same sums of the same
    products wherever it lies); it matches the torch form to float rounding.
    """
    taps = phase_taps(scale)
    x = _upsample_last_axis(np.asarray(planes, np.float32), taps)
    x = _upsample_last_axis(np.swapaxes(x, -1, -2), taps)
    return np.ascontiguousarray(np.swapaxes(x, -1, -2))


def bicubic_planes(planes, scale: int):
    """float torch (N, C, h, w) -> (N, C, s*h, s*w), bicubic with edges clamped.

    The same function as ``F.interpolate(mode="bicubic")`` at an integer scale, written as
    fixed per-phase taps so that a crop's output is bit-identical to the same pixels of a
    whole-plane run (the float coordinate maths of interpolate is not, at x3).
    """
    import torch
    import torch.nn.functional as F

    n, c, h, w = planes.shape
    taps = torch.from_numpy(phase_taps(scale).copy())

    def rows(x: torch.Tensor) -> torch.Tensor:  # (M, 1, h, w) -> (M, 1, h, s*w), along width
        y = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), taps.view(scale, 1, 1, 5).to(x))
        m, _, hh, ww = y.shape
        return y.permute(0, 2, 3, 1).reshape(m, 1, hh, ww * scale)

    x = rows(planes.reshape(n * c, 1, h, w))
    x = rows(x.transpose(2, 3)).transpose(2, 3)
    return x.reshape(n, c, scale * h, scale * w)
