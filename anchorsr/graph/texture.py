"""Node biases of the dependency graph: texture complexity of the newly coded signal.

``b_t[p]`` (docs/method.md §2) sums, over the pixels of patch ``p`` in Y, U and V, the squared
error ``(x - up2(down2(x)))^2`` of the signal the codec newly sent there: the LR value for intra
pixels, the residual ``LR_t - MC(LR_{t-1}, mv)`` (whole-pel, each sample clamped to the plane)
for inter pixels. The round trip runs on each 4x4 block of the plane on its own (so a block's
error never leaks into its neighbours): ``down2`` is the bicubic (a = -0.5) 2x reduction, taps
``[-1, 9, 9, -1] / 16`` clamped to the block; ``up2`` the bilinear 2x enlargement with half-pixel
centres. Edge blocks are padded by repeating their last row/column; padding is not counted.
Chroma uses the luma vector halved (4:2:0), rounded to whole chroma pixels.

About 3 million samples per 1080p frame go through numba kernels: ``_plane_strips`` when every
4x4 block of a plane lies in one patch (patch_px a multiple of 4 plane pixels: the usual case),
a strip of blocks at a time with vectorised loops; ``_plane_texture`` block by block otherwise.
``frame_texture(..., sample=s)`` estimates ``b_t`` from one strip in s (unbiased).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from ..types import CodedFrame, PatchGrid

# Marks an intra run in _row_runs (no vector is this large).
INTRA_RUN = -(1 << 40)
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
def _pel(d, sub):  # pragma: no cover - compiled
    """Quarter-pel luma component -> whole pels of a plane with ``sub`` luma pixels per pixel,
    halves up: floor((d + 2 sub) / (4 sub)), as a shift (sub is 1 or 2, so 4 sub = 2^(1 + sub))."""
    return (np.int64(d) + 2 * sub) >> (1 + sub)


@njit(cache=True, inline="always")
def _fill_fast(cur, ref, mv, intra, sub, by, bx, x):  # pragma: no cover - compiled
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
        sy, sx = by + _pel(mv[ly, lx, 1], sub), bx + _pel(mv[ly, lx, 0], sub)
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
            sy, sx = y0 + _pel(mv[ly, lx, 1], sub), x0 + _pel(mv[ly, lx, 0], sub)
            if sy < 0 or sx < 0 or sy + 2 > h or sx + 2 > w:
                return False
            for i in range(2):
                for j in range(2):
                    x[qi + i, qj + j] = np.float64(cur[y0 + i, x0 + j]) - np.float64(ref[sy + i, sx + j])
    return True


@njit(cache=True)
def _fill_block(cur, ref, mv, intra, sub, by, bx, x):  # pragma: no cover - compiled
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
            dy, dx = _pel(mv[ly, lx, 1], sub), _pel(mv[ly, lx, 0], sub)
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


@njit(cache=True, inline="always")
def _round_trip(x, r):  # pragma: no cover - compiled
    """r (4, 4) <- up2(down2(x)) of the 4x4 block x, separable: rows down, columns down, both up."""
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


@njit(cache=True, inline="always")
def _add_block(x, r, by, bx, h, w, row_base, col_of, scale, out):  # pragma: no cover - compiled
    """out[patch] += scale * squared error of the block at (by, bx), per patch of its pixels."""
    nh, nw = min(4, h - by), min(4, w - bx)
    if row_base[by] == row_base[by + nh - 1] and col_of[bx] == col_of[bx + nw - 1]:
        acc = 0.0  # the block lies in one patch: one update
        for i in range(nh):
            for j in range(nw):
                d = x[i, j] - r[i, j]
                acc += d * d
        out[row_base[by] + col_of[bx]] += scale * acc
        return
    for i in range(nh):
        for j in range(nw):
            d = x[i, j] - r[i, j]
            out[row_base[by + i] + col_of[bx + j]] += scale * (d * d)


@njit(cache=True, fastmath=True)
def _plane_texture(cur, ref, mv, intra, weight, sub, row_base, col_of, out):  # pragma: no cover
    """Add per-patch squared round-trip errors of one plane to ``out`` (float64 (N,)).

    cur, ref: uint8 (H, W) plane of this frame and of the reference.
    mv: int16 (bh, bw, 2) quarter-pel luma vectors per luma 4x4 block; intra: bool (bh, bw).
    sub: luma pixels per plane pixel (1 luma, 2 chroma), so each 4x4 block of the plane splits
    into (sub x sub) quadrants that each follow one luma block.
    row_base (H,), col_of (W,): int64, patch index = row_base[y] + col_of[x] (lookups: an integer
    division per sample would cost more than the arithmetic).
    weight: float32 (bh, bw): each plane block's error counts times the weight of the luma block
    of its first pixel (``_block_weight``).
    """
    h, w = cur.shape
    x = np.empty((4, 4))
    r = np.empty((4, 4))
    for by in range(0, h, 4):
        for bx in range(0, w, 4):
            wt = _block_weight(weight, sub, by, bx)
            if wt == 0.0:
                continue
            if not _fill_fast(cur, ref, mv, intra, sub, by, bx, x):
                _fill_block(cur, ref, mv, intra, sub, by, bx, x)
            _round_trip(x, r)
            _add_block(x, r, by, bx, h, w, row_base, col_of, wt, out)


@njit(cache=True, inline="always")
def _taken(k, s, phase):  # pragma: no cover - compiled
    """Whether strip k is the one taken from its group of s strips: a fixed scramble of the
    group number plus ``phase``, modulo s."""
    hsh = ((k // s) * 0x2C1B3C6D + 0x297A2D39) & 0xFFFFFFFF
    hsh = ((hsh ^ (hsh >> 15)) * 0x2C1B3C6D) & 0xFFFFFFFF
    return k % s == ((hsh ^ (hsh >> 13)) + phase) % s


@njit(cache=True, inline="always")
def _block_weight(weight, sub, by, bx):  # pragma: no cover - compiled
    """The weight of the plane block at (by, bx): that of the luma block of its first pixel."""
    bh, bw = weight.shape
    return np.float64(weight[min((by * sub) >> 2, bh - 1), min((bx * sub) >> 2, bw - 1)])


@njit(cache=True)
def _row_runs(mv, intra, ly, sub, w4, runs):  # pragma: no cover - compiled
    """Split plane columns [0, w4) of luma block row ``ly`` into runs of equal coding.

    runs (w4, 4) int64 <- (start, end, dx, dy) per run, dx/dy in whole plane pixels, dx = dy =
    INTRA_RUN for intra runs. Returns the number of runs."""
    q = 4 // sub  # plane pixels per luma block along a row
    count = 0
    x0 = 0
    while x0 < w4:
        lx = (x0 * sub) >> 2
        is_intra = intra[ly, lx]
        dxq, dyq = mv[ly, lx, 0], mv[ly, lx, 1]
        x1 = x0 + q  # extend the run over blocks with the same coding
        while x1 < w4:
            lx1 = (x1 * sub) >> 2
            if intra[ly, lx1] != is_intra or (not is_intra and (mv[ly, lx1, 0] != dxq
                                                                or mv[ly, lx1, 1] != dyq)):
                break
            x1 += q
        runs[count, 0], runs[count, 1] = x0, x1
        if is_intra:
            runs[count, 2] = runs[count, 3] = INTRA_RUN
        else:
            runs[count, 2], runs[count, 3] = _pel(dxq, sub), _pel(dyq, sub)
        count += 1
        x0 = x1
    return count


@njit(cache=True)
def _signal_row(cur, ref, y, runs, count, xi):  # pragma: no cover - compiled
    """xi[:w4] <- the new signal of plane row y: LR values where intra, else the residual
    against the displaced reference row (each sample clamped to the plane), run by run.
    Indices are cast to unsigned: they are never negative here, and numba then skips its
    negative-index handling, which would stop the loops from vectorising."""
    h, w = cur.shape
    uy = np.uintp(y)
    for k in range(count):
        x0, x1, dx, dy = runs[k, 0], runs[k, 1], runs[k, 2], runs[k, 3]
        if dy == INTRA_RUN:
            for c in range(x0, x1):
                xi[np.uintp(c)] = cur[uy, np.uintp(c)]
            continue
        ry = np.uintp(min(max(y + dy, 0), h - 1))  # rows clamp to the plane
        lo = min(max(-dx, x0), x1)  # [lo, hi): samples whose source column is inside
        hi = max(min(w - dx, x1), lo)
        for c in range(lo, hi):
            xi[np.uintp(c)] = np.float32(cur[uy, np.uintp(c)]) - np.float32(ref[ry, np.uintp(c + dx)])
        for c in range(x0, lo):  # columns clamped to the plane
            xi[np.uintp(c)] = np.float32(cur[uy, np.uintp(c)]) - np.float32(ref[ry, 0])
        for c in range(hi, x1):
            xi[np.uintp(c)] = np.float32(cur[uy, np.uintp(c)]) - np.float32(ref[ry, w - 1])


@njit(cache=True, fastmath=True)
def _plane_strips(cur, ref, mv, intra, weight, all_intra, sub, row_base, col_of, s, phase, live,
                  out):  # pragma: no cover - compiled
    """_plane_texture for planes whose 4x4 blocks each lie in one patch, a strip at a time.

    A strip is 4 rows of complete blocks. Its new signal is laid out row by row (the frame's
    row, minus the displaced reference row segment where inter), then the round trip runs on
    all its blocks with plain loops over block columns that the compiler vectorises (float32:
    sums of 16 squared errors of 8-bit signals are exact to ~1e-7). Blocks cut by the plane's
    right or bottom edge go through the per-block path.
    s, phase: take one strip out of each group of s (``_taken``), weighted s (s = 1: all).
    live: bool (strips,), False where the strip's new signal is known to be zero (the intra
    pixels' texture of a strip with no intra block): the strip is skipped.
    weight: float32 (bh, bw), as for _plane_texture.
    """
    h, w = cur.shape
    nb = w // 4
    w4, h4 = 4 * nb, 4 * (h // 4)
    q = 4 // sub  # plane pixels per luma block along a row
    X = np.empty((4, w4), np.float32)
    A = np.empty((4, nb), np.float32)
    B = np.empty((4, nb), np.float32)
    E = np.empty(nb, np.float32)
    W = np.empty(nb, np.float32)
    patch_col = np.empty(nb, np.int64)
    runs = np.empty((max(w4, 1), 4), np.int64)
    n_runs, runs_ly = 0, -1
    for b in range(nb):
        patch_col[b] = col_of[4 * b]
    scale = float(s)
    x = np.empty((4, 4))
    r = np.empty((4, 4))
    for k in range((h + 3) // 4):
        if not live[k] or (s > 1 and not _taken(k, s, phase)):
            continue
        by = 4 * k
        if w4 < w:  # the block cut by the right edge
            if not _fill_fast(cur, ref, mv, intra, sub, by, w4, x):
                _fill_block(cur, ref, mv, intra, sub, by, w4, x)
            _round_trip(x, r)
            _add_block(x, r, by, w4, h, w, row_base, col_of, scale * _block_weight(weight, sub, by, w4), out)
        if by >= h4:  # the strip cut by the bottom edge
            for bx in range(0, w4, 4):
                if not _fill_fast(cur, ref, mv, intra, sub, by, bx, x):
                    _fill_block(cur, ref, mv, intra, sub, by, bx, x)
                _round_trip(x, r)
                _add_block(x, r, by, bx, h, w, row_base, col_of, scale * _block_weight(weight, sub, by, bx), out)
            continue
        for i in range(4):
            if all_intra:
                xi, src = X[i], cur[by + i]
                for c in range(w4):
                    xi[c] = src[c]
            else:
                ly = ((by + i) * sub) >> 2
                if ly != runs_ly:  # rows of one luma block row share their runs
                    n_runs, runs_ly = _row_runs(mv, intra, ly, sub, w4, runs), ly
                _signal_row(cur, ref, by + i, runs, n_runs, X[i])
        for i in range(4):  # (a separate loop from the fill: it vectorises)
            for b in range(nb):
                A[i, b], B[i, b] = _down(X[i, 4 * b], X[i, 4 * b + 1], X[i, 4 * b + 2], X[i, 4 * b + 3])
        for b in range(nb):
            la0, la1 = _down(A[0, b], A[1, b], A[2, b], A[3, b])
            lb0, lb1 = _down(B[0, b], B[1, b], B[2, b], B[3, b])
            acc = np.float32(0.0)
            for i in range(4):
                wa = np.float32(1.0 if i == 0 else (0.75 if i == 1 else (0.25 if i == 2 else 0.0)))
                ca = wa * la0 + (np.float32(1.0) - wa) * la1
                cb = wa * lb0 + (np.float32(1.0) - wa) * lb1
                d0 = X[i, 4 * b] - ca
                d1 = X[i, 4 * b + 1] - (np.float32(0.75) * ca + np.float32(0.25) * cb)
                d2 = X[i, 4 * b + 2] - (np.float32(0.25) * ca + np.float32(0.75) * cb)
                d3 = X[i, 4 * b + 3] - cb
                acc += d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3
            E[b] = acc
        for b in range(nb):
            W[b] = _block_weight(weight, sub, by, 4 * b)
        base = row_base[by]
        for b in range(nb):
            out[base + patch_col[b]] += scale * E[b] * W[b]


def strips_per_group(sample: int, patch_px: int, sub: int) -> int:
    """How many strips (4 plane rows) share one sampled strip in a plane: the largest g <=
    ``sample`` dividing the strips per patch, so groups never straddle patches. 0 when the
    plane's blocks straddle patches (the per-block kernel runs, exact)."""
    side = patch_px // sub
    if patch_px % sub or side % 4:
        return 0
    strips = side // 4
    return max(g for g in range(1, min(max(sample, 1), strips) + 1) if strips % g == 0)


