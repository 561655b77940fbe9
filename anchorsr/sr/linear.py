"""The least-squares linear upsampling filter of a training set (the "linear" skip's start).

For every sub-pixel phase of the HR grid, the filter is the ``k x k`` kernel (plus a bias) over
the edge-replicated LR neighbourhood that minimises the squared error to the HR pixels of the
training pairs: one small normal-equation solve per phase, seconds of CPU. On the held-out
photos it already gains about +0.8 dB over bicubic at x2 on clean LR (bicubic is not the best
linear inverse of an antialiased bicubic downscale), which the network then builds on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import Pair

RIDGE = 1e-6  # keeps the solve well posed on flat training sets


def _neighbourhoods(lr, k: int) -> torch.Tensor:
    """(k*k + 1, h*w) float64: each LR pixel's k x k replicated neighbourhood, and a 1 for the bias."""
    x = torch.from_numpy(lr).double()[None, None] / 255.0
    r = k // 2
    cols = F.unfold(F.pad(x, (r, r, r, r), mode="replicate"), k)[0]
    return torch.cat([cols, torch.ones(1, cols.shape[1], dtype=cols.dtype)])


def fit_linear_filter(pairs: list[Pair], scale: int, k: int, stride: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (scale**2, 1, k, k), bias (scale**2,)) float32, the least-squares filter.

    Phase ``c = dy * scale + dx`` predicts HR pixel (scale*y + dy, scale*x + dx) from the LR
    neighbourhood of (y, x), the layout ``pixel_shuffle`` expects. Every ``stride``-th LR pixel
    enters the normal equations (neighbouring pixels add little new information).
    """
    n = k * k + 1
    ata = torch.zeros(n, n, dtype=torch.float64)
    atb = torch.zeros(n, scale * scale, dtype=torch.float64)
    for p in pairs:
        h, w = p.lr.shape
        a = _neighbourhoods(p.lr, k)[:, ::stride]
        hr = torch.from_numpy(p.hr).double() / 255.0
        target = hr.reshape(h, scale, w, scale).permute(1, 3, 0, 2).reshape(scale * scale, h * w)[:, ::stride]
        ata += a @ a.T
        atb += a @ target.T
    sol = torch.linalg.solve(ata + RIDGE * torch.eye(n, dtype=torch.float64), atb)  # (n, s*s)
    weight = sol[:-1].T.reshape(scale * scale, 1, k, k).float()
    return weight, sol[-1].float()
