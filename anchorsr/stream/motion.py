"""FFmpeg's exported motion vectors -> a MotionField on the 4x4 luma block grid (compiled scatter)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..types import MV_BLOCK_PX, MV_UNITS_PER_PX, MotionField


@njit(cache=True, nogil=True)
def _scatter(w, h, dst_x, dst_y, dx, dy, mv, intra, block):
    """Write each vector's (dx, dy) over the 4x4 blocks its w x h partition covers."""
    bh, bw = intra.shape
    for i in range(w.shape[0]):
        nx, ny = max(w[i] // block, 1), max(h[i] // block, 1)
        bx0 = (dst_x[i] - w[i] // 2) // block
        by0 = (dst_y[i] - h[i] // 2) // block
        for by in range(max(by0, 0), min(by0 + ny, bh)):
            for bx in range(max(bx0, 0), min(bx0 + nx, bw)):
                mv[by, bx, 0] = dx[i]
                mv[by, bx, 1] = dy[i]
                intra[by, bx] = False


def motion_field_from_vectors(vectors: np.ndarray | None, height: int, width: int) -> MotionField:
    """Scatter FFmpeg ``AVMotionVector`` records onto the 4x4 block grid of an (H, W) frame.

    vectors: structured array with fields w, h (block size), dst_x, dst_y (block centre),
        motion_x, motion_y, motion_scale, source (<0: past reference). ``src = dst + motion/scale``.
    Blocks no past-reference vector covers are intra. Blocks of the coded size beyond the
    displayed frame (sizes not multiples of 16) are dropped. The unit conversion is done on
    whole arrays and the scatter in one compiled loop (no Python loop over vectors).
    """
    field = MotionField.all_intra(height, width)
    if vectors is None or len(vectors) == 0:
        return field
    v = vectors[vectors["source"] < 0]
    scale = np.maximum(v["motion_scale"].astype(np.int32), 1)
    dx = np.rint(v["motion_x"].astype(np.int64) * MV_UNITS_PER_PX / scale).astype(np.int16)
    dy = np.rint(v["motion_y"].astype(np.int64) * MV_UNITS_PER_PX / scale).astype(np.int16)
    _scatter(v["w"].astype(np.int64), v["h"].astype(np.int64), v["dst_x"].astype(np.int64),
             v["dst_y"].astype(np.int64), dx, dy, field.mv, field.intra, MV_BLOCK_PX)
    return field
