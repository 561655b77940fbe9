"""anchorsr.metrics: the package's one MSE / PSNR, and a clip's PSNR from its mean MSE."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anchorsr import metrics


def test_plane_mse_and_psnr_hand_worked():
    a = np.full((4, 6), 10, np.uint8)
    b = a.copy()
    b[0, 0] = 22  # one error of 12 over 24 samples: MSE 6
    assert metrics.mse(a, b) == pytest.approx(6.0)
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 6.0))
    assert metrics.psnr(a, a) == math.inf
    # the border crop leaves out the corner: exact inside
    assert metrics.mse(a, b, border=1) == 0.0
    with pytest.raises(ValueError, match="one shape"):
        metrics.mse(a, b[:, :5])
    with pytest.raises(ValueError, match="no samples"):
        metrics.mse(a, b, border=2)


def test_planes_pooled_by_sample_count():
    y, c = np.full((8, 8), 12, np.uint8), np.full((4, 4), 100, np.uint8)
    ref = (np.full((8, 8), 10, np.uint8), c, c)
    # Y off by 2 (MSE 4), chroma exact: Y holds 64 of 96 samples -> 4 * 64 / 96 = 8/3
    assert metrics.planes_mse((y, c, c), ref) == pytest.approx(8 / 3)
    assert metrics.planes_psnr((y, c, c), ref) == pytest.approx(10 * math.log10(255**2 / (8 / 3)))


def test_no_wraparound_on_uint8_and_float_inputs():
    a, b = np.array([[0, 255]], np.uint8), np.array([[255, 0]], np.uint8)
    assert metrics.mse(a, b) == pytest.approx(255.0**2)
    assert metrics.mse(a.astype(np.float64) + 0.5, a) == pytest.approx(0.25)


def test_clip_psnr_is_the_psnr_of_the_mean_mse():
    """An exact frame (MSE 0, e.g. pure black both sides) among normal frames: the clip's PSNR is
    finite and equals 10*log10(255^2 / mean MSE), not a mean of per-frame PSNRs."""
    frame_mses = [0.0, 9.0, 16.0, 25.0]
    want = 10 * math.log10(255**2 / np.mean(frame_mses))
    assert metrics.clip_psnr(frame_mses) == pytest.approx(want)
    assert math.isfinite(metrics.clip_psnr(frame_mses))
    # a mean of per-frame PSNRs (with the old 100 dB cap on the exact frame) reads ~20 dB higher
    capped = np.mean([100.0] + [10 * math.log10(255**2 / m) for m in frame_mses[1:]])
    assert capped - want > 10
    assert metrics.clip_psnr([0.0, 0.0]) == math.inf
    with pytest.raises(ValueError, match="none"):
        metrics.clip_psnr([])


def test_clip_meter_on_frames_with_a_black_frame():
    rng = np.random.default_rng(0)
    black = tuple(np.zeros(s, np.uint8) for s in ((16, 16), (8, 8), (8, 8)))
    meter = metrics.ClipMeter()
    assert meter.add(black, black) == 0.0
    expected = [0.0]
    for _ in range(3):
        ref = tuple(rng.integers(0, 256, p.shape, dtype=np.uint8) for p in black)
        out = tuple(np.clip(r.astype(int) + rng.integers(-6, 7, r.shape), 0, 255).astype(np.uint8) for r in ref)
        expected.append(metrics.planes_mse(out, ref))
        assert meter.add(out, ref) == pytest.approx(expected[-1])
    assert len(meter) == 4
    assert meter.mse == pytest.approx(np.mean(expected))
    assert meter.psnr == pytest.approx(10 * math.log10(255**2 / np.mean(expected)))


def test_the_old_helpers_are_this_module():
    from anchorsr import pipeline
    from anchorsr.sr import data

    a = np.arange(64, dtype=np.uint8).reshape(8, 8)
    b = a[::-1].copy()
    assert pipeline.psnr is metrics.psnr
    assert data.psnr(a, b, 2) == metrics.psnr(a, b, 2)
    assert data.psnr(a, a) == math.inf
