"""The package's one definition of MSE and PSNR (8-bit samples, peak 255).

* ``mse`` / ``psnr``: one plane (optionally cropping ``border`` pixels per side).
* ``planes_mse`` / ``planes_psnr``: several planes of one frame pooled by sample count (Y, U and V
  combined: one MSE over every sample of the three planes).
* ``clip_psnr``: the PSNR of a clip (or of any run of frames) is the PSNR of the **mean MSE** over
  its frames, never the mean of per-frame PSNRs. A frame identical to its reference (MSE 0, e.g. a
  black frame) has an infinite PSNR; averaging per-frame PSNRs would let that one frame (or a cap
  such as 100 dB standing in for it) move the clip's figure, whereas its MSE of 0 weighs as one frame
  among the others.

A leaf module: it depends on numpy only.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

PEAK = 255.0


def crop(a: np.ndarray, border: int = 0) -> np.ndarray:
    """``a`` without ``border`` pixels on each side of its last two axes."""
    if border <= 0:
        return a
    return a[..., border:-border, border:-border]


def sse(a: np.ndarray, b: np.ndarray, border: int = 0) -> tuple[float, int]:
    """(sum of squared errors, sample count) of two same-shaped planes, ``border`` px cropped."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"expected planes of one shape, got {a.shape} and {b.shape}")
    a, b = crop(a, border), crop(b, border)
    # 8-bit (integer) samples differ by exact float32 integers; the squares are summed in float64.
    dt = np.float32 if a.dtype.kind in "ui" and b.dtype.kind in "ui" and a.itemsize <= 2 and b.itemsize <= 2 \
        else np.float64
    d = (a.astype(dt) - b.astype(dt)).ravel()
    return float(np.einsum("i,i->", d, d, dtype=np.float64)), int(d.size)


def mse(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    """Mean squared error of one plane against its reference."""
    e, n = sse(a, b, border)
    if n == 0:
        raise ValueError("no samples to compare (empty planes or border too wide)")
    return e / n


def planes_mse(planes: Sequence[np.ndarray], reference: Sequence[np.ndarray], border: int = 0) -> float:
    """MSE over the samples of all planes together (a frame's Y, U, V: each sample weighs one)."""
    if len(planes) != len(reference):
        raise ValueError(f"expected {len(reference)} planes, got {len(planes)}")
    total, count = 0.0, 0
    for a, b in zip(planes, reference):
        e, n = sse(a, b, border)
        total += e
        count += n
    if count == 0:
        raise ValueError("no samples to compare")
    return total / count


def psnr_from_mse(value: float, peak: float = PEAK) -> float:
    """PSNR in dB of an MSE; infinite for MSE 0 (identical signals)."""
    value = float(value)
    if value < 0 or math.isnan(value):
        raise ValueError(f"expected an MSE >= 0, got {value}")
    return math.inf if value == 0 else 10.0 * math.log10(peak * peak / value)


def psnr(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    """PSNR (dB, peak 255) of one plane against its reference, ``border`` px cropped per side."""
    return psnr_from_mse(mse(a, b, border))


def planes_psnr(planes: Sequence[np.ndarray], reference: Sequence[np.ndarray], border: int = 0) -> float:
    """PSNR (dB) of a frame over its planes combined (one MSE over every sample)."""
    return psnr_from_mse(planes_mse(planes, reference, border))


def mean_mse(frame_mses: Iterable[float]) -> float:
    """The mean of per-frame MSEs (each frame weighs one, whatever its PSNR)."""
    vals = np.asarray(list(frame_mses), np.float64)
    if vals.size == 0:
        raise ValueError("expected at least one frame's MSE, got none")
    return float(vals.mean())


def clip_psnr(frame_mses: Iterable[float]) -> float:
    """A clip's PSNR: 10*log10(255^2 / mean of its frames' MSEs). Finite unless every frame is exact."""
    return psnr_from_mse(mean_mse(frame_mses))


class ClipMeter:
    """Accumulates per-frame MSEs and gives the clip's PSNR by the mean-MSE rule.

    ``add(planes, reference)`` measures a frame (planes combined) and returns its MSE.
    """

    def __init__(self, border: int = 0) -> None:
        self.border = border
        self.mses: list[float] = []

    def add(self, planes: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
        m = planes_mse(planes, reference, self.border)
        self.mses.append(m)
        return m

    def add_plane(self, a: np.ndarray, b: np.ndarray) -> float:
        m = mse(a, b, self.border)
        self.mses.append(m)
        return m

    def __len__(self) -> int:
        return len(self.mses)

    @property
    def mse(self) -> float:
        return mean_mse(self.mses)

    @property
    def psnr(self) -> float:
        return clip_psnr(self.mses)
