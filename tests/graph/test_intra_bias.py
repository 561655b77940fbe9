"""The ``intra`` node bias: the texture term of the intra pixels only."""

import numpy as np

from anchorsr.graph import frame_texture, node_bias_for
from anchorsr.types import CodedFrame, MotionField, PatchGrid


def _frame(index, y, kind, mv, intra):
    c = np.ascontiguousarray(y[::2, ::2])
    return CodedFrame(index, index, index / 30, kind, 1000, y, c, 255 - c, MotionField(mv, intra))


def test_intra_bias_counts_intra_pixels_only():
    rng = np.random.default_rng(3)
    h, w = 64, 96
    grid = PatchGrid(32, h, w)
    y0, y1 = rng.integers(0, 256, (2, h, w), np.uint8)
    bh, bw = h // 4, w // 4
    mv = rng.integers(-8, 9, (bh, bw, 2)).astype(np.int16)
    intra = np.zeros((bh, bw), bool)
    intra[:8, :8] = True  # the top-left patch (32 x 32 LR pixels) is intra, every other inter
    key = _frame(0, y0, "I", np.zeros_like(mv), np.ones_like(intra))
    p = _frame(1, y1, "P", mv, intra)
    bias = node_bias_for("intra", 2)(p, key, grid)
    full = frame_texture(p, key, grid)
    assert bias[0] > 0 and np.isclose(bias[0], full[0])  # the intra patch: the texture term
    assert np.all(bias[1:] == 0) and np.all(full[1:] > 0)  # inter patches: no residual counted
    # a key frame (and a frame without reference) is all intra: the texture term everywhere
    assert np.allclose(node_bias_for("intra", 2)(key, None, grid), frame_texture(key, None, grid))