def frame_texture(frame: CodedFrame, ref: CodedFrame | None, grid: PatchGrid, *,
                  sample: int = 1, phase: int | None = None, inter: bool = True) -> np.ndarray:
    """float64 (N,): texture complexity ``b_t`` of ``frame`` (whole frame intra without ``ref``).

    sample: 1 computes ``b_t`` exactly. ``s`` > 1 estimates it from one strip of 4x4 blocks
    (4 plane rows) in every group of s strips (about 1/s of the work), weighted s: an unbiased
    estimate whose mean over any s consecutive phases is exactly ``b_t``. Groups never straddle
    patches (per plane, s shrinks to a divisor of the strips per patch; ``strips_per_group``).
    phase: which strip of each group is taken; defaults to the frame's index, so successive
    frames look at different strips.
    inter: False gives the ``intra`` node bias (docs/method.md §2.2, §2.6): the intra pixels'
    texture, plus each inter block's LR values counted like an intra block's times the block's
    ``fresh`` share where the motion field carries one (the error one reuse step adds there,
    measured by the reuse gate); other inter pixels add nothing. A chroma block takes the share
    of the luma block of its first pixel.
    """
    out = np.zeros(grid.n_patches)
    motion = frame.motion
    all_intra = ref is None or frame.is_key
    if all_intra:
        intra = np.ones(motion.intra.shape, np.bool_)
        ref = frame
    else:
        intra = np.ascontiguousarray(motion.intra, np.bool_)
    mv = np.ascontiguousarray(motion.mv, np.int16)
    intra_only = not inter and not all_intra
    weight = _ones(intra.shape)
    if intra_only:
        fresh = motion.fresh
        if fresh is not None and fresh.shape == intra.shape and (fresh > 0).any():
            weight = np.where(intra, np.float32(1.0), np.asarray(fresh, np.float32))
            intra = intra | (weight > 0)
        mv, ref = np.zeros_like(mv), frame
        if not intra.any():  # no intra pixel and nothing fresh: nothing new of its own
            return out
    phase = int(frame.index if phase is None else phase)
    for plane, sub in (("y", 1), ("u", 2), ("v", 2)):
        cur = np.ascontiguousarray(getattr(frame, plane))
        row_base, col_of = _patch_lookup(grid.patch_px, grid.cols, cur.shape[0], cur.shape[1], sub)
        rplane = np.ascontiguousarray(getattr(ref, plane))
        s = strips_per_group(sample, grid.patch_px, sub)
        if s == 0:
            _plane_texture(cur, rplane, mv, intra, weight, sub, row_base, col_of, out)
        else:
            live = _live_strips(intra, sub, cur.shape[0]) if intra_only else _all_strips(cur.shape[0])
            _plane_strips(cur, rplane, mv, intra, weight, all_intra, sub, row_base, col_of, s, phase, live, out)
    return out


