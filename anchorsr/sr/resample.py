"""Bicubic upsampling at an integer scale, crop-exact (shared by the networks and chroma)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

BICUBIC_RADIUS_PX = 2  # LR pixels each side that one output pixel reads


def _cubic(d: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel (a = -0.75, as torch's and OpenCV's bicubic)."""
    d = abs(d)
    if d <= 1:
        return ((a + 2) * d - (a + 3)) * d * d + 1
    if d < 2:
        return (((d - 5) * d + 8) * d - 4) * a
    return 0.0


def _phase_taps(scale: int) -> torch.Tensor:
    """(scale, 5): weights of LR offsets -2..2 for each HR sub-pixel phase (half-pixel centres)."""
    taps = torch.zeros(scale, 5, dtype=torch.float64)
    for k in range(scale):
        t = (k + 0.5) / scale - 0.5
        for j, off in enumerate(range(-2, 3)):
            taps[k, j] = _cubic(t - off)
    return (taps / taps.sum(dim=1, keepdim=True)).float()


def _upsample_rows(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """(M, 1, h, w) -> (M, 1, h, s*w): bicubic along width, edges replicated."""
    s = taps.shape[0]
    y = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), taps.view(s, 1, 1, 5).to(x))
    m, _, h, w = y.shape
    return y.permute(0, 2, 3, 1).reshape(m, 1, h, w * s)


def bicubic_planes(planes: torch.Tensor, scale: int) -> torch.Tensor:
    """float (N, C, h, w) -> (N, C, s*h, s*w), bicubic with edges clamped.

    The same function as ``F.interpolate(mode="bicubic")`` at an integer scale, written as
    fixed per-phase taps so that a crop's output is bit-identical to the same pixels of a
    whole-plane run (the float coordinate maths of interpolate is not, at x3).
    """
    n, c, h, w = planes.shape
    taps = _phase_taps(scale)
    x = _upsample_rows(planes.reshape(n * c, 1, h, w), taps)
    x = _upsample_rows(x.transpose(2, 3), taps).transpose(2, 3)
    return x.reshape(n, c, scale * h, scale * w)
