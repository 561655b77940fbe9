"""Detail retention of the graph's edges (docs/method.md §2.3): the table, the weights that use
it, and the measured fading of an anchor's effect along sub-pixel motion it predicts."""

import numpy as np
import pytest
from scipy import integrate

from anchorsr.errors import ConfigError
from anchorsr.graph import build_graph, forward_errors, frame_weights
from anchorsr.graph.motion import retention
from anchorsr.graph.synthetic import coded_frame
from anchorsr.reuse import GroundTruthPatchSource, Reconstructor, ReuseConfig
from anchorsr.types import Chunk, PatchGrid


def _quadrature(scale, fy, fx):
    """The table's entry by adaptive quadrature over the detail band (two rectangles)."""
    def gain(w, f):
        return np.sqrt(1 - 2 * f * (1 - f) * (1 - np.cos(w)))

    def num(wx, wy):
        return gain(wy, fy) * gain(wx, fx) / (wy ** 2 + wx ** 2)

    def den(wx, wy):
        return 1 / (wy ** 2 + wx ** 2)

    lo = np.pi / scale
    parts = [(lo, np.pi, 0, np.pi), (0, lo, lo, np.pi)]  # (wy range, wx range)
    n = sum(integrate.dblquad(num, a, b, c, d)[0] for a, b, c, d in parts)
    m = sum(integrate.dblquad(den, a, b, c, d)[0] for a, b, c, d in parts)
    return n / m


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_table_matches_quadrature_and_is_symmetric(scale):
    t = retention(scale)
    assert t[0, 0] == 1.0
    for qy, qx in ((0, 2), (2, 2), (1, 3), (3, 0)):
        assert t[qy, qx] == pytest.approx(_quadrature(scale, qy / 4, qx / 4), abs=2e-3)
    np.testing.assert_allclose(t, t.T)  # the axes play the same part
    np.testing.assert_allclose(t[1], t[3])  # phase f and 1 - f blur alike
    assert t[0, 2] < t[0, 1] < t[0, 0] and t[2, 2] == t.min()
    assert not t.flags.writeable


def test_a_scale_without_a_detail_band_is_refused():
    with pytest.raises(ConfigError, match="at least 2, got 1"):
        retention(1)


def _pan_pair(h, w, mv_q):
    rng = np.random.default_rng(3)
    ref = coded_frame(0, rng.integers(0, 256, (h, w)))
    mv = np.zeros((h // 4, w // 4, 2), np.int16)
    mv[...] = mv_q
    return ref, coded_frame(1, rng.integers(0, 256, (h, w)), mv)


def test_weights_count_the_retention_of_each_blocks_phase():
    grid = PatchGrid(8, 16, 16)
    ref, cur = _pan_pair(16, 16, (0, 0))
    plain = frame_weights(cur, ref, grid).toarray()
    mv = cur.motion.mv.copy()
    mv[:, :2] = (1, 0)  # left half: a quarter LR pel = half an HR pixel at x2, whole at x4
    mv[:, 2:] = (1, 1)
    cur = coded_frame(1, cur.y, mv)
    t2 = retention(2)
    w2 = frame_weights(cur, ref, grid, scale=2).toarray()
    np.testing.assert_allclose(w2.sum(1), [t2[0, 2], t2[2, 2], t2[0, 2], t2[2, 2]])
    np.testing.assert_allclose(frame_weights(cur, ref, grid, scale=4).toarray(), plain)  # whole pels
    np.testing.assert_allclose(frame_weights(cur, ref, grid).toarray(), plain)  # no scale: no retention


def _fine_pan(n, h, w, s, seed=0):
    """HR truth and LR frames of a texture moving left by a quarter LR pixel a frame (half an HR
    pixel at s=2), made by box-averaging a texture s*2 times finer than the LR grid."""
    rng = np.random.default_rng(seed)
    f = 2  # fine samples per HR sample
    big = rng.standard_normal((h * s * f + 8, (w + n) * s * f + 8))
    for _ in range(2):
        big = (big + np.roll(big, 1, 0) + np.roll(big, 1, 1) + np.roll(big, (1, 1), (0, 1))) / 4
    big = 128 + 50 * big / big.std()
    hr, lr = [], []
    for i in range(n):
        crop = big[:h * s * f, i:i + w * s * f]  # one fine sample = 1/(s f) LR pixel = a quarter pel at s=2
        y = crop.reshape(h * s, f, w * s, f).mean(axis=(1, 3))
        hr.append(np.clip(y.round(), 0, 255).astype(np.uint8))
        lr.append(np.clip(y.reshape(h, s, w, s).mean(axis=(1, 3)).round(), 0, 255).astype(np.uint8))
    return hr, lr


def test_an_anchors_effect_fades_as_the_retention_predicts():
    """A pan at half an HR pixel a frame (x2): the ground truth pasted on every patch of one
    frame lowers the error of the frames after it less and less (the bilinear sub-pixel steps
    blur its detail away). The graph with retention follows the measured fading over three
    frames far better than edges that carry all detail, which predict none."""
    s, h, w, n, k = 2, 32, 48, 9, 3
    hr, lr = _fine_pan(n, h, w, s)
    mv = np.zeros((h // 4, w // 4, 2), np.int16)
    mv[..., 0] = 1  # the source lies a quarter LR pel to the right
    frames = [coded_frame(0, lr[0])] + [coded_frame(i, lr[i], mv) for i in range(1, n)]
    grid = PatchGrid(16, h, w)
    truth = GroundTruthPatchSource(lambda i: (hr[i], hr[i][::2, ::2], hr[i][::2, ::2]))

    def errors(anchor_at):
        rec, out = Reconstructor(ReuseConfig(s)), []
        for f in frames:
            if f.index == anchor_at:
                got = rec.step(f, grid.boxes(), truth(f, grid.boxes(), s))
            else:
                got = rec.step(f)
            inner = (slice(8, -8), slice(8, -24))  # away from the borders and the entering content
            out.append(np.mean((got.y[inner].astype(float) - hr[f.index][inner]) ** 2))
        return np.array(out)

    gain = (errors(None) - errors(k))[k:]
    assert gain[0] > 0
    measured = gain[1:4] / gain[0]  # 0.72, 0.59, 0.50 when written
    assert 0.5 < measured[0] < 0.85 and np.all(np.diff(measured) < 0), measured
    chunk = Chunk(frames, grid)
    mask = np.zeros((n, grid.n_patches), bool)
    mask[k] = True
    miss = {}
    for scale in (s, None):
        g = build_graph(chunk, scale=scale)
        d = (forward_errors(g).sum(1) - forward_errors(g, mask).sum(1))[k:]
        miss[scale] = np.abs(d[1:4] / d[0] - measured).sum()
    assert miss[s] < 0.6 * miss[None], miss
