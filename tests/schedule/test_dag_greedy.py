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
       dense_from=st.sampled_from([0.0, 0.25, 1.0]))
def test_matches_exhaustive_greedy_and_gains_are_exact(n_frames, h, w, density, carry, cost_aware,
                                                       budget, seed, dense_from):
    """dense_from 0 pushes every delta as a dense product, 1 scatters every listed delta: both
    kernels (and their mix) must give the same picks."""
    rng = np.random.default_rng(seed)
    # patch_px 4 on sizes that are not multiples of 4: edge patches are smaller (costs differ).
    graph = random_graph(rng, n_frames, h, w, density=density)
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


def test_identical_plan_on_generic_graphs(rng):
    for n_frames, h, w in [(8, 12, 16), (12, 10, 14)]:
        graph = random_graph(rng, n_frames, h, w, density=0.25, zero_bias=0.0)
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
