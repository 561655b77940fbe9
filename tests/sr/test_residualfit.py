"""The node bias's inter share, fitted from the network's gain against the truth."""

import numpy as np
import pytest

from anchorsr.sr.residualfit import clip_rows, share_fit

from tests.conftest import pan_frames


@pytest.fixture(scope="module")
def pan_frames_coded(tmp_path_factory):
    """HR truth frames of a pan (96x64) and their x2-downscaled, coded, decoded LR frames."""
    from anchorsr.bench.scenes import downscale
    from anchorsr.stream import EncodeSettings, open_frames, write_clip

    hr = list(pan_frames(4, w=96, h=64))
    path = tmp_path_factory.mktemp("residualfit") / "pan.mp4"
    write_clip(path, downscale(iter(hr), 2), EncodeSettings(keyint=30, crf=23))
    return hr, list(open_frames(path))


def test_share_fit_recovers_a_known_mix_and_says_zero_when_inter_adds_nothing():
    rng = np.random.default_rng(1)
    intra = rng.gamma(2.0, 50.0, 500) * (rng.random(500) < 0.3)
    inter = rng.gamma(2.0, 20.0, 500)
    gain = 2.0 * intra + 0.5 * inter + rng.normal(0, 0.5, 500)
    fit = share_fit(gain, intra, inter)
    assert abs(fit["coef_intra"] - 2.0) < 0.05 and abs(fit["inter_share"] - 0.25) < 0.02
    # inter texture that does not predict the gain (here it lowers it) gets no weight
    fit0 = share_fit(2.0 * intra - 0.3 * inter, intra, inter)
    assert fit0["coef_inter"] == 0.0 and fit0["inter_share"] == 0.0
    assert share_fit(-intra - 1.0, intra, inter)["inter_share"] is None  # nothing positive to fit


def test_clip_rows_split_the_texture_and_measure_the_gain_against_the_truth(pan_frames_coded):
    """On a coded pan with a perfect 'network' (it returns the truth), every patch's gain is the
    reuse step's own error (>= 0), the intra part covers the key frame whole, and intra plus
    inter is the texture term."""
    from anchorsr.graph import frame_texture
    from anchorsr.types import PatchGrid

    hr, frames = pan_frames_coded
    by_index = {f.index: t for f, t in zip(frames, hr)}
    rows = clip_rows(hr, frames, lambda f: by_index[f.index], 2, patch_px=16)
    grid = PatchGrid(16, frames[0].height, frames[0].width)
    n = grid.n_patches
    assert rows["gain"].shape == (n * len(frames),)
    assert (rows["gain"] >= 0).all() and rows["gain"][:n].sum() > 0
    assert rows["key"][:n].all() and not rows["key"][n:].any()
    np.testing.assert_allclose(rows["inter"][:n], 0, atol=1e-6)  # a key frame has no inter part
    np.testing.assert_allclose(rows["intra"][:n] + rows["inter"][:n], frame_texture(frames[0], None, grid))
    p = frames[1]
    np.testing.assert_allclose(rows["intra"][n:2 * n] + rows["inter"][n:2 * n], frame_texture(p, frames[0], grid),
                               rtol=1e-9)
    assert rows["inter"][n:].sum() > 0
