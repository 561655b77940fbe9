"""Edge weights of the dependency graph: which patch of frame t-1 feeds which patch of frame t.

``W_t[p, q]`` = LR luma pixels of patch ``p`` in frame ``t`` that are motion-compensated from
pixels inside patch ``q`` of frame ``t-1``, divided by the area of patch ``p``
(docs/method.md §2). Computed at the granularity of the motion field (4x4 luma blocks) with array
operations: every block contributes at most 2 x 2 (patch row, patch column) pieces when
``patch_px`` is a multiple of 4, and 4 x 4 one-pixel pieces otherwise.

Conventions (shared with :mod:`anchorsr.graph.texture`):

* Quarter-pel vectors are rounded to whole pixels, halves up: ``floor((d + 2) / 4)``.
* The displaced block is clamped to the frame as a whole (its source box is shifted inside the
  frame), so each inter block always contributes exactly its own pixel count.

Detail retention (docs/method.md §2.3): given the output ``scale``, each inter block's pixels
count ``retention(scale)[phase_y, phase_x]`` instead of 1, the share of the SR detail its
reference carried that the reconstruction's bilinear sub-pixel interpolation keeps at the block's
HR phase (the vector times the scale, in quarter HR pixels, modulo a whole pixel).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from numba import njit

from ..errors import ConfigError
from ..types import MV_BLOCK_PX, CodedFrame, PatchGrid

# Retention's spectrum grid: samples per axis of (0, pi] (the table's error is below 1e-4).
_RETENTION_GRID = 256

# Above this many N x N cells the dense bincount accumulator gives way to scipy's COO -> CSR.
_DENSE_CELLS_MAX = 1 << 22


def whole_pel(mv_quarter: np.ndarray) -> np.ndarray:
    """int32 whole-pixel vectors from quarter-pel ones, halves rounded up."""
    return (mv_quarter.astype(np.int32) + 2) >> 2


@lru_cache(maxsize=8)
def retention(scale: int) -> np.ndarray:
    """float64 (4, 4), read-only: the share of SR detail one bilinear sub-pixel step keeps, by the
    step's HR phase in quarter pixels (row: vertical, column: horizontal; [0, 0] = 1).

    The detail an anchor adds lies above the LR Nyquist frequency, in the HR band
    ``max(|wy|, |wx|) > pi / scale``. A bilinear interpolation at phase ``f`` has the amplitude
    response ``sqrt(1 - 2 f (1 - f) (1 - cos w))`` per axis; the entry is its mean over that
    band, weighted by the ``1 / |w|^2`` power spectrum of natural images. At x2 a half-pixel step
    in both axes keeps 0.36, in one axis 0.62.
    """
    if scale < 2:  # at x1 there is no band above the LR one: nothing for an anchor to add
        raise ConfigError(f"expected an output scale of at least 2, got {scale}")
    w = (np.arange(_RETENTION_GRID) + 0.5) * (np.pi / _RETENTION_GRID)
    wy, wx = np.meshgrid(w, w, indexing="ij")
    band = (wy > np.pi / scale) | (wx > np.pi / scale)
    power = band / (wy ** 2 + wx ** 2)
    f = np.arange(4) / 4.0
    # gain[k] = amplitude response at phase f[k] along one axis, over that axis' frequencies
    gy = np.sqrt(1 - 2 * (f * (1 - f))[:, None, None] * (1 - np.cos(wy))[None])
    gx = np.sqrt(1 - 2 * (f * (1 - f))[:, None, None] * (1 - np.cos(wx))[None])
    table = np.einsum("ayx,byx,yx->ab", gy, gx, power) / power.sum()
    table[0, 0] = 1.0
    table.flags.writeable = False
    return table


def block_retention(mv_quarter: np.ndarray, scale: int) -> np.ndarray:
    """float64 (bh, bw): ``retention(scale)`` at each block's HR phase."""
    phase = (scale * mv_quarter.astype(np.int64)) & 3
    return retention(scale)[phase[..., 1], phase[..., 0]]


