"""Compiled per-pixel kernels of reuse-based reconstruction (numba, parallel over block rows).

One plane at a time. The motion field is one vector per ``block`` x ``block`` LR block, in
units of ``1/denom`` LR pixels (luma: block 4, denom 4 = quarter pel; 4:2:0 chroma: the luma
vector on a half-size plane, block 2, denom 8). Every LR sample owns an ``s x s`` HR cell; the
HR sample at (Y, X) sits at LR coordinate ((Y + 0.5) / s - 0.5, (X + 0.5) / s - 0.5).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..types import LR_MODELS

RES_NEAREST = 0
RES_BILINEAR = 1
RES_BICUBIC = 2
# A vector difference between neighbouring blocks of this many quarter pels (one LR pixel) or
# more, or an intra neighbour, makes a full-strength motion seam; smaller ones scale it down.
SEAM_FULL_QPEL = 4


def keys_cubic(d, a: float = -0.5):
    """The Keys cubic kernel at distance(s) ``d`` (any sign; zero from 2 on)."""
    d = np.abs(d)
    return np.where(d <= 1, (a + 2) * d**3 - (a + 3) * d**2 + 1,
                    np.where(d < 2, a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a, 0.0))


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
        wts[k] = keys_cubic(t - np.arange(-1, 3), a)
    return offs, wts


@njit(cache=True, inline="always")
def _clampi(v, hi):
    return 0 if v < 0 else (hi if v > hi else v)


@njit(cache=True, inline="always")
def _u8(v):
    return np.uint8(0 if v < 0.0 else (255 if v > 255.0 else int(v + 0.5)))


@njit(cache=True)
def _cubic_block(lr, out, ly0, ly1, lx0, lx1, s, offs, wts, tmp, pad):
    """Bicubic-upscale LR rows ly0..ly1, cols lx0..lx1 into their HR cells of ``out``.

    tmp: float32 scratch of at least (ly1 - ly0 + 4, (lx1 - lx0) * s); pad: float32 scratch of
    at least lx1 - lx0 + 4. Each source row is first copied with a clamped 2-sample border into
    ``pad``, so the tap loops need no clamping and vectorise.
    """
    h, w = lr.shape
    n = lx1 - lx0
    nrows = ly1 - ly0 + 4  # taps reach from 2 rows above to 2 rows below
    for r in range(nrows):  # horizontal pass over the rows the vertical taps need
        src = lr[_clampi(ly0 - 2 + r, h - 1)]
        for c in range(n + 4):
            pad[c] = np.float32(src[_clampi(lx0 - 2 + c, w - 1)])
        trow = tmp[r]
        for k in range(s):
            w0, w1, w2, w3 = wts[k, 0], wts[k, 1], wts[k, 2], wts[k, 3]
            p = pad[offs[k] + 1:]  # tap j of output i reads p[i + j]
            for i in range(n):
                trow[i * s + k] = w0 * p[i] + w1 * p[i + 1] + w2 * p[i + 2] + w3 * p[i + 3]
    m = n * s
    for ly in range(ly0, ly1):
        for k in range(s):
            r0 = ly - ly0 + offs[k] + 1  # tmp row of tap 0 (tmp starts at ly0 - 2)
            w0, w1, w2, w3 = wts[k, 0], wts[k, 1], wts[k, 2], wts[k, 3]
            t0, t1, t2, t3 = tmp[r0], tmp[r0 + 1], tmp[r0 + 2], tmp[r0 + 3]
            orow = out[ly * s + k, lx0 * s:lx1 * s]
            for c in range(m):
                v = w0 * t0[c] + w1 * t1[c] + w2 * t2[c] + w3 * t3[c] + np.float32(0.5)
                orow[c] = np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))


_KEY_BAND = 32  # LR rows per parallel band of a whole-plane upscale


@njit(cache=True, parallel=True, nogil=True)  # nogil: the live pipeline runs it beside other stages
def upscale_cubic(lr, s, offs, wts, out):
    """Whole-plane bicubic upscale (key frames), parallel over bands of LR rows."""
    h, w = lr.shape
    band = _KEY_BAND
    nb = (h + band - 1) // band
    for b in prange(nb):
        tmp = np.empty((band + 4, w * s), np.float32)
        pad = np.empty(w + 4, np.float32)
        _cubic_block(lr, out, b * band, min(h, (b + 1) * band), 0, w, s, offs, wts, tmp, pad)


@njit(cache=True, inline="always")
def _f32(v):
    return np.float32(v)


@njit(cache=True, inline="always")
def _mc_edge(r0, r1, orow, Xs, Xe, ix, wh, a0, a1, b0, b1, half, inv):
    for X in range(Xs, Xe):
        p, q = _clampi(X + ix, wh - 1), _clampi(X + ix + 1, wh - 1)
        v = a0 * _f32(r0[p]) + a1 * _f32(r0[q]) + b0 * _f32(r1[p]) + b1 * _f32(r1[q]) + half
        orow[X] = np.uint8(np.int32(v * inv))


@njit(cache=True, inline="always")
def _mc_span(prev_hr, out, Y0, Y1, X0, X1, iy, ix, fy, fx, denom):
    """out[Y0:Y1, X0:X1] = bilinear MC of prev_hr displaced by (iy + fy/denom, ix + fx/denom).

    Samples outside ``prev_hr`` are clamped to its border. Arithmetic is float32 (exact here:
    every intermediate is an integer below 2**24, and the final scaling is by a power of two),
    so the interior loops vectorise at full width; they run on 0-based views, so LLVM drops the
    negative-index checks. The result equals the integer formula
    ``(sum_w w * sample + denom**2 / 2) >> (2 * log2(denom))``. Everything that does not depend
    on the row is worked out once per span.
    """
    hh, wh = prev_hr.shape
    ex = 1 if fx else 0
    xa, xb = max(X0, -ix), min(X1, wh - ex - ix)  # columns whose samples all lie inside
    if xa >= xb:
        xa = xb = X1
    n = xb - xa
    a0, a1 = _f32((denom - fx) * (denom - fy)), _f32(fx * (denom - fy))
    b0, b1 = _f32((denom - fx) * fy), _f32(fx * fy)
    half = _f32(denom * denom // 2)
    inv = _f32(1.0 / (denom * denom))
    sa, sb = xa + ix, xb + ix  # source columns of the interior
    for Y in range(Y0, Y1):
        r0 = prev_hr[_clampi(Y + iy, hh - 1)]
        r1 = prev_hr[_clampi(Y + iy + 1, hh - 1)] if fy else r0
        orow = out[Y]
        _mc_edge(r0, r1, orow, X0, xa, ix, wh, a0, a1, b0, b1, half, inv)  # clamped edge columns
        _mc_edge(r0, r1, orow, xb, X1, ix, wh, a0, a1, b0, b1, half, inv)
        if n <= 0:
            continue
        o = orow[xa:xb]
        if fx == 0 and fy == 0:
            o[:] = r0[sa:sb]
        elif fy == 0:
            p0, p1 = r0[sa:sb], r0[sa + 1:sb + 1]
            for i in range(n):
                o[i] = np.uint8(np.int32((a0 * _f32(p0[i]) + a1 * _f32(p1[i]) + half) * inv))
        elif fx == 0:
            p0, q0 = r0[sa:sb], r1[sa:sb]
            for i in range(n):
                o[i] = np.uint8(np.int32((a0 * _f32(p0[i]) + b0 * _f32(q0[i]) + half) * inv))
        else:
            p0, p1 = r0[sa:sb], r0[sa + 1:sb + 1]
            q0, q1 = r1[sa:sb], r1[sa + 1:sb + 1]
            for i in range(n):
                v = a0 * _f32(p0[i]) + a1 * _f32(p1[i]) + b0 * _f32(q0[i]) + b1 * _f32(q1[i]) + half
                o[i] = np.uint8(np.int32(v * inv))


# The row helpers below take the scale ``s`` as an argument and are inlined into the plane
# kernel (numba IR inlining), where ``s`` is a constant, so LLVM still unrolls the s x s cells.
# They are module-level functions, not closures: numba keys a cached closure by the pickled
# contents of its cells, and a cell holding another jitted function pickles with a per-process
# UUID, so such a kernel missed its disk cache on every start and was recompiled (seconds).


@njit(cache=True, inline="always")
def _open_loop_residual(lr, lr_prev, res, ly0, ly1, lx0, lx1, mvx, mvy, denom, shift):
    """Open loop: res = lr - bilinear MC of the previous LR plane (the codec's residual)."""
    h, w = lr.shape
    iy, fy = mvy >> shift, mvy & (denom - 1)
    ix, fx = mvx >> shift, mvx & (denom - 1)
    for ly in range(ly0, ly1):
        ya, yb = _clampi(ly + iy, h - 1), _clampi(ly + iy + 1, h - 1)
        for lx in range(lx0, lx1):
            xa, xb = _clampi(lx + ix, w - 1), _clampi(lx + ix + 1, w - 1)
            q = ((denom - fx) * (denom - fy) * np.int32(lr_prev[ya, xa])
                 + fx * (denom - fy) * np.int32(lr_prev[ya, xb])
                 + (denom - fx) * fy * np.int32(lr_prev[yb, xa])
                 + fx * fy * np.int32(lr_prev[yb, xb]) + (1 << (2 * shift - 1))) >> (2 * shift)
            res[ly, lx] = np.float32(lr[ly, lx]) - np.float32(q)


@njit(cache=True, inline="always")
def _closed_loop_residual_row(lrow, cells, rrow, s, inv_area):
    """rrow = lrow - box-average of each LR pixel's s x s HR cell (one LR row, all columns)."""
    for i in range(lrow.shape[0]):
        acc = np.float32(0.0)
        for ky in range(s):
            for kx in range(s):
                acc += np.float32(cells[ky, i * s + kx])
        rrow[i] = np.float32(lrow[i]) - acc * inv_area


@njit(cache=True, inline="always")
def _add_nearest_row(rrow, cells, s):
    """Add each LR residual to every sample of its HR cell (rounded, clamped to 0..255)."""
    n = rrow.shape[0]
    for ky in range(s):
        crow = cells[ky]
        for i in range(n):
            r = rrow[i] + np.float32(0.5)
            for kx in range(s):
                v = np.float32(crow[i * s + kx]) + r
                v = min(max(v, np.float32(0.0)), np.float32(255.0))
                crow[i * s + kx] = np.uint8(v)


@njit(cache=True)
def linear_phases(s):
    """Linear interpolation weights in the layout of :func:`cubic_phase_weights` (taps 1, 2)."""
    offs = np.zeros(s, np.int64)
    wts = np.zeros((s, 4), np.float32)
    for k in range(s):
        pos = (k + 0.5) / s - 0.5
        base = int(np.floor(pos))
        offs[k] = base
        wts[k, 1] = np.float32(1.0 - (pos - base))
        wts[k, 2] = np.float32(pos - base)
    return offs, wts


DOWN_FILTERS = LR_MODELS


def down_taps(scale: int, kind: str = "bicubic", a: float = -0.5) -> tuple[int, np.ndarray]:
    """The closed loop's model of how an LR sample was made from its HR neighbourhood.

    Returns (k0, taps float32 (n,)): LR sample i ~ ``sum_t taps[t] * hr[s*i + k0 + t]`` per axis
    (clamped at the edges). "bicubic": the Keys cubic stretched by ``scale`` (support 4 LR pixels,
    the antialiased bicubic reduction that camera pipelines and FFmpeg's scaler apply, and the
    one the SR network's training data uses), normalised to sum 1. "box": no taps (n = 0): the
    mean of the sample's own s x s HR cell, the kernel's exact fast path.
    """
    if kind == "box":
        return 0, np.zeros(0, np.float32)
    if kind != "bicubic":
        raise ValueError(f"down filter must be one of {DOWN_FILTERS}, got {kind!r}")
    ks = np.arange(-2 * scale - 1, 2 * scale + 2)
    w = keys_cubic((ks + 0.5 - scale / 2) / scale, a)  # HR sample centre to LR sample centre, LR pixels
    keep = np.nonzero(w)[0]
    w = w[keep[0]:keep[-1] + 1]
    return int(ks[keep[0]]), (w / w.sum()).astype(np.float32)


@njit(cache=True, parallel=True, nogil=True)
def _closed_loop_residual_filtered(lr, out, intra, block, s, k0, taps, res):  # pragma: no cover - compiled
    """res = lr - down(out) on the pixels of inter blocks (intra pixels are left as they are),
    with the separable, symmetric reduction ``k0``/``taps`` of :func:`down_taps`. Per LR row:
    the vertical taps over the HR rows it reads into one float row of HR width (contiguous rows:
    the loops vectorise), then the horizontal taps at stride s over the row split into its s
    phases (contiguous again). Needs every HR row of ``out`` predicted."""
    h, w = lr.shape
    H, W = out.shape
    n = taps.shape[0]
    pad = -k0  # columns of edge replication on the left (k0 <= 0); the right needs n + k0 + s
    for ly in prange(h):
        irow = intra[ly // block]
        if irow.all():
            continue
        col = np.zeros(W + pad + n + 2 * s, np.float32)
        y0 = s * ly + k0
        c = col[pad:pad + W]
        for t in range(n // 2):  # the taps are symmetric: one multiply per pair of rows
            a, b = out[_clampi(y0 + t, H - 1)], out[_clampi(y0 + n - 1 - t, H - 1)]
            wt = taps[t]
            for X in range(W):
                c[X] += wt * (np.float32(a[X]) + np.float32(b[X]))
        if n % 2:
            a = out[_clampi(y0 + n // 2, H - 1)]
            wt = taps[n // 2]
            for X in range(W):
                c[X] += wt * np.float32(a[X])
        for X in range(pad):
            col[X] = col[pad]
        for X in range(pad + W, col.shape[0]):
            col[X] = col[pad + W - 1]
        # the horizontal taps at stride s, phase by phase: col[s*lx + t] = ph[t % s][lx + t // s]
        m = col.shape[0] // s
        ph = np.empty((s, m), np.float32)
        for p in range(s):
            for j in range(m):
                ph[p, j] = col[s * j + p]
        acc = np.zeros(w, np.float32)
        for t in range(n):
            wt = taps[t]
            src = ph[t % s, t // s:t // s + w]
            for lx in range(w):
                acc[lx] += wt * src[lx]
        lrow = lr[ly]
        rrow = res[ly]
        for lx in range(w):
            if not irow[lx // block]:
                rrow[lx] = np.float32(lrow[lx]) - acc[lx]


def _make_plane_kernel(s: int):
    """Compile the plane kernel for one scale: a constant ``s`` lets LLVM unroll the s x s cells.

    The kernel's only closure cell is the int ``s`` (see above: no jitted function in a cell),
    so its disk-cache key is the same in every process.
    """

    @njit(cache=True, parallel=True, nogil=True)
    def reconstruct_plane(prev_hr, lr, lr_prev, mv, intra, block, denom, closed_loop, res_mode,
                          offs, wts, out, res, down_k0, down, passes):
        """Rebuild one HR plane from the previous HR plane, the LR plane and the motion field.

        prev_hr: uint8 (s*h, s*w); lr, lr_prev: uint8 (h, w) (lr_prev: open loop only);
        mv: int16 (bh, bw, 2) in 1/denom LR px (dx, dy); intra: bool (bh, bw);
        out: uint8 (s*h, s*w); res: float32 (h, w) scratch for the residual.
        Inter cells: pred = MC(prev_hr, s*mv); closed loop res = lr - down(pred); open loop
        res = lr - MC(lr_prev, mv); out = pred + up(res). Intra blocks: bicubic of lr.
        down: the taps of :func:`down_taps` from ``down_k0`` (empty: the box mean of each cell,
        computed in the band loop; otherwise a pass over the whole predicted frame after it, as
        the taps reach into the neighbouring block rows). passes (filtered closed loop only):
        how many times the residual is measured through ``down`` and added back (iterative
        back-projection: up then down attenuates, so one pass leaves part of the residual).

        Per band of one block row, in three passes: (1) prediction over spans of consecutive
        blocks that share a vector; (2) the residual over whole LR rows
        (long loops, no per-span cost; intra cells get a meaningless value here); (3) intra
        blocks overwritten by bicubic, their residual set to zero.
        """
        h, w = lr.shape
        bh, bw = intra.shape
        inv_area = np.float32(1.0 / (s * s))
        in_band = not closed_loop or down.shape[0] == 0
        shift = 0
        while (1 << shift) < denom:
            shift += 1
        for by in prange(bh):
            ly0 = by * block
            ly1 = min(h, ly0 + block)
            span_x = np.empty((bw, 2), np.int64)
            span_v = np.empty((bw, 4), np.int64)
            nsp = 0
            n_intra = 0
            bx = 0
            while bx < bw:
                if intra[by, bx]:
                    n_intra += 1
                    bx += 1
                    continue
                mvx, mvy = np.int64(mv[by, bx, 0]), np.int64(mv[by, bx, 1])
                bx1 = bx + 1
                while bx1 < bw and not intra[by, bx1] and mv[by, bx1, 0] == mvx and mv[by, bx1, 1] == mvy:
                    bx1 += 1
                lx0, lx1 = bx * block, min(w, bx1 * block)
                dx, dy = mvx * s, mvy * s
                span_x[nsp, 0], span_x[nsp, 1] = lx0 * s, lx1 * s
                span_v[nsp, 0], span_v[nsp, 1] = dy >> shift, dx >> shift
                span_v[nsp, 2], span_v[nsp, 3] = dy & (denom - 1), dx & (denom - 1)
                nsp += 1
                if not closed_loop:
                    _open_loop_residual(lr, lr_prev, res, ly0, ly1, lx0, lx1, mvx, mvy, denom, shift)
                bx = bx1
            for k in range(nsp):
                _mc_span(prev_hr, out, ly0 * s, ly1 * s, span_x[k, 0], span_x[k, 1],
                         span_v[k, 0], span_v[k, 1], span_v[k, 2], span_v[k, 3], denom)
            if nsp and in_band:
                for ly in range(ly0, ly1):
                    cells = out[ly * s:(ly + 1) * s]
                    if closed_loop:
                        _closed_loop_residual_row(lr[ly], cells, res[ly], s, inv_area)
                    if res_mode == RES_NEAREST:
                        _add_nearest_row(res[ly], cells, s)
            if n_intra:  # runs of intra blocks: bicubic, residual zero
                tmp = np.empty((block + 4, w * s), np.float32)
                pad = np.empty(w + 4, np.float32)
                bx = 0
                while bx < bw:
                    if not intra[by, bx]:
                        bx += 1
                        continue
                    bx1 = bx + 1
                    while bx1 < bw and intra[by, bx1]:
                        bx1 += 1
                    lx0, lx1 = bx * block, min(w, bx1 * block)
                    _cubic_block(lr, out, ly0, ly1, lx0, lx1, s, offs, wts, tmp, pad)
                    for ly in range(ly0, ly1):
                        for lx in range(lx0, lx1):
                            res[ly, lx] = 0.0
                    bx = bx1
        loffs, lwts = linear_phases(s)
        for _ in range(1 if in_band else passes):
            if not in_band:
                _closed_loop_residual_filtered(lr, out, intra, block, s, down_k0, down, res)
                if res_mode == RES_NEAREST:  # intra residuals are zero: their cells stay as they are
                    for ly in prange(h):
                        _add_nearest_row(res[ly], out[ly * s:(ly + 1) * s], s)
            if res_mode == RES_BILINEAR:
                _add_upsampled_residual(res, intra, block, s, loffs, lwts, out)
            elif res_mode == RES_BICUBIC:
                _add_upsampled_residual(res, intra, block, s, offs, wts, out)

    return reconstruct_plane


@njit(cache=True, inline="always")
def _taps_row(col, s, offs, wts, hrow):
    """hrow[i*s + k] = sum_j wts[k, j] * col[i + offs[k] + 1 + j]: one row through the per-phase
    taps. Scale 2 (the common case) stores both phases in one loop, which vectorises; a loop
    per phase with a strided store does not."""
    n = hrow.shape[0] // s
    if s == 2:
        a0, a1, a2, a3 = wts[0, 0], wts[0, 1], wts[0, 2], wts[0, 3]
        b0, b1, b2, b3 = wts[1, 0], wts[1, 1], wts[1, 2], wts[1, 3]
        pa, pb = col[offs[0] + 1:], col[offs[1] + 1:]
        for i in range(n):
            hrow[2 * i] = a0 * pa[i] + a1 * pa[i + 1] + a2 * pa[i + 2] + a3 * pa[i + 3]
            hrow[2 * i + 1] = b0 * pb[i] + b1 * pb[i + 1] + b2 * pb[i + 2] + b3 * pb[i + 3]
        return
    for k in range(s):
        v0, v1, v2, v3 = wts[k, 0], wts[k, 1], wts[k, 2], wts[k, 3]
        p = col[offs[k] + 1:]
        for i in range(n):
            hrow[i * s + k] = v0 * p[i] + v1 * p[i + 1] + v2 * p[i + 2] + v3 * p[i + 3]


@njit(cache=True, parallel=True, nogil=True)
def _add_upsampled_residual(res, intra, block, s, offs, wts, out):  # pragma: no cover - compiled
    """out += up(res) on the cells of inter blocks (rounded, clamped to 0..255).

    up: the separable per-phase 4-tap filter ``offs``/``wts`` (the layout of
    :func:`cubic_phase_weights`; :func:`linear_phases` for bilinear). Per HR row: the vertical
    taps into one padded float row of LR width, the horizontal taps into one HR row, then the
    add over runs of inter blocks. Intra cells are left as they are.
    """
    h, w = res.shape
    hb = block * s  # HR samples per motion block side
    nb = intra.shape[1]
    for ly in prange(h):
        irow = intra[ly // block]
        if irow.all():
            continue
        col = np.empty(w + 4, np.float32)  # col[i + 2]: the vertical result at LR column i
        hrow = np.empty(s * w, np.float32)
        for k in range(s):
            base = ly + offs[k] - 1
            r0, r1 = res[_clampi(base, h - 1)], res[_clampi(base + 1, h - 1)]
            r2, r3 = res[_clampi(base + 2, h - 1)], res[_clampi(base + 3, h - 1)]
            w0, w1, w2, w3 = wts[k, 0], wts[k, 1], wts[k, 2], wts[k, 3]
            for i in range(w):
                col[i + 2] = w0 * r0[i] + w1 * r1[i] + w2 * r2[i] + w3 * r3[i]
            col[0] = col[1] = col[2]
            col[w + 2] = col[w + 3] = col[w + 1]
            _taps_row(col, s, offs, wts, hrow)
            orow = out[ly * s + k]
            bx = 0
            while bx < nb:  # runs of inter blocks
                if irow[bx]:
                    bx += 1
                    continue
                bx1 = bx + 1
                while bx1 < nb and not irow[bx1]:
                    bx1 += 1
                o = orow[bx * hb:min(s * w, bx1 * hb)]  # 0-based views: no index checks,
                r = hrow[bx * hb:min(s * w, bx1 * hb)]  # the loop vectorises (3x faster)
                for X in range(o.shape[0]):
                    v = np.float32(o[X]) + r[X] + np.float32(0.5)
                    o[X] = np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))
                bx = bx1


@njit(cache=True, inline="always")
def _seam_strength(mv, intra, y0, x0, y1, x1):
    """Strength 0..1 of the edge between blocks (y0, x0) and (y1, x1): 0 when both are intra
    (nothing to feather), 1 when one is, else min(1, |vector difference| / SEAM_FULL_QPEL)
    (the larger component)."""
    a, b = intra[y0, x0], intra[y1, x1]
    if a and b:
        return np.float32(0.0)
    if a or b:
        return np.float32(1.0)
    dx = abs(np.int32(mv[y0, x0, 0]) - np.int32(mv[y1, x1, 0]))
    dy = abs(np.int32(mv[y0, x0, 1]) - np.int32(mv[y1, x1, 1]))
    return min(np.float32(1.0), np.float32(max(dx, dy)) / np.float32(SEAM_FULL_QPEL))


@njit(cache=True, parallel=True, nogil=True)
def seam_strengths(mv, intra):  # pragma: no cover - compiled
    """(vertical, horizontal) edge strengths of a motion field: vertical (bh, bw + 1), entry
    [by, bx] for the edge left of block bx; horizontal (bh + 1, bw), entry [by, bx] for the
    edge above block row by. Frame borders are 0."""
    bh, bw = intra.shape
    ev = np.zeros((bh, bw + 1), np.float32)
    eh = np.zeros((bh + 1, bw), np.float32)
    for by in prange(bh):
        for bx in range(1, bw):
            ev[by, bx] = _seam_strength(mv, intra, by, bx - 1, by, bx)
        if by:
            for bx in range(bw):
                eh[by, bx] = _seam_strength(mv, intra, by - 1, bx, by, bx)
    return ev, eh


@njit(cache=True, inline="always")
def _has_seam(intra, ev, eh, by, bx):
    """Block (by, bx) is inter and has an edge of positive strength (``seam_strengths``)."""
    return not intra[by, bx] and (ev[by, bx] > 0 or ev[by, bx + 1] > 0 or eh[by, bx] > 0 or eh[by + 1, bx] > 0)


@njit(cache=True, inline="always")
def _blend(out, Y, X, target, wgt):
    """Move HR sample ``out[Y, X]`` ``wgt`` (0..1) of the way to ``target`` clamped to 0..255,
    rounded (the result lies between two values in 0..255, so it needs no clamp of its own)."""
    o = np.float32(out[Y, X])
    t = min(max(target, np.float32(0.0)), np.float32(255.0))
    out[Y, X] = np.uint8(o + wgt * (t - o) + np.float32(0.5))


@njit(cache=True, inline="always")
def _feather_at(out, line, Y, X, lx, kx, wgt, offs, wts):
    """Blend ``out[Y, X]`` (phase kx of LR column lx) ``wgt`` of the way to bicubic, from the
    vertical taps ``line`` of its row (line[c + 2]: LR column c)."""
    if wgt <= np.float32(0.0):
        return
    q = lx + offs[kx] + 1  # line index of tap 0
    v = wts[kx, 0] * line[q] + wts[kx, 1] * line[q + 1] + wts[kx, 2] * line[q + 2] + wts[kx, 3] * line[q + 3]
    _blend(out, Y, X, v, wgt)


@njit(cache=True, parallel=True, nogil=True)
def feather_seams(out, lr, intra, ev, eh, block, s, width, offs, wts):  # pragma: no cover - compiled
    """Blend the HR samples next to a motion seam towards the bicubic upscale of ``lr``.

    A seam is the edge between an inter block and a neighbour predicted differently (another
    vector, or intra). Each side's prediction stops there with a step that is not in the scene
    (the HR counterpart of the block edges a codec's deblocking filter smooths; it too keys its
    strength on the vector difference, one whole pixel making a full edge). ``ev``/``eh``: the
    edge strengths of :func:`seam_strengths`. An HR sample at distance ``d`` (in HR samples,
    from its centre) of an edge of its block with strength ``g`` moves
    ``g * max(0, 1 - d / width)`` of the way to the bicubic value (the largest such weight over
    its block's edges). Intra blocks are bicubic already and are not touched.

    Per block row that has a seam: the vertical bicubic taps of each of its HR rows over the
    whole LR width first (long loops that vectorise, as in :func:`_add_upsampled_residual`),
    then, at each sample with a positive weight, the four horizontal taps and the blend.
    """
    H, W = out.shape
    h, w = lr.shape
    bh, bw = intra.shape
    hb = block * s
    wk = np.zeros(hb // 2, np.float32)  # the weight of the k-th sample from a seam
    nb = 0
    while nb < hb // 2 and np.float32(nb) + np.float32(0.5) < width:
        wk[nb] = np.float32(1.0) - (np.float32(nb) + np.float32(0.5)) / width
        nb += 1
    if nb == 0:
        return
    cell = np.empty(hb, np.int64)  # LR offset within the block and phase of each HR offset
    phase = np.empty(hb, np.int64)
    for k in range(hb):
        cell[k], phase[k] = k // s, k % s
    for by in prange(bh):
        any_seam = False
        for bx in range(bw):
            if _has_seam(intra, ev, eh, by, bx):
                any_seam = True
                break
        if not any_seam:
            continue
        ly0 = by * block
        Y0 = by * hb
        ny = min(H, Y0 + hb) - Y0
        lines = np.empty((hb, w + 4), np.float32)  # lines[t, c + 2]: vertical taps at LR column c
        for t in range(ny):
            ky = phase[t]
            r0 = ly0 + cell[t] + offs[ky] - 1
            p0, p1 = lr[_clampi(r0, h - 1)], lr[_clampi(r0 + 1, h - 1)]
            p2, p3 = lr[_clampi(r0 + 2, h - 1)], lr[_clampi(r0 + 3, h - 1)]
            w0, w1, w2, w3 = wts[ky, 0], wts[ky, 1], wts[ky, 2], wts[ky, 3]
            line = lines[t]
            for c in range(w):
                line[c + 2] = (w0 * np.float32(p0[c]) + w1 * np.float32(p1[c])
                               + w2 * np.float32(p2[c]) + w3 * np.float32(p3[c]))
            line[0] = line[1] = line[2]
            line[w + 2] = line[w + 3] = line[w + 1]
        for bx in range(bw):
            if not _has_seam(intra, ev, eh, by, bx):
                continue
            left, right = ev[by, bx], ev[by, bx + 1]
            up, down = eh[by, bx], eh[by + 1, bx]
            lx0 = bx * block
            X0 = bx * hb
            nx = min(W, X0 + hb) - X0
            for t in range(ny):
                wy = np.float32(0.0)
                if t < nb:
                    wy = up * wk[t]
                if hb - 1 - t < nb:
                    wy = max(wy, down * wk[hb - 1 - t])
                line = lines[t]
                if wy > np.float32(0.0):  # a row band: every sample of the block
                    for k in range(nx):
                        wgt = wy
                        if k < nb:
                            wgt = max(wgt, left * wk[k])
                        if hb - 1 - k < nb:
                            wgt = max(wgt, right * wk[hb - 1 - k])
                        _feather_at(out, line, Y0 + t, X0 + k, lx0 + cell[k], phase[k], wgt, offs, wts)
                    continue
                if left > np.float32(0.0):  # the column bands
                    for k in range(min(nb, nx)):
                        _feather_at(out, line, Y0 + t, X0 + k, lx0 + cell[k], phase[k], left * wk[k], offs, wts)
                if right > np.float32(0.0):  # (a right neighbour: the block is whole)
                    for j in range(nb):
                        k = hb - 1 - j
                        _feather_at(out, line, Y0 + t, X0 + k, lx0 + cell[k], phase[k], right * wk[j], offs, wts)


_PLANE_KERNELS: dict = {}


def plane_kernel(scale: int):
    """The compiled reconstruction kernel for ``scale`` (built on first use)."""
    if scale not in _PLANE_KERNELS:
        _PLANE_KERNELS[scale] = _make_plane_kernel(scale)
    return _PLANE_KERNELS[scale]


@njit(cache=True, nogil=True)
def blend_patch(plane, patch, y0, x0, s, cell, weights):  # pragma: no cover - compiled
    """Blend ``patch`` into ``plane`` at HR (y0, x0) in place: each sample becomes
    ``rint(under + w * (patch - under))`` (float32), ``w`` the weight of the motion block (``cell``
    LR pixels of this plane per side) it lies in, taken from ``weights`` (float32, one per block,
    clamped at the grid's last row and column for a frame whose size is not a whole number of
    blocks). The anchors' blend with reuse (ReuseConfig.anchor_weight)."""
    h, w = patch.shape
    bh, bw = weights.shape
    cols = np.empty(w, np.int64)
    for j in range(w):
        cols[j] = min((x0 + j) // s // cell, bw - 1)
    wline = np.empty(w, np.float32)  # the weight of each sample of the current row
    last = -1
    for i in range(h):
        by = min((y0 + i) // s // cell, bh - 1)
        if by != last:
            for j in range(w):
                wline[j] = weights[by, cols[j]]
            last = by
        prow = patch[i]
        orow = plane[y0 + i, x0:x0 + w]
        for j in range(w):  # between the two samples for 0 < w <= 1: no clipping needed
            under = np.float32(orow[j])
            orow[j] = np.uint8(np.rint(under + wline[j] * (np.float32(prow[j]) - under)))