@lru_cache(maxsize=16)
def _ones(shape: tuple[int, int]) -> np.ndarray:
    out = np.ones(shape, np.float32)
    out.flags.writeable = False
    return out


def _live_strips(intra: np.ndarray, sub: int, height: int) -> np.ndarray:
    """bool (strips,) of a plane with ``sub`` luma pixels per pixel: whether each strip of 4
    plane rows follows a row of luma blocks (``sub`` of them per strip) holding an intra block;
    elsewhere an intra-only texture is zero."""
    rows = intra.any(axis=1)
    strips = -(-height // 4)
    per = sub  # luma block rows per strip: 4 plane rows x sub luma rows each / 4
    padded = np.zeros(strips * per, np.bool_)
    n = min(rows.size, padded.size)
    padded[:n] = rows[:n]
    return padded.reshape(strips, per).any(axis=1)


@lru_cache(maxsize=16)
def _all_strips(height: int) -> np.ndarray:
    out = np.ones(-(-height // 4), np.bool_)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=16)
def _patch_lookup(patch_px: int, cols: int, height: int, width: int, sub: int):
    """row_base (H,), col_of (W,) int64 of a plane: patch index = row_base[y] + col_of[x]."""
    row_base = (np.arange(height) * sub // patch_px) * cols
    col_of = np.arange(width) * sub // patch_px
    row_base.flags.writeable = col_of.flags.writeable = False
    return row_base, col_of
