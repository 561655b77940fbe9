"""dag-greedy: exactly the exhaustive greedy, with exact gains."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from anchorsr.graph import carry_out, objective
from anchorsr.schedule import dag_greedy, exhaustive_greedy

from sched_graphs import random_graph

REL = 1e-9


def _mask(graph, frames, patches):
    m = np.zeros((graph.n_frames, graph.n_patches), bool)
    m[frames, patches] = True
    return m


@settings(max_examples=60, deadline=None)
@given(n_frames=st.integers(1, 6), h=st.integers(3, 12), w=st.integers(3, 12),
       density=st.sampled_from([0.0, 0.2, 0.6]), carry=st.booleans(), cost_aware=st.booleans(),
       budget=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1),
       dense_from=st.sampled_from([0.0, 0.25, 1.0]), keep=st.booleans())
def test_matches_exhaustive_greedy_and_gains_are_exact(n_frames, h, w, density, carry, cost_aware,
                                                       budget, seed, dense_from, keep):
    """dense_from 0 pushes every delta as a dense product, 1 scatters every listed delta: both
    kernels (and their mix) must give the same picks. keep: anchored nodes keep a share of
    their error (the anchors' blend with reuse)."""
    rng = np.random.default_rng(seed)
    # patch_px 4 on sizes that are not multiples of 4: edge patches are smaller (costs differ).
    graph = random_graph(rng, n_frames, h, w, density=density, keep=keep)
    carry_in = rng.random(graph.n_patches) * 3 if carry else None
    limit = budget * n_frames * h * w
    f, p, gains, e_last = dag_greedy(graph, limit, carry_in=carry_in, cost_aware=cost_aware,
                                     dense_from=dense_from)
    f2, p2, drops = exhaustive_greedy(graph, limit, carry_in=carry_in, cost_aware=cost_aware)
    area = graph.grid.areas().astype(float)
    assert area[p].sum() <= limit + 1e-6
    # Reported gains equal the measured drop in J, pick by pick.
    j_prev = objective(graph, None, carry_in)
    for k in range(len(f)):
        j_now = objective(graph, _mask(graph, f[:k + 1], p[:k + 1]), carry_in)
        assert gains[k] == pytest.approx(j_prev - j_now, rel=REL, abs=1e-9)
        j_prev = j_now
    np.testing.assert_allclose(e_last, carry_out(graph, _mask(graph, f, p), carry_in), atol=1e-9)
    # Same picks as the exhaustive greedy up to the first tie; at a tie both scores agree.
    k = 0
    while k < min(len(f), len(f2)) and (f[k], p[k]) == (f2[k], p2[k]):
        k += 1
    if k < max(len(f), len(f2)):
        assert k < min(len(f), len(f2)), "one plan stopped early without a tie"
        cost = (lambda q: area[q]) if cost_aware else (lambda q: 1.0)
        assert gains[k] / cost(p[k]) == pytest.approx(drops[k] / cost(p2[k]), rel=1e-7, abs=1e-12)


@pytest.mark.parametrize("keep", [False, True])
def test_identical_plan_on_generic_graphs(rng, keep):
    for n_frames, h, w in [(8, 12, 16), (12, 10, 14)]:
        graph = random_graph(rng, n_frames, h, w, density=0.25, zero_bias=0.0, keep=keep)
        limit = 0.3 * n_frames * h * w
        f2, p2, _ = exhaustive_greedy(graph, limit, cost_aware=True)
        for dense_from in (0.0, 0.1, 1.0):
            f, p, _, _ = dag_greedy(graph, limit, cost_aware=True, dense_from=dense_from)
            assert len(f) > 10
            np.testing.assert_array_equal(f, f2)
            np.testing.assert_array_equal(p, p2)


def test_stops_when_nothing_is_left_to_gain(rng):
    graph = random_graph(rng, 3, 8, 8, zero_bias=1.0)  # all biases zero: J = 0 already
    f, _, _, _ = dag_greedy(graph, 1e9)
    assert f.size == 0


def test_a_blended_anchor_gains_only_what_it_removes():
    """Two frames, one patch each, equal errors; frame 1 copies nothing. With frame 1's node
    keeping 90% of its error once anchored, the greedy takes frame 0 first, and each gain is
    (1 - keep) of the node's error."""
    from anchorsr.graph import DependencyGraph
    from anchorsr.types import PatchGrid

    grid = PatchGrid(4, 4, 4)
    w = [np.zeros((1, 1)), np.zeros((1, 1))]
    bias = np.array([[1.0], [1.2]])
    plain = DependencyGraph.from_arrays(grid, w, bias)
    f, _, gains, _ = dag_greedy(plain, 16)
    assert f.tolist() == [1] and gains == pytest.approx([1.2])
    blended = DependencyGraph.from_arrays(grid, w, bias, keep=[[0.0], [0.9]])
    f, _, gains, e_last = dag_greedy(blended, 32)
    assert f.tolist() == [0, 1] and gains == pytest.approx([1.0, 0.12])
    assert e_last == pytest.approx([1.08])
