"""Metrics and derived figures of the quality benchmark, against hand-worked numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anchorsr.bench import metrics


def planes(y: int, c: int, h: int = 8, w: int = 8):
    return (np.full((h, w), y, np.uint8), np.full((h // 2, w // 2), c, np.uint8),
            np.full((h // 2, w // 2), c, np.uint8))


def test_frame_mse_combines_planes_by_sample_count():
    # Y off by 2 everywhere (MSE 4), chroma exact: Y has 4 of every 6 samples -> MSE 8/3.
    mse_yuv, mse_y = metrics.frame_mse(planes(12, 100), planes(10, 100))
    assert mse_yuv == pytest.approx(8 / 3)
    assert mse_y == pytest.approx(4.0)
    assert metrics.frame_mse(planes(5, 5), planes(5, 5)) == (0.0, 0.0)


def test_run_psnr_is_the_psnr_of_the_mean_mse():
    from anchorsr.bench.quality import RunStats

    st = RunStats()
    for m in (0.0, 4.0, 8.0):  # an exact (e.g. black) frame and two normal ones
        st.mse_yuv.append(m)
        st.mse_y.append(2 * m)
    s = st.summary()
    assert s["psnr_yuv_db"] == pytest.approx(10 * math.log10(255**2 / 4.0), abs=1e-4)
    assert s["psnr_y_db"] == pytest.approx(10 * math.log10(255**2 / 8.0), abs=1e-4)
    assert s["mse_yuv"] == pytest.approx(4.0)


def test_ssim_identical_and_degraded():
    rng = np.random.default_rng(0)
    a = np.tile(np.linspace(40, 200, 64), (64, 1)).astype(np.uint8)

    def noisy(k):
        return np.clip(a.astype(int) + rng.integers(-k, k + 1, a.shape), 0, 255).astype(np.uint8)

    assert metrics.ssim_y(a, a) == pytest.approx(1.0)
    light, heavy = metrics.ssim_y(a, noisy(3)), metrics.ssim_y(a, noisy(30))
    assert 0.2 < heavy < light < 1.0


def test_gain_kept_formula():
    assert metrics.gain_kept(35.0, 30.0, 40.0) == pytest.approx(0.5)
    assert metrics.gain_kept(q=36.0, q_base=32.0, q_all=40.0) == pytest.approx(0.5)
    assert metrics.gain_kept(40.0, 30.0, 40.0) == pytest.approx(1.0)
    assert metrics.gain_kept(29.0, 30.0, 40.0) == pytest.approx(-0.1)
    assert math.isnan(metrics.gain_kept(31.0, 30.0, 30.0))


def test_budget_at_quality_interpolates_first_crossing():
    b, q = [0.0, 0.02, 0.05, 0.10], [30.0, 31.0, 32.0, 33.0]
    assert metrics.budget_at_quality(b, q, 31.5) == pytest.approx(0.035)
    assert metrics.budget_at_quality(b, q, 29.0) == 0.0
    assert metrics.budget_at_quality(b, q, 33.5) is None
    # unsorted input is sorted by budget first
    assert metrics.budget_at_quality(b[::-1], q[::-1], 32.5) == pytest.approx(0.075)


def test_anchor_saving_hand_worked():
    ours = ([0.0, 0.02, 0.05], [30.0, 32.0, 33.0])
    theirs = ([0.0, 0.05, 0.10], [30.0, 31.0, 34.0])
    pts = metrics.anchor_saving(ours, theirs)
    # their 5% point (31 dB) is reached by us at 1%: saving 80%; their 10% (34 dB): never reached.
    assert [p["their_budget"] for p in pts] == [0.05, 0.10]
    assert pts[0]["our_budget"] == pytest.approx(0.01)
    assert pts[0]["saving"] == pytest.approx(0.8)
    assert pts[1]["saving"] is None
    assert metrics.mean_finite(p["saving"] for p in pts) == pytest.approx(0.8)
    # with no-anchor quality 31 dB, their 5% point bought nothing to match: left out
    assert [p["their_budget"] for p in metrics.anchor_saving(ours, theirs, floor=31.0)] == [0.10]


def test_spearman():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert metrics.spearman(x, [10, 20, 25, 40, 100]) == pytest.approx(1.0)
    assert metrics.spearman(x, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    # hand-worked with ranks (1,2,3,4,5) vs (2,1,4,3,5): 1 - 6*4/(5*24) = 0.8
    assert metrics.spearman(x, [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    from scipy.stats import spearmanr

    y = [3.0, 1.0, 3.0, 2.0, 7.0]
    assert metrics.spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert math.isnan(metrics.spearman([1, 2], [2, 1]))
    assert math.isnan(metrics.spearman([1, 1, 1], [1, 2, 3]))


def test_vmaf_orders_distortion():
    if not metrics.vmaf_available():
        pytest.skip("no libvmaf in this FFmpeg")
    rng = np.random.default_rng(1)
    ref = [(rng.integers(0, 255, (64, 64), dtype=np.uint8), np.full((32, 32), 128, np.uint8),
            np.full((32, 32), 128, np.uint8)) for _ in range(3)]
    noisy = [(np.clip(y.astype(int) + rng.integers(-40, 41, y.shape), 0, 255).astype(np.uint8), u, v)
             for y, u, v in ref]
    same, worse = metrics.vmaf(ref, ref), metrics.vmaf(noisy, ref)
    assert same is not None and worse is not None
    assert same > worse + 5
