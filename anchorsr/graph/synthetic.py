"""Synthetic CodedFrames with exactly known motion, for tests and scheduling benchmarks.

The decoder gives real motion fields; these builders give ones a test controls exactly.
"""

from __future__ import annotations

import numpy as np

from ..types import MV_BLOCK_PX, MV_UNITS_PER_PX, CodedFrame, MotionField


def coded_frame(index: int, y: np.ndarray, mv: np.ndarray | None = None,
                intra: np.ndarray | None = None, *, kind: str | None = None,
                size_bytes: int = 0, u: np.ndarray | None = None,
                v: np.ndarray | None = None) -> CodedFrame:
    """A CodedFrame from a luma plane and a motion field.

    y: uint8 (H, W). mv: int16 (ceil(H/4), ceil(W/4), 2) quarter pels (zero when None).
    intra: bool (ceil(H/4), ceil(W/4)) (all False when None and kind is "P").
    kind defaults to "I" when neither mv nor intra is given, else "P". Chroma defaults to a
    2x2-subsampled luma.
    """
    y = np.ascontiguousarray(y, np.uint8)
    h, w = y.shape
    bh, bw = -(-h // MV_BLOCK_PX), -(-w // MV_BLOCK_PX)
    if kind is None:
        kind = "I" if mv is None and intra is None else "P"
    if kind == "I":
        motion = MotionField.all_intra(h, w)
    else:
        mv = np.zeros((bh, bw, 2), np.int16) if mv is None else np.asarray(mv, np.int16)
        intra = np.zeros((bh, bw), bool) if intra is None else np.asarray(intra, bool)
        motion = MotionField(mv, intra)
    if u is None:
        u = np.ascontiguousarray(y[::2, ::2])
    if v is None:
        v = np.ascontiguousarray(y[::2, ::2])
    return CodedFrame(index, index, index / 30.0, kind, size_bytes, y, u, v, motion)


def moving_object_clip(height: int, width: int, n_frames: int, *, obj_px: int = 32,
                       speed_px: int = 2, seed: int = 0) -> list[CodedFrame]:
    """A flat static background with one textured square moving right by ``speed_px`` per frame.

    Frame 0 is a key frame; later frames are P frames whose vectors follow the object exactly
    (whole pels), everything else has zero motion. Returns CodedFrames in decode order.
    """
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (obj_px, obj_px), dtype=np.uint8)
    bh, bw = -(-height // MV_BLOCK_PX), -(-width // MV_BLOCK_PX)
    oy = (height - obj_px) // 2
    frames = []
    for t in range(n_frames):
        ox = (4 + t * speed_px) % max(1, width - obj_px)
        y = np.full((height, width), 96, np.uint8)
        y[oy:oy + obj_px, ox:ox + obj_px] = texture
        if t == 0:
            frames.append(coded_frame(t, y, size_bytes=50_000))
            continue
        mv = np.zeros((bh, bw, 2), np.int16)
        by0, by1 = oy // MV_BLOCK_PX, (oy + obj_px) // MV_BLOCK_PX
        bx0, bx1 = ox // MV_BLOCK_PX, -(-(ox + obj_px) // MV_BLOCK_PX)
        mv[by0:by1, bx0:bx1, 0] = -speed_px * MV_UNITS_PER_PX
        # Background the object uncovers has nothing to copy from: the encoder codes it intra.
        intra = np.zeros((bh, bw), bool)
        intra[by0:by1, max(0, (ox - speed_px) // MV_BLOCK_PX):bx0] = True
        frames.append(coded_frame(t, y, mv, intra, size_bytes=2_000))
        continue
        frames.append(coded_frame(t, y, mv, size_bytes=2_000))
    return frames


def pan_motion(height: int, width: int, rng: np.random.Generator, *, pan_px: float = 3.0,
               intra_share: float = 0.02, macroblock_px: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A realistic-looking motion field: a global pan plus per-macroblock jitter and some intra.

    Returns mv int16 (bh, bw, 2) quarter pels and intra bool (bh, bw); vectors are constant over
    ``macroblock_px`` squares, like H.264's partitions.
    """
    bh, bw = -(-height // MV_BLOCK_PX), -(-width // MV_BLOCK_PX)
    k = macroblock_px // MV_BLOCK_PX
    mh, mw = -(-bh // k), -(-bw // k)
    base = np.array([pan_px, pan_px / 3]) * MV_UNITS_PER_PX
    mb = base + rng.normal(0, 6, (mh, mw, 2))
    mv = np.repeat(np.repeat(mb, k, 0), k, 1)[:bh, :bw].round().astype(np.int16)
    intra = np.repeat(np.repeat(rng.random((mh, mw)) < intra_share, k, 0), k, 1)[:bh, :bw]
    mv[intra] = 0
    return mv, intra