def _block_geometry(height: int, width: int) -> tuple[np.ndarray, ...]:
    """Top-left corners and sizes of the 4x4 motion blocks, each int64 (bh, bw)."""
    bh, bw = -(-height // MV_BLOCK_PX), -(-width // MV_BLOCK_PX)
    y0 = np.arange(bh, dtype=np.int64)[:, None] * MV_BLOCK_PX
    x0 = np.arange(bw, dtype=np.int64)[None, :] * MV_BLOCK_PX
    h = np.minimum(MV_BLOCK_PX, height - y0)
    w = np.minimum(MV_BLOCK_PX, width - x0)
    return np.broadcast_arrays(y0, x0, h, w)


def _axis_pieces(dst0, length, src0, patch_px, n_cells):
    """Split one axis of every block into (dst cell, src cell, pixel count) pieces.

    dst0, length, src0: int64 (K,) block start, size and source start along the axis.
    Returns a list of (dst, src, count) int64 (K,) triples.
    """
    if patch_px % MV_BLOCK_PX == 0:
        # The block lies in one destination cell; its source span crosses at most one border.
        dst = dst0 // patch_px
        first = src0 // patch_px
        c0 = np.minimum(src0 + length, (first + 1) * patch_px) - src0
        second = np.minimum(first + 1, n_cells - 1)
        return [(dst, first, c0), (dst, second, length - c0)]
    last = src0 + length - 1
    return [(np.minimum(dst0 + i, dst0 + length - 1) // patch_px,
             np.minimum(src0 + i, last) // patch_px,
             (i < length).astype(np.int64)) for i in range(MV_BLOCK_PX)]


@njit(cache=True, inline="always")
def _piece(acc, c, y0, sy, sx, h, w, ycell, yend, xcell, xend, cols, lo, hi, r):  # pragma: no cover
    """Add an h x w box of destination patch column c, copied from (sy, sx), to ``acc``, each
    pixel counting ``r``: at most 2 x 2 source patches (h, w <= patch_px). Returns the updated
    touched range."""
    src = ycell[sy] * cols + xcell[sx]
    cy = min(sy + h, yend[sy]) - sy
    cx = min(sx + w, xend[sx]) - sx
    acc[c, src] += r * (cy * cx)
    acc[c, src + 1] += r * (cy * (w - cx))
    acc[c, src + cols] += r * ((h - cy) * cx)
    acc[c, src + cols + 1] += r * ((h - cy) * (w - cx))
    return min(lo, src), max(hi, src + cols + 1)


@njit(cache=True, inline="always")
def _retained(ret, scale, mv, by, bx):  # pragma: no cover - compiled
    """The retention table ``ret`` at block (by, bx)'s HR phase, ``(scale * mv) & 3`` per axis
    (the kernel's form of ``block_retention``)."""
    return ret[(scale * np.int64(mv[by, bx, 1])) & 3, (scale * np.int64(mv[by, bx, 0])) & 3]


@njit(cache=True)
def _weights_kernel(mv, key, intra, height, width, patch_px, rows, cols, inv_area,
                    ycell, yend, xcell, xend, scale, ret):  # pragma: no cover - compiled
    """CSR (indptr, indices, data) of W_t when patch_px is a multiple of 4, and each patch's
    share of pixels in inter blocks (N,) (``inter_share``, counted on the way: every inter block
    is visited once).

    mv: int16 (bh, bw, 2) quarter-pel vectors; key: int32 (bh, bw) the same pairs as one number
    (for equality tests); intra: bool (bh, bw). ret: float64 (4, 4) the retention table, read
    at the HR phase ``(scale * mv) & 3`` (all ones for none). ycell/xcell: patch row/col of each pixel
    row/column, yend/xend: where that patch row/column ends (lookups instead of divisions).
    Works one patch row at a time with a dense (cols x N) accumulator, read back only over the
    range of source patches that band touched. When patch_px is a multiple of 16, a 16x16
    macroblock whose 16 motion blocks agree and whose source lies inside the frame is one box
    (the same counts as its 16 blocks, as no block of it is clamped); other macroblocks go
    block by block.
    """
    n = rows * cols
    bh, bw = intra.shape
    acc = np.zeros((cols, n + cols + 1))  # slack: zero-count pieces may index past the end
    indptr = np.zeros(n + 1, np.int64)
    indices = np.empty(8 * n, np.int32)
    data = np.empty(8 * n)
    inter = np.zeros(n)
    nnz = 0
    bpr = patch_px // 4
    whole_mbs = patch_px % 16 == 0
    for band in range(rows):
        lo, hi = n, -1
        by_end = min((band + 1) * bpr, bh)
        for my in range(band * bpr, by_end, 4):
            for mx in range(0, bw, 4):
                if whole_mbs and my + 4 <= bh and mx + 4 <= bw and 4 * my + 16 <= height \
                        and 4 * mx + 16 <= width:
                    k0, i0 = key[my, mx], intra[my, mx]
                    same = True
                    for a in range(4):
                        for b in range(4):
                            same &= (key[my + a, mx + b] == k0) & (intra[my + a, mx + b] == i0)
                    if same:
                        if i0:
                            continue
                        y0, x0 = 4 * my, 4 * mx
                        sy = y0 + ((np.int64(mv[my, mx, 1]) + 2) >> 2)
                        sx = x0 + ((np.int64(mv[my, mx, 0]) + 2) >> 2)
                        if sy >= 0 and sx >= 0 and sy + 16 <= height and sx + 16 <= width:
                            inter[band * cols + xcell[x0]] += 256.0
                            lo, hi = _piece(acc, xcell[x0], y0, sy, sx, 16, 16, ycell, yend, xcell,
                                            xend, cols, lo, hi, _retained(ret, scale, mv, my, mx))
                            continue
                for by in range(my, min(my + 4, by_end)):
                    y0 = by * 4
                    h = min(4, height - y0)
                    for bx in range(mx, min(mx + 4, bw)):
                        if intra[by, bx]:
                            continue
                        x0 = bx * 4
                        w = min(4, width - x0)
                        inter[band * cols + xcell[x0]] += h * w
                        sy = min(max(y0 + ((np.int64(mv[by, bx, 1]) + 2) >> 2), 0), height - h)
                        sx = min(max(x0 + ((np.int64(mv[by, bx, 0]) + 2) >> 2), 0), width - w)
                        lo, hi = _piece(acc, xcell[x0], y0, sy, sx, h, w, ycell, yend, xcell, xend,
                                        cols, lo, hi, _retained(ret, scale, mv, by, bx))
        hi = min(hi, n - 1)
        for c in range(cols):
            p = band * cols + c
            if nnz + (hi - lo + 1) > indices.size:
                grow = max(2 * indices.size, nnz + hi - lo + 1)
                indices2, data2 = np.empty(grow, np.int32), np.empty(grow)
                indices2[:nnz], data2[:nnz] = indices[:nnz], data[:nnz]
                indices, data = indices2, data2
            for q in range(lo, hi + 1):
                v = acc[c, q]
                if v != 0.0:
                    indices[nnz] = q
                    data[nnz] = v * inv_area[p]
                    nnz += 1
                    acc[c, q] = 0.0
            indptr[p + 1] = nnz
        acc[:, n:] = 0.0
    return indptr, indices[:nnz].copy(), data[:nnz].copy(), inter * inv_area


def _cell_tables(size: int, patch_px: int) -> tuple[np.ndarray, np.ndarray]:
    pos = np.arange(size)
    return pos // patch_px, (pos // patch_px + 1) * patch_px


_NO_RETENTION = np.ones((4, 4))
_NO_RETENTION.flags.writeable = False


def frame_weights_csr(frame: CodedFrame, grid: PatchGrid, scale: int | None = None):
    """(indptr int64 (N+1,), indices int32, data float64, inter share float64 (N,)): the CSR
    arrays of ``W_t`` for an inter frame with a reference, when ``grid.patch_px`` is a multiple
    of 4 (``scale``: as in ``frame_weights``), and ``inter_share`` from the same pass."""
    mv = np.ascontiguousarray(frame.motion.mv, np.int16)
    key = mv.view(np.int32).reshape(mv.shape[:2])
    tables = _tables(grid)
    ret = _NO_RETENTION if scale is None else retention(scale)
    return _weights_kernel(mv, key, np.ascontiguousarray(frame.motion.intra, np.bool_),
                           grid.height, grid.width, grid.patch_px, grid.rows, grid.cols, *tables,
                           1 if scale is None else int(scale), ret)


@lru_cache(maxsize=16)
def _tables(grid: PatchGrid):
    """inv_area (N,), ycell, yend (H,), xcell, xend (W,) of a grid (see _weights_kernel)."""
    out = (1.0 / grid.areas(), *_cell_tables(grid.height, grid.patch_px),
           *_cell_tables(grid.width, grid.patch_px))
    for a in out:
        a.flags.writeable = False
    return out


def frame_weights(frame: CodedFrame, ref: CodedFrame | None, grid: PatchGrid,
                  scale: int | None = None) -> sp.csr_matrix:
    """float64 CSR (N, N): the edge weights ``W_t`` of ``frame`` against its reference ``ref``.

    All zero for a key frame or when there is no reference. scale: the output scale; each inter
    pixel then counts the detail retention of its block's HR phase (``retention``) instead of 1.
    Rows sum to at most the inter share of each patch (exactly it when ``scale`` is None).
    """
    return frame_edges(frame, ref, grid, scale)[0]


def frame_edges(frame: CodedFrame, ref: CodedFrame | None, grid: PatchGrid,
                scale: int | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
    """(``frame_weights``, ``inter_share``) of ``frame``; one pass over the motion field when
    ``grid.patch_px`` is a multiple of 4 (the share costs nothing more than the weights). The
    share is all zero for a key frame or when there is no reference, like the weights."""
    n = grid.n_patches
    if ref is None or frame.is_key:
        return sp.csr_matrix((n, n), dtype=np.float64), np.zeros(n)
    if grid.patch_px % MV_BLOCK_PX == 0:
        indptr, indices, data, share = frame_weights_csr(frame, grid, scale)
        return sp.csr_matrix((data, indices, indptr), shape=(n, n)), share
    return _weights_numpy(frame, grid, scale), inter_share(frame, grid)


def _weights_numpy(frame: CodedFrame, grid: PatchGrid, scale: int | None = None) -> sp.csr_matrix:
    """Array-operation version: any even patch_px (blocks may straddle destination patches)."""
    n = grid.n_patches
    height, width = grid.height, grid.width
    y0, x0, h, w = _block_geometry(height, width)
    inter = ~frame.motion.intra
    mv = whole_pel(frame.motion.mv)
    r = 1.0 if scale is None else block_retention(frame.motion.mv, scale)[inter]
    y0, x0, h, w = y0[inter], x0[inter], h[inter], w[inter]
    sy = np.clip(y0 + mv[..., 1][inter], 0, height - h)
    sx = np.clip(x0 + mv[..., 0][inter], 0, width - w)
    ys = _axis_pieces(y0, h, sy, grid.patch_px, grid.rows)
    xs = _axis_pieces(x0, w, sx, grid.patch_px, grid.cols)
    dst = np.concatenate([dr * grid.cols + dc for dr, _, _ in ys for dc, _, _ in xs])
    src = np.concatenate([sr * grid.cols + sc for _, sr, _ in ys for _, sc, _ in xs])
    cnt = np.concatenate([cy * cx * r for _, _, cy in ys for _, _, cx in xs]).astype(np.float64)
    areas = grid.areas().astype(np.float64)
    if n * n <= _DENSE_CELLS_MAX:
        dense = np.bincount(dst * n + src, weights=cnt, minlength=n * n).reshape(n, n)
        return sp.csr_matrix(dense / areas[:, None])
    keep = cnt > 0
    coo = sp.coo_matrix((cnt[keep] / areas[dst[keep]], (dst[keep], src[keep])), shape=(n, n))
    return coo.tocsr()


def identity_weights(weights: sp.csr_matrix) -> sp.csr_matrix:
    """The "no edge weights" ablation: weight 1 from the same patch, on inter-coded patches.

    A patch counts as inter-coded when at least half of its pixels are motion-compensated.
    """
    inter_share = np.asarray(weights.sum(axis=1)).ravel()
    return sp.diags((inter_share >= 0.5).astype(np.float64), format="csr")


@lru_cache(maxsize=16)
def _block_axis(length: int, patch_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Per 4x4 block along one axis: its size in pixels and its patch index (read-only)."""
    start = np.arange(-(-length // MV_BLOCK_PX), dtype=np.int64) * MV_BLOCK_PX
    out = (np.minimum(MV_BLOCK_PX, length - start), start // patch_px)
    for a in out:
        a.flags.writeable = False
    return out


@njit(cache=True)
def _inter_pixels(intra, bh_px, bw_px, ycell, xcell, cols, n):  # pragma: no cover - compiled
    """Pixels of inter blocks per patch, when every 4x4 block lies inside one patch: per block
    row, the inter widths summed per patch column (branch-free), then times the row's height."""
    out = np.zeros(n)
    width = np.zeros(cols, np.int64)
    for by in range(intra.shape[0]):
        width[:] = 0
        row = intra[by]
        for bx in range(row.size):
            width[xcell[bx]] += (1 - np.int64(row[bx])) * bw_px[bx]
        base = ycell[by] * cols
        for c in range(cols):
            out[base + c] += width[c] * bh_px[by]
    return out


def inter_share(frame: CodedFrame, grid: PatchGrid) -> np.ndarray:
    """float64 (N,): the share of each patch's LR luma pixels that lie in inter (motion
    reused) blocks of ``frame``; intra blocks, and those the reuse gate sent to upsampling,
    count 0."""
    intra = frame.motion.intra
    if grid.patch_px % MV_BLOCK_PX == 0:  # every block lies inside one patch
        bh_px, ycell = _block_axis(grid.height, grid.patch_px)
        bw_px, xcell = _block_axis(grid.width, grid.patch_px)
        return _inter_pixels(intra, bh_px, bw_px, ycell, xcell, grid.cols, grid.n_patches) * _tables(grid)[0]
    else:
        rows = np.repeat(~intra, MV_BLOCK_PX, axis=0)[:grid.height]
        mask = np.repeat(rows, MV_BLOCK_PX, axis=1)[:, :grid.width]
        pixels = np.bincount(grid.patch_index_map()[mask], minlength=grid.n_patches)
    return pixels / grid.areas()
