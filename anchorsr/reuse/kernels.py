"""Compiled per-pixel kernels of reuse-based reconstruction (numba, parallel over block rows).

One plane at a time. The motion field is one vector per ``block`` x ``block`` LR block, in
units of ``1/denom`` LR pixels (luma: block 4, denom 4 = quarter pel; 4:2:0 chroma: the luma
vector on a half-size plane, block 2, denom 8). Every LR sample owns an ``s x s`` HR cell; the
HR sample at (Y, X) sits at LR coordinate ((Y + 0.5) / s - 0.5, (X + 0.5) / s - 0.5).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

RES_NEAREST = 0
RES_BILINEAR = 1


def cubic_phase_weights(scale: int, a: float = -0.5) -> tuple[np.ndarray, np.ndarray]:
    """Keys cubic weights for the ``scale`` HR phases of one LR sample.

    Returns (offsets int64 (scale,), weights float32 (scale, 4)): HR sample ``s*i + k`` is
    ``sum_j weights[k, j] * lr[i + offsets[k] - 1 + j]`` (clamped at the edges).
    """
    offs = np.zeros(scale, np.int64)
    wts = np.zeros((scale, 4), np.float32)
    for k in range(scale):
        pos = (k + 0.5) / scale - 0.5
        base = int(np.floor(pos))
        t = pos - base
        offs[k] = base
        for j in range(4):
            d = abs(t - (j - 1))
            if d <= 1:
                w = (a + 2) * d**3 - (a + 3) * d**2 + 1
            elif d < 2:
                w = a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a
            else:
                w = 0.0
            wts[k, j] = w
    return offs, wts


@njit(cache=True, inline="always")
def _clampi(v, hi):
    return 0 if v < 0 else (hi if v > hi else v)


@njit(cache=True, inline="always")
def _u8(v):
    return np.uint8(0 if v < 0.0 else (255 if v > 255.0 else int(v + 0.5)))


@njit(cache=True)
def _cubic_block(lr, out, ly0, ly1, lx0, lx1, s, offs, wts, tmp):
    """Bicubic-upscale LR rows ly0..ly1, cols lx0..lx1 into their HR cells of ``out``."""
    h, w = lr.shape
    nrows = ly1 - ly0 + 4  # taps reach from 2 rows above to 2 rows below
    for r in range(nrows):  # horizontal pass over the rows the vertical taps need
        sy = _clampi(ly0 - 2 + r, h - 1)
        for lx in range(lx0, lx1):
            for k in range(s):
                acc = 0.0
                base = lx + offs[k] - 1
                for j in range(4):
                    acc += wts[k, j] * lr[sy, _clampi(base + j, w - 1)]
                tmp[r, (lx - lx0) * s + k] = acc
    for ly in range(ly0, ly1):
        for k in range(s):
            Y = ly * s + k
            r0 = ly - ly0 + offs[k] + 1  # tmp row of tap 0 (tmp starts at ly0 - 2)
            for c in range((lx1 - lx0) * s):
                acc = 0.0
                for j in range(4):
                    acc += wts[k, j] * tmp[r0 + j, c]
                out[Y, lx0 * s + c] = _u8(acc)


@njit(cache=True, parallel=True, nogil=True)  # nogil: the live pipeline runs it beside other stages
def upscale_cubic(lr, s, offs, wts, out):
    """Whole-plane bicubic upscale (key frames), parallel over bands of 8 LR rows."""
    h, w = lr.shape
    band = 8
    nb = (h + band - 1) // band
    for b in prange(nb):
        tmp = np.empty((band + 4, w * s), np.float32)
        _cubic_block(lr, out, b * band, min(h, (b + 1) * band), 0, w, s, offs, wts, tmp)


@njit(cache=True)
def _predict_clamped(prev_hr, out, Y0, Y1, X0, X1, iy, ix, w00, w01, w10, w11, rnd, sh):
    hh, wh = prev_hr.shape
    for Y in range(Y0, Y1):
        ya, yb = _clampi(Y + iy, hh - 1), _clampi(Y + iy + 1, hh - 1)
        for X in range(X0, X1):
            xa, xb = _clampi(X + ix, wh - 1), _clampi(X + ix + 1, wh - 1)
            v = (w00 * np.int32(prev_hr[ya, xa]) + w01 * np.int32(prev_hr[ya, xb])
                 + w10 * np.int32(prev_hr[yb, xa]) + w11 * np.int32(prev_hr[yb, xb]) + rnd)
            out[Y, X] = np.uint8(v >> sh)


@njit(cache=True)
def _predict_span(prev_hr, out, Y0, Y1, X0, X1, iy, ix, fy, fx, denom, shift):
    """out[Y0:Y1, X0:X1] = bilinear MC of prev_hr displaced by (iy + fy/denom, ix + fx/denom).

    The part whose samples all lie inside ``prev_hr`` runs on 0-based row views (no clamping,
    no negative-index checks, so LLVM vectorises it); the rest is clamped at the edges.
    """
    hh, wh = prev_hr.shape
    rnd = 1 << (2 * shift - 1)
    sh = 2 * shift
    w00 = (denom - fx) * (denom - fy)
    w01 = fx * (denom - fy)
    w10 = (denom - fx) * fy
    w11 = fx * fy
    ex, ey = (1 if fx else 0), (1 if fy else 0)  # extra sample needed right / below
    ya, yb = max(Y0, -iy), min(Y1, hh - ey - iy)  # rows whose samples are all inside
    xa, xb = max(X0, -ix), min(X1, wh - ex - ix)
    if ya >= yb or xa >= xb:
        _predict_clamped(prev_hr, out, Y0, Y1, X0, X1, iy, ix, w00, w01, w10, w11, rnd, sh)
        return
    _predict_clamped(prev_hr, out, Y0, ya, X0, X1, iy, ix, w00, w01, w10, w11, rnd, sh)
    _predict_clamped(prev_hr, out, yb, Y1, X0, X1, iy, ix, w00, w01, w10, w11, rnd, sh)
    _predict_clamped(prev_hr, out, ya, yb, X0, xa, iy, ix, w00, w01, w10, w11, rnd, sh)
    _predict_clamped(prev_hr, out, ya, yb, xb, X1, iy, ix, w00, w01, w10, w11, rnd, sh)
    n = xb - xa
    for Y in range(ya, yb):
        o = out[Y, xa:xb]
        a = prev_hr[Y + iy, xa + ix:xb + ix]
        if fx == 0 and fy == 0:
            o[:] = a
            continue
        b = prev_hr[Y + iy, xa + ix + ex:xb + ix + ex]
        c = prev_hr[Y + iy + ey, xa + ix:xb + ix]
        d = prev_hr[Y + iy + ey, xa + ix + ex:xb + ix + ex]
        for i in range(n):
            v = (w00 * np.int32(a[i]) + w01 * np.int32(b[i]) + w10 * np.int32(c[i])
                 + w11 * np.int32(d[i]) + rnd)
            o[i] = np.uint8(v >> sh)


def _make_plane_kernel(s: int):
    """Compile the plane kernel for one scale: a constant ``s`` lets LLVM unroll the s x s cells."""
    inv_area = np.float32(1.0 / (s * s))

    @njit(cache=True)
    def residual_span(lr, lr_prev, out, ly0, ly1, lx0, lx1, mvx, mvy, denom, shift, closed_loop,
                      res_mode, res):
        """LR residual of a span's inter pixels; added to their HR cells (nearest) or kept."""
        h, w = lr.shape
        iy, fy = mvy >> shift, mvy & (denom - 1)
        ix, fx = mvx >> shift, mvx & (denom - 1)
        n = lx1 - lx0
        for ly in range(ly0, ly1):
            # 0-based views: LLVM drops negative-index checks and vectorises the cell loops
            cells = out[ly * s:(ly + 1) * s, lx0 * s:lx1 * s]
            lrow = lr[ly, lx0:lx1]
            rrow = res[ly, lx0:lx1]
            if closed_loop:
                for i in range(n):
                    acc = np.int32(0)
                    for ky in range(s):
                        for kx in range(s):
                            acc += np.int32(cells[ky, i * s + kx])
                    rrow[i] = np.float32(lrow[i]) - np.float32(acc) * inv_area
            else:
                for i in range(n):
                    lx = lx0 + i
                    ya, yb = _clampi(ly + iy, h - 1), _clampi(ly + iy + 1, h - 1)
                    xa, xb = _clampi(lx + ix, w - 1), _clampi(lx + ix + 1, w - 1)
                    q = ((denom - fx) * (denom - fy) * np.int32(lr_prev[ya, xa])
                         + fx * (denom - fy) * np.int32(lr_prev[ya, xb])
                         + (denom - fx) * fy * np.int32(lr_prev[yb, xa])
                         + fx * fy * np.int32(lr_prev[yb, xb]) + (1 << (2 * shift - 1))) >> (2 * shift)
                    rrow[i] = np.float32(lrow[i]) - np.float32(q)
            if res_mode == RES_NEAREST:
                for ky in range(s):
                    for i in range(n):
                        r = rrow[i] + np.float32(0.5)
                        for kx in range(s):
                            v = np.float32(cells[ky, i * s + kx]) + r
                            v = min(max(v, np.float32(0.0)), np.float32(255.0))
                            cells[ky, i * s + kx] = np.uint8(v)

    @njit(cache=True, parallel=True, nogil=True)
    def reconstruct_plane(prev_hr, lr, lr_prev, mv, intra, block, denom, closed_loop, res_mode,
                          offs, wts, out, res):
        """Rebuild one HR plane from the previous HR plane, the LR plane and the motion field.

        prev_hr: uint8 (s*h, s*w); lr, lr_prev: uint8 (h, w) (lr_prev: open loop only);
        mv: int16 (bh, bw, 2) in 1/denom LR px (dx, dy); intra: bool (bh, bw);
        out: uint8 (s*h, s*w); res: float32 (h, w) scratch for the residual.
        Inter cells: pred = MC(prev_hr, s*mv); closed loop res = lr - box_down(pred); open loop
        res = lr - MC(lr_prev, mv); out = pred + up(res). Intra blocks: bicubic of lr.
        Consecutive blocks of a row with the same vector are processed as one span.
        """
        h, w = lr.shape
        bh, bw = intra.shape
        shift = 0
        while (1 << shift) < denom:
            shift += 1
        for by in prange(bh):
            tmp = np.empty((block + 4, block * s), np.float32)
            ly0 = by * block
            ly1 = min(h, ly0 + block)
            bx = 0
            while bx < bw:
                lx0 = bx * block
                if intra[by, bx]:
                    lx1 = min(w, lx0 + block)
                    _cubic_block(lr, out, ly0, ly1, lx0, lx1, s, offs, wts, tmp)
                    for ly in range(ly0, ly1):
                        for lx in range(lx0, lx1):
                            res[ly, lx] = 0.0
                    bx += 1
                    continue
                mvx, mvy = np.int32(mv[by, bx, 0]), np.int32(mv[by, bx, 1])
                bx1 = bx + 1
                while bx1 < bw and not intra[by, bx1] and mv[by, bx1, 0] == mvx and mv[by, bx1, 1] == mvy:
                    bx1 += 1
                lx1 = min(w, bx1 * block)
                dx, dy = mvx * s, mvy * s
                _predict_span(prev_hr, out, ly0 * s, ly1 * s, lx0 * s, lx1 * s,
                              dy >> shift, dx >> shift, dy & (denom - 1), dx & (denom - 1), denom, shift)
                residual_span(lr, lr_prev, out, ly0, ly1, lx0, lx1, mvx, mvy, denom, shift,
                              closed_loop, res_mode, res)
                bx = bx1
        if res_mode == RES_BILINEAR:
            _add_bilinear_residual(res, intra, block, s, out)

    return reconstruct_plane


