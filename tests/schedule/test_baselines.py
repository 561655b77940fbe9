"""Baselines, the registry, budgets and nesting."""

import numpy as np
import pytest

from anchorsr.errors import ConfigError
from anchorsr.graph.synthetic import coded_frame
from anchorsr.schedule import available_schedulers, get_scheduler, neuroscaler_order, register
from anchorsr.schedule.base import Scheduler
from anchorsr.types import Chunk, PatchGrid


def _chunk(kinds, sizes=None, h=20, w=30, patch_px=8):
    rng = np.random.default_rng(0)
    sizes = sizes or [1000] * len(kinds)
    frames = tuple(coded_frame(i, rng.integers(0, 256, (h, w)), kind=k, size_bytes=s,
                               mv=None if k == "I" else np.zeros((-(-h // 4), -(-w // 4), 2)))
                   for i, (k, s) in enumerate(zip(kinds, sizes)))
    return Chunk(frames, PatchGrid(patch_px, h, w))


def test_neuroscaler_hand_worked_example():
    # Sizes (bytes) of a 6-frame chunk, frame 0 a key frame (counts 0); 3 anchor frames.
    # acc = [0, 10, 30, 60, 65, 70]; next_j = 6 for every j > 0.
    # Scores (next_j - j) * acc_j: j1 5*10=50, j2 4*30=120, j3 3*60=180, j4 2*65=130, j5 1*70=70
    #   -> pick 3; subtract acc_3 = 60 over [3, 6): acc = [0, 10, 30, 0, 5, 10].
    # Now next_1 = next_2 = 3, next_4 = next_5 = 6:
    #   j1 2*10=20, j2 1*30=30, j4 2*5=10, j5 1*10=10 -> pick 2.
    # Order: key frame 0 first, then 3, then 2.
    sizes = [900, 10, 20, 30, 5, 5]
    is_key = [True, False, False, False, False, False]
    assert neuroscaler_order(sizes, is_key, 3) == [0, 3, 2]
    assert neuroscaler_order(sizes, is_key, 2) == [0, 3]  # nested
    # A key frame in the middle resets the accumulation: acc = [0, 10, 30, 0, 5, 10]; next of
    # 1, 2 is 3. Scores: j1 2*10=20, j2 1*30=30, j4 2*5=10, j5 10 -> 2 after keys 0 and 3.
    assert neuroscaler_order(sizes, [True, False, False, True, False, False], 3) == [0, 3, 2]


def test_neuroscaler_scheduler_uses_budget_in_frames():
    chunk = _chunk(["I", "P", "P", "P", "P", "P"], [900, 10, 20, 30, 5, 5])
    plan = get_scheduler("neuroscaler").plan(chunk, 0.5)  # 3 of 6 frames
    n = chunk.grid.n_patches
    assert plan.frames[::n].tolist() == [0, 3, 2] and len(plan) == 3 * n


def test_fixed_cost_baselines():
    chunk = _chunk(["I", "P", "P", "I", "P"])
    n = chunk.grid.n_patches
    assert len(get_scheduler("none").plan(chunk, 0.5)) == 0
    assert get_scheduler("all").plan(chunk, 0.05).anchor_fraction() == pytest.approx(1.0)
    key = get_scheduler("keyframes").plan(chunk, 0.05)
    assert sorted(set(key.frames.tolist())) == [0, 3] and len(key) == 2 * n


def test_uniform_and_key_uniform_respect_budget():
    chunk = _chunk(["I"] + ["P"] * 19)
    uni = get_scheduler("uniform").plan(chunk, 0.2)  # 4 of 20 frames, stride 5
    assert sorted(set(uni.frames.tolist())) == [0, 5, 10, 15]
    ku = get_scheduler("key-uniform").plan(chunk, 0.1)
    assert ku.anchor_fraction() <= 0.1 + 1e-12
    n = chunk.grid.n_patches
    assert ku.frames[:n].tolist() == [0] * n  # key frame first
    rest = ku.frames[n:]
    assert rest.size > 0 and np.all(np.diff(rest) >= 0) and rest.max() > 10  # spread over the chunk


def test_registry_rejects_duplicates_and_unknown_names():
    assert {"dag-greedy", "palantir", "neuroscaler", "key-uniform", "keyframes", "uniform", "all",
            "none"} <= set(available_schedulers())
    with pytest.raises(ConfigError, match="already registered"):
        @register("uniform")
        class Again(Scheduler):
            def plan(self, chunk, budget_fraction, *, graph=None, carry_in=None):
                raise NotImplementedError
    with pytest.raises(ConfigError, match="expected a scheduler name"):
        get_scheduler("nemo-typo")
    with pytest.raises(ValueError):
        get_scheduler("uniform").plan(_chunk(["I"]), 1.5)


@pytest.mark.parametrize("name", ["dag-greedy-plain", "palantir", "neuroscaler"])
def test_plans_are_nested(name):
    rng = np.random.default_rng(5)
    h, w = 24, 32
    frames = [coded_frame(0, rng.integers(0, 256, (h, w)), size_bytes=5000)]
    for i in range(1, 12):
        frames.append(coded_frame(i, rng.integers(0, 256, (h, w)), rng.integers(-20, 20, (6, 8, 2)),
                                  rng.random((6, 8)) < 0.1, size_bytes=int(rng.integers(100, 900))))
    chunk = Chunk(tuple(frames), PatchGrid(8, h, w))
    sched = get_scheduler(name)
    big, small = sched.plan(chunk, 0.25), sched.plan(chunk, 0.1)
    assert len(small) > 0
    # Patch-level plans: the budget's prefix; whole-frame plans: the same whole frames first.
    pre = big.prefix_for_budget(0.1) if name != "neuroscaler" else big.prefix(len(small))
    np.testing.assert_array_equal(pre.frames, small.frames)
    np.testing.assert_array_equal(pre.patches, small.patches)


def test_schedulers_read_metadata_only_and_never_import_the_reuse_path():
    import subprocess
    import sys

    code = ("import sys, anchorsr.schedule; "
            "bad = sorted(m for m in sys.modules if m.startswith(('anchorsr.reuse', 'anchorsr.sr', 'torch'))); "
            "print(bad); sys.exit(1 if bad else 0)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
