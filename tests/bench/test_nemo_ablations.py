"""The nemo scheduler (offline, measured) and the two ablation schedulers."""

from __future__ import annotations

import numpy as np
import pytest

from anchorsr.errors import ConfigError
from anchorsr.graph import build_graph
from anchorsr.reuse import GroundTruthPatchSource, ReuseConfig
from anchorsr.schedule import chunks_of, get_scheduler, guarded_greedy, plan_stream
from anchorsr.metrics import planes_mse
from anchorsr.bench.nemo import greedy_frame_order
from anchorsr.stream import EncodeSettings, open_frames, resize_yuv, write_clip
from tests.conftest import pan_frames


def test_greedy_frame_order_hand_worked():
    base = np.array([30.0, 30.0, 30.0])  # per-frame MSE with no anchor
    single = np.array([[10.0, 20.0, 29.0],   # anchor 0 lowers frames 0-2 by 20+10+1 = 31
                       [30.0, 10.0, 18.0],   # anchor 1: 0+20+12 = 32
                       [30.0, 30.0, 5.0]])   # anchor 2: 25
    order = greedy_frame_order(base, single)
    # after 1: estimate (30, 10, 18); adding 0 -> (10, 10, 18) -20; adding 2 -> (30, 10, 5) -13
    assert order == [1, 0, 2]
    # ties: the earliest frame
    assert greedy_frame_order(np.array([9.0, 9.0]), np.array([[1.0, 9.0], [9.0, 1.0]])) == [0, 1]


def test_greedy_frame_order_spends_nothing_on_an_exact_frame():
    """A black frame (MSE 0 with no anchor, an infinite PSNR) gains nothing from an anchor: the
    greedy puts it last instead of buying it first (as summed per-frame PSNRs, inf, did)."""
    base = np.array([0.0, 20.0, 20.0])
    single = np.array([[0.0, 20.0, 20.0],
                       [0.0, 4.0, 12.0],
                       [0.0, 20.0, 6.0]])
    assert greedy_frame_order(base, single) == [1, 2, 0]


def test_nemo_needs_the_ground_truth():
    with pytest.raises(ConfigError, match="evaluation-only"):
        get_scheduler("nemo")


@pytest.fixture(scope="module")
def hr_clip(tmp_path_factory):
    hr = [tuple(np.ascontiguousarray(p) for p in f) for f in pan_frames(12, dx=2, dy=1, w=128, h=96)]
    lr = [resize_yuv(*f, 64, 48) for f in hr]
    path = tmp_path_factory.mktemp("nemo") / "lr.mp4"
    write_clip(path, lr, EncodeSettings(keyint=12, crf=20))
    return hr, list(open_frames(path))


def test_nemo_measures_and_plans_whole_frames(hr_clip):
    hr, frames = hr_clip
    oracle = GroundTruthPatchSource(lambda i: hr[i])
    nemo = get_scheduler("nemo", reference=lambda i: hr[i], patch_source=oracle,
                          config=ReuseConfig(2, anchor_weight=1.0))  # anchors replace: exact frames
    (chunk,) = list(chunks_of(frames, 12, 32))
    base, single = nemo.measure(chunk)
    for j in range(12):
        assert np.array_equal(single[j, :j], base[:j])  # an anchor never changes earlier frames
        assert single[j, j] == planes_mse(hr[j], hr[j]) == 0.0  # oracle anchor: exact frame
    plan = nemo.plan(chunk, 3 / 12)
    order = greedy_frame_order(base, single)
    n = chunk.grid.n_patches
    assert len(plan) == 3 * n
    assert list(plan.frames[::n]) == order[:3]
    assert nemo.plan(chunk, 0.0).frames.size == 0


def test_ablation_schedulers_use_their_graphs(hr_clip):
    _, frames = hr_clip
    (chunk,) = list(chunks_of(frames, 12, 16))
    for name, options in (("dag-greedy-noweights", {"edge_weights": False}),
                          ("dag-greedy-notexture", {"texture": False})):
        plan = get_scheduler(name).plan(chunk, 0.1)
        # The ablations are dag-greedy (guarded against palantir's plan) on their own graph.
        f, p, _, _ = guarded_greedy(build_graph(chunk, **options), 0.1 * 12 * 48 * 64)
        assert np.array_equal(plan.frames, f) and np.array_equal(plan.patches, p)
        (_, streamed), = list(plan_stream(frames, name, 0.1, 12, 16))
        assert np.array_equal(streamed.patches, p)
    full = get_scheduler("dag-greedy").plan(chunk, 0.1)
    notex = get_scheduler("dag-greedy-notexture").plan(chunk, 0.1)
    assert not (np.array_equal(full.frames, notex.frames) and np.array_equal(full.patches, notex.patches))
