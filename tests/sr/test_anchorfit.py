import numpy as np

from anchorsr.sr.anchorfit import inter_mask, weight_sums
from anchorsr.types import CodedFrame, MotionField


def test_least_squares_weight_recovers_a_known_blend():
    rng = np.random.default_rng(0)
    reuse = rng.normal(100, 20, (32, 32))
    sr = reuse + rng.normal(0, 5, (32, 32))
    truth = reuse + 0.6 * (sr - reuse) + rng.normal(0, 0.01, (32, 32))
    mask = np.ones((32, 32), bool)
    num, den = weight_sums(truth, reuse, sr, mask)
    assert abs(num / den - 0.6) < 1e-3
    # the masked-out samples do not count: make them say weight 2 and keep them out
    truth2 = truth.copy()
    truth2[:, 16:] = reuse[:, 16:] + 2.0 * (sr[:, 16:] - reuse[:, 16:])
    mask[:, 16:] = False
    n2, d2 = weight_sums(truth2, reuse, sr, mask)
    assert abs(n2 / d2 - 0.6) < 1e-3


def test_inter_mask_follows_the_blocks_and_crops_to_the_plane():
    intra = np.zeros((3, 4), bool)
    intra[1, 2] = True
    y = np.zeros((10, 16), np.uint8)
    f = CodedFrame(1, 1, 0.0, "P", 10, y, y[::2, ::2], y[::2, ::2], MotionField(np.zeros((3, 4, 2), np.int16), intra))
    m = inter_mask(f, 2, (20, 32))
    assert m.shape == (20, 32)
    assert not m[8:16, 16:24].any() and m[:8].all() and m[8:16, :16].all()