@njit(cache=True, parallel=True, nogil=True)
def _add_bilinear_residual(res, intra, block, s, out):
    h, w = res.shape
    for Y in prange(s * h):
        ly = Y // s
        if intra[ly // block].all():
            continue
        py = (Y + 0.5) / s - 0.5
        y0 = int(np.floor(py))
        ty = np.float32(py - y0)
        ya, yb = _clampi(y0, h - 1), _clampi(y0 + 1, h - 1)
        for X in range(s * w):
            lx = X // s
            if intra[ly // block, lx // block]:
                continue
            px = (X + 0.5) / s - 0.5
            x0 = int(np.floor(px))
            tx = np.float32(px - x0)
            xa, xb = _clampi(x0, w - 1), _clampi(x0 + 1, w - 1)
            top = res[ya, xa] * (1 - tx) + res[ya, xb] * tx
            bot = res[yb, xa] * (1 - tx) + res[yb, xb] * tx
            out[Y, X] = _u8(np.float32(out[Y, X]) + top * (1 - ty) + bot * ty)


_PLANE_KERNELS: dict = {}


def plane_kernel(scale: int):
    """The compiled reconstruction kernel for ``scale`` (built on first use)."""
    if scale not in _PLANE_KERNELS:
        _PLANE_KERNELS[scale] = _make_plane_kernel(scale)
    return _PLANE_KERNELS[scale]
