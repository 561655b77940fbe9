"""FFmpeg's exported motion vectors -> a MotionField on the 4x4 luma block grid, vectorised."""

from __future__ import annotations

import numpy as np

from ..types import MV_BLOCK_PX, MV_UNITS_PER_PX, MotionField


def motion_field_from_vectors(vectors: np.ndarray | None, height: int, width: int) -> MotionField:
    """Scatter FFmpeg ``AVMotionVector`` records onto the 4x4 block grid of an (H, W) frame.

    vectors: structured array with fields w, h (block size), dst_x, dst_y (block centre),
        motion_x, motion_y, motion_scale, source (<0: past reference). ``src = dst + motion/scale``.
    Blocks no past-reference vector covers are intra. Blocks of the coded size beyond the
    displayed frame (sizes not multiples of 16) are dropped.
    """
    field = MotionField.all_intra(height, width)
    if vectors is None or len(vectors) == 0:
        return field
    v = vectors[vectors["source"] < 0]
    bh, bw = field.intra.shape
    scale = np.maximum(v["motion_scale"].astype(np.int32), 1)
    dx = np.rint(v["motion_x"].astype(np.int64) * MV_UNITS_PER_PX / scale).astype(np.int16)
    dy = np.rint(v["motion_y"].astype(np.int64) * MV_UNITS_PER_PX / scale).astype(np.int16)
    for w, h in {(int(a), int(b)) for a, b in zip(v["w"], v["h"])}:
        sel = (v["w"] == w) & (v["h"] == h)
        nx, ny = max(w // MV_BLOCK_PX, 1), max(h // MV_BLOCK_PX, 1)
        bx0 = (v["dst_x"][sel].astype(np.int64) - w // 2) // MV_BLOCK_PX
        by0 = (v["dst_y"][sel].astype(np.int64) - h // 2) // MV_BLOCK_PX
        ys = (by0[:, None, None] + np.arange(ny)[None, :, None]).repeat(nx, axis=2)
        xs = (bx0[:, None, None] + np.arange(nx)[None, None, :]).repeat(ny, axis=1)
        inside = (ys >= 0) & (ys < bh) & (xs >= 0) & (xs < bw)
        k = np.broadcast_to(np.arange(sel.sum())[:, None, None], ys.shape)[inside]
        ys, xs = ys[inside], xs[inside]
        field.mv[ys, xs, 0] = dx[sel][k]
        field.mv[ys, xs, 1] = dy[sel][k]
        field.intra[ys, xs] = False
    return field
