"""Node biases of the dependency graph: texture complexity of the newly coded signal.

``b_t[p]`` (algorithms.md §2) sums, over the pixels of patch ``p`` in Y, U and V, the squared
error ``(x - up2(down2(x)))^2`` of the signal the codec newly sent there: the LR value for intra
pixels, the residual ``LR_t - MC(LR_{t-1}, mv)`` (whole-pel, each sample clamped to the plane)
for inter pixels. The round trip runs on each 4x4 block of the plane on its own (so a block's
error never leaks into its neighbours): ``down2`` is the bicubic (a = -0.5) 2x reduction, taps
``[-1, 9, 9, -1] / 16`` clamped to the block; ``up2`` the bilinear 2x enlargement with half-pixel
centres. Edge blocks are padded by repeating their last row/column; padding is not counted.
Chroma uses the luma vector halved (4:2:0), rounded to whole chroma pixels.

The hot loop is a numba kernel: about 3 million samples per 1080p frame.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..types import CodedFrame, PatchGrid

# down2 (2 x 4): bicubic a=-0.5 at the centres 0.5 and 2.5, taps outside the block clamped.
_DOWN = np.array([[8.0, 9.0, -1.0, 0.0], [0.0, -1.0, 9.0, 8.0]]) / 16.0
# up2 (4 x 2): bilinear, half-pixel centres, clamped at the block border.
_UP = np.array([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])
# The whole round trip of one axis, x -> up2(down2(x)), as a 4 x 4 matrix (the kernel applies it
# unrolled; tests use the matrix).
ROUND_TRIP = _UP @ _DOWN


@njit(cache=True, inline="always")
def _down(v0, v1, v2, v3):  # pragma: no cover - compiled
    """down2 of 4 samples (rows of ``_DOWN``)."""
    return (8.0 * v0 + 9.0 * v1 - v2) * 0.0625, (9.0 * v2 - v1 + 8.0 * v3) * 0.0625


@njit(cache=True, inline="always")
def _fill_fast(cur, ref, dxs, dys, intra, sub, by, bx, x):  # pragma: no cover - compiled
    """Like _fill_block for a block needing no clamping (constant loop bounds, so unrolled);
    returns False, leaving x partly written, when some sample would need clamping."""
    h, w = cur.shape
    if by + 4 > h or bx + 4 > w:
        return False
    if sub == 1:
        ly, lx = by >> 2, bx >> 2
        if intra[ly, lx]:
            for i in range(4):
                for j in range(4):
                    x[i, j] = cur[by + i, bx + j]
            return True
        sy, sx = by + dys[ly, lx], bx + dxs[ly, lx]
        if sy < 0 or sx < 0 or sy + 4 > h or sx + 4 > w:
            return False
        for i in range(4):
            for j in range(4):
                x[i, j] = np.float64(cur[by + i, bx + j]) - np.float64(ref[sy + i, sx + j])
        return True
    for qi in range(0, 4, 2):  # chroma: 2x2 quadrants, one luma block each
        for qj in range(0, 4, 2):
            y0, x0 = by + qi, bx + qj
            ly, lx = y0 >> 1, x0 >> 1
            if intra[ly, lx]:
                for i in range(2):
                    for j in range(2):
                        x[qi + i, qj + j] = cur[y0 + i, x0 + j]
                continue
            sy, sx = y0 + dys[ly, lx], x0 + dxs[ly, lx]
            if sy < 0 or sx < 0 or sy + 2 > h or sx + 2 > w:
                return False
            for i in range(2):
                for j in range(2):
                    x[qi + i, qj + j] = np.float64(cur[y0 + i, x0 + j]) - np.float64(ref[sy + i, sx + j])
    return True


@njit(cache=True)
def _fill_block(cur, ref, dxs, dys, intra, sub, by, bx, x):  # pragma: no cover - compiled
    """x (4, 4) <- the new signal of the plane's 4x4 block at (by, bx), edges repeated."""
    h, w = cur.shape
    q = 4 // sub
    for qi in range(0, 4, q):
        for qj in range(0, 4, q):
            y0, x0 = by + qi, bx + qj
            ly = (min(y0, h - 1) * sub) >> 2
            lx = (min(x0, w - 1) * sub) >> 2
            inside = y0 + q <= h and x0 + q <= w
            if intra[ly, lx]:
                for i in range(q):
                    for j in range(q):
                        x[qi + i, qj + j] = cur[min(y0 + i, h - 1), min(x0 + j, w - 1)]
                continue
            dy, dx = dys[ly, lx], dxs[ly, lx]
            sy, sx = y0 + dy, x0 + dx
            if inside and sy >= 0 and sx >= 0 and sy + q <= h and sx + q <= w:  # no clamping
                for i in range(q):
                    for j in range(q):
                        x[qi + i, qj + j] = float(cur[y0 + i, x0 + j]) - float(ref[sy + i, sx + j])
                continue
            for i in range(q):
                py = min(y0 + i, h - 1)
                ry = min(max(py + dy, 0), h - 1)
                for j in range(q):
                    px = min(x0 + j, w - 1)
                    x[qi + i, qj + j] = float(cur[py, px]) - float(ref[ry, min(max(px + dx, 0), w - 1)])


