"""The node-bias predictor: its contract, its use in the graph, its ranking against the oracle
(the network really run) on content it was not fitted to, and the determinism of a refit."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import spearmanr

from anchorsr.errors import ConfigError, ModelError
from anchorsr.graph import build_graph, load_predictor, node_bias_for, predictor_for
from anchorsr.graph.predictor import FEATURES, bias_path, patch_features
from anchorsr.schedule import chunks_of
from anchorsr.sr.model import default_path
from anchorsr.stream import EncodeSettings, open_frames, write_clip
from anchorsr.types import PatchGrid

from tests.conftest import textured

W, H = 192, 128


def _varied_frames(n: int, seed: int = 3):
    """A pan over a picture whose detail varies across the frame: flat on the left, rich on the
    right, a smooth band in the middle (so patches differ in what SR can restore)."""
    tex = textured(H + 2 * n + 4, W + 3 * n + 4, seed).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, tex.shape[1], dtype=np.float32) ** 2
    band = 0.3 + 0.7 * (np.abs(np.linspace(-1, 1, tex.shape[0], dtype=np.float32)) > 0.3)
    pic = np.clip(128 + (tex - 128) * ramp[None, :] * band[:, None], 0, 255).astype(np.uint8)
    for i in range(n):
        y = np.ascontiguousarray(pic[2 * i:2 * i + H, 3 * i:3 * i + W])
        c = np.full((H // 2, W // 2), 128, np.uint8)
        yield y, c, c


@pytest.fixture(scope="module")
def varied_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("pred") / "varied.mp4"
    write_clip(path, _varied_frames(8), EncodeSettings(keyint=4, crf=23, threads=1))
    return list(open_frames(path))


def test_shipped_predictors_load_with_their_contract():
    for s in (2, 3, 4):
        p = load_predictor(bias_path(default_path(s)), s, default_path(s))
        assert p.scale == s and p.coef.shape == (len(FEATURES),) and np.all(p.coef >= 0)
        assert p.contract["fit_data"]["photos"], "the fit data list is recorded"
        assert all(len(r["sha256"]) == 64 for r in p.contract["fit_data"]["photos"])


def _write(path, **changes):
    contract = json.loads(bias_path(default_path(2)).read_text())
    contract.update(changes)
    path.write_text(json.dumps(contract))
    return path


def test_contract_is_checked_on_load(tmp_path):
    with pytest.raises(ModelError, match="expected a node-bias predictor file at"):
        load_predictor(tmp_path / "none.bias.json")
    with pytest.raises(ModelError, match="expected a predictor for scale 3, got scale 2"):
        load_predictor(_write(tmp_path / "a.json"), 3)
    with pytest.raises(ModelError, match="expected the features"):
        load_predictor(_write(tmp_path / "b.json", features=["y_intra_count"]), 2)
    with pytest.raises(ModelError, match="non-negative coefficients"):
        load_predictor(_write(tmp_path / "c.json", coef=[-1.0] * len(FEATURES)), 2)
    with pytest.raises(ModelError, match="format"):
        load_predictor(_write(tmp_path / "d.json", format="something else"), 2)
    (tmp_path / "e.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable"):
        load_predictor(tmp_path / "e.json", 2)


def test_missing_file_falls_back_to_texture_with_a_warning(tmp_path, caplog, varied_clip):
    weights = tmp_path / "mine.safetensors"
    weights.write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        assert predictor_for(2, weights) is None
    assert "uses the texture term" in caplog.text
    chunk = next(chunks_of(varied_clip, 8, 32))
    fallback = build_graph(chunk, node_bias=node_bias_for("predictor", 2, weights))
    assert np.array_equal(fallback.bias, build_graph(chunk).bias)
    with pytest.raises(ConfigError, match="bench quality"):
        node_bias_for("oracle", 2)


def test_graph_uses_the_predictor(varied_clip):
    chunk = next(chunks_of(varied_clip, 8, 32))
    pred = predictor_for(2)
    g = build_graph(chunk, node_bias=pred)
    prev = chunk.prev
    for t, f in enumerate(chunk.frames):
        assert np.allclose(g.bias[t], patch_features(f, prev, chunk.grid, 2) @ pred.coef)
        prev = f
    assert not np.allclose(g.bias, build_graph(chunk).bias)
    assert np.all(build_graph(chunk, node_bias=pred, texture=False).bias == 1.0)  # the ablation still wins


def test_features_are_additive_over_patches(varied_clip):
    """A feature is a per-patch sum: the sums over a fine grid add up to the coarse grid's."""
    f, ref = varied_clip[1], varied_clip[0]
    fine = patch_features(f, ref, PatchGrid(32, H, W), 2)
    coarse = patch_features(f, ref, PatchGrid(64, H, W), 2)
    assert np.allclose(fine.sum(0), coarse.sum(0), rtol=1e-5)
    assert fine[:, FEATURES.index("y_intra_count")].sum() + fine[:, FEATURES.index("y_inter_count")].sum() == H * W


def test_predictor_ranks_like_the_oracle_on_held_out_content(varied_clip):
    """On synthetic content (never fitted to), the predictor's node ranking correlates with the
    oracle (the shipped network really run on every frame) far better than a constant bias
    (whose rank correlation is 0)."""
    from anchorsr.reuse import ReuseConfig
    from anchorsr.sr import SRRunner, load_model, upscale_frame
    from anchorsr.sr.biasfit import OracleBias

    runner = SRRunner(load_model(2))
    sr = {f.index: upscale_frame(runner, f.y, f.u, f.v) for f in varied_clip}
    oracle = OracleBias(sr.__getitem__, ReuseConfig(2))
    chunk = next(chunks_of(varied_clip, 8, 32))
    truth = build_graph(chunk, node_bias=oracle).bias.ravel()
    pred = build_graph(chunk, node_bias=predictor_for(2)).bias.ravel()
    rho = spearmanr(pred, truth)[0]
    assert np.ptp(truth) > 0
    assert rho > 0.6, rho  # a constant bias ties every node: rank correlation 0


def test_refit_is_deterministic(tmp_path):
    """Two refits on the same (tiny) training content write the same coefficients."""
    from anchorsr.sr.biasfit import refit

    kw = dict(photos=["skimage:camera", "skimage:moon"], frames=3, max_lr_side=96)
    a, _ = refit(default_path(2), 2, out=tmp_path / "a.json", **kw)
    b, _ = refit(default_path(2), 2, out=tmp_path / "b.json", **kw)
    assert a.coef.tolist() == b.coef.tolist()
    assert json.loads((tmp_path / "a.json").read_text())["fit_figures"] == \
        json.loads((tmp_path / "b.json").read_text())["fit_figures"]
    with pytest.raises(ConfigError, match="held-out"):
        refit(default_path(2), 2, photos=["skimage:astronaut"], frames=3, out=tmp_path / "c.json")


def test_cli_refit_of_missing_weights_is_one_error_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "anchorsr.cli", "train", "--scale", "2", "--refit-bias",
                        "-o", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("anchorsr: error:") and len(r.stderr.strip().splitlines()) == 1