@njit(cache=True, fastmath=True)
def _plane_texture(cur, ref, dxs, dys, intra, sub, row_base, col_of, out):  # pragma: no cover
    """Add per-patch squared round-trip errors of one plane to ``out`` (float64 (N,)).

    cur, ref: uint8 (H, W) plane of this frame and of the reference.
    dxs, dys: int32 (bh, bw) whole-pel vectors in this plane's pixels, per luma 4x4 block;
    intra: bool (bh, bw). sub: luma pixels per plane pixel (1 luma, 2 chroma), so each 4x4 block
    of the plane splits into (sub x sub) quadrants that each follow one luma block.
    row_base (H,), col_of (W,): int64, patch index = row_base[y] + col_of[x] (lookups: an integer
    division per sample would cost more than the arithmetic).
    """
    h, w = cur.shape
    x = np.empty((4, 4))
    r = np.empty((4, 4))
    for by in range(0, h, 4):
        for bx in range(0, w, 4):
            if not _fill_fast(cur, ref, dxs, dys, intra, sub, by, bx, x):
                _fill_block(cur, ref, dxs, dys, intra, sub, by, bx, x)
            # Separable round trip: rows down to (a_i, b_i), columns down to a 2x2, both up.
            a0, b0 = _down(x[0, 0], x[0, 1], x[0, 2], x[0, 3])
            a1, b1 = _down(x[1, 0], x[1, 1], x[1, 2], x[1, 3])
            a2, b2 = _down(x[2, 0], x[2, 1], x[2, 2], x[2, 3])
            a3, b3 = _down(x[3, 0], x[3, 1], x[3, 2], x[3, 3])
            la0, la1 = _down(a0, a1, a2, a3)
            lb0, lb1 = _down(b0, b1, b2, b3)
            for i in range(4):
                # up2 along y: rows 0..3 = l0, (3 l0 + l1) / 4, (l0 + 3 l1) / 4, l1
                wa = 1.0 if i == 0 else (0.75 if i == 1 else (0.25 if i == 2 else 0.0))
                ca = wa * la0 + (1.0 - wa) * la1
                cb = wa * lb0 + (1.0 - wa) * lb1
                r[i, 0] = ca
                r[i, 1] = 0.75 * ca + 0.25 * cb
                r[i, 2] = 0.25 * ca + 0.75 * cb
                r[i, 3] = cb
            nh, nw = min(4, h - by), min(4, w - bx)
            if row_base[by] == row_base[by + nh - 1] and col_of[bx] == col_of[bx + nw - 1]:
                acc = 0.0  # the block lies in one patch: one update
                for i in range(nh):
                    for j in range(nw):
                        d = x[i, j] - r[i, j]
                        acc += d * d
                out[row_base[by] + col_of[bx]] += acc
                continue
            for i in range(nh):
                for j in range(nw):
                    d = x[i, j] - r[i, j]
                    out[row_base[by + i] + col_of[bx + j]] += d * d


def frame_texture(frame: CodedFrame, ref: CodedFrame | None, grid: PatchGrid) -> np.ndarray:
    """float64 (N,): texture complexity ``b_t`` of ``frame`` (whole frame intra without ``ref``)."""
    out = np.zeros(grid.n_patches)
    motion = frame.motion
    if ref is None or frame.is_key:
        intra = np.ones(motion.intra.shape, np.bool_)
        ref = frame
    else:
        intra = np.ascontiguousarray(motion.intra, np.bool_)
    mv = motion.mv.astype(np.int32)
    for plane, sub in (("y", 1), ("u", 2), ("v", 2)):
        # quarter-pel luma -> whole pels of this plane, halves up: floor((d + 2 sub) / (4 sub))
        dxs = np.ascontiguousarray((mv[..., 0] + 2 * sub) // (4 * sub))
        dys = np.ascontiguousarray((mv[..., 1] + 2 * sub) // (4 * sub))
        cur = np.ascontiguousarray(getattr(frame, plane))
        row_base = (np.arange(cur.shape[0]) * sub // grid.patch_px) * grid.cols
        col_of = np.arange(cur.shape[1]) * sub // grid.patch_px
        _plane_texture(cur, np.ascontiguousarray(getattr(ref, plane)), dxs, dys, intra, sub,
                       row_base, col_of, out)
    return out
