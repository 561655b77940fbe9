"""dag-greedy (guarded): never a higher J than Palantír's plan at the checkpoint budgets."""

from types import SimpleNamespace

import numpy as np
import pytest

from anchorsr.graph import DependencyGraph, build_graph, objective
from anchorsr.schedule import (CHECKPOINTS, Palantir, dag_greedy, exhaustive_greedy, get_scheduler,
                               palantir_fast)
from anchorsr.schedule.guarded import palantir_candidates
from anchorsr.types import Chunk

from sched_graphs import pan_chunk, random_graph

RTOL = 1e-9


def _chunk_for(graph: DependencyGraph) -> Chunk:
    """A stand-in chunk of the graph's shape (the schedulers only read its length and grid)."""
    return Chunk(tuple(SimpleNamespace(index=i) for i in range(graph.n_frames)), graph.grid)


def _check_guarantee(chunk, graph, budgets, carry=None):
    """Every checkpoint prefix of dag-greedy's plan at each budget is no worse than palantir."""
    ours, pal = get_scheduler("dag-greedy"), get_scheduler("palantir")
    pal_j = {}
    for b in budgets:
        plan = ours.plan(chunk, b, graph=graph, carry_in=carry)
        assert plan.anchor_fraction() <= b + 1e-12
        for c in sorted({c for c in CHECKPOINTS if c < b} | {b}):
            if c not in pal_j:
                pal_j[c] = objective(graph, pal.plan(chunk, c, graph=graph, carry_in=carry), carry)
            j = objective(graph, plan.prefix_for_budget(c), carry)
            assert j <= pal_j[c] * (1 + RTOL) + 1e-12, (b, c, ours.last_choice, j, pal_j[c])


def test_fast_palantir_is_palantir(rng):
    for seed in range(4):
        r = np.random.default_rng(seed)
        graph = random_graph(r, int(r.integers(8, 20)), 12, 16, density=0.3)
        carry = r.random(graph.n_patches) if seed % 2 else None
        limit = 0.2 * graph.n_frames * 12 * 16
        f, p, _ = exhaustive_greedy(graph, limit, Palantir().candidates(graph, carry), carry_in=carry)
        f2, p2, _, _ = palantir_fast(graph, limit, carry_in=carry)
        np.testing.assert_array_equal(f, f2)
        np.testing.assert_array_equal(p, p2)


def test_compiled_preselection_is_palantirs():
    for seed in range(6):
        r = np.random.default_rng(seed)
        graph = random_graph(r, int(r.integers(3, 70)), 8, 8, density=float(r.choice([0.05, 0.5])))
        carry = r.random(graph.n_patches) * 3 if seed % 2 else None
        for kept in (1, 8, 30):
            np.testing.assert_array_equal(palantir_candidates(graph, kept, carry),
                                          Palantir(frames_kept=kept).candidates(graph, carry))


def test_continuing_from_anchors_is_the_rest_of_the_greedy(rng):
    """The kernel started from the first k picks of a run picks what the run picked next."""
    graph = random_graph(rng, 10, 12, 12, density=0.3)
    carry = rng.random(graph.n_patches)
    area = graph.grid.areas().astype(float)
    limit = 0.2 * 10 * 12 * 12
    f, p, gains, e_last = dag_greedy(graph, limit, carry_in=carry)
    k = len(f) // 3
    anchors = np.zeros((graph.n_frames, graph.n_patches), bool)
    anchors[f[:k], p[:k]] = True
    f2, p2, gains2, e_last2 = dag_greedy(graph, limit - area[p[:k]].sum(), carry_in=carry,
                                         anchors=anchors)
    np.testing.assert_array_equal(f2, f[k:])
    np.testing.assert_array_equal(p2, p[k:])
    np.testing.assert_allclose(gains2, gains[k:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(e_last2, e_last, atol=1e-9)


def test_candidates_restrict_the_picks(rng):
    graph = random_graph(rng, 6, 12, 12, density=0.3)
    cands = np.arange(2 * graph.n_patches, 4 * graph.n_patches)  # frames 2 and 3 only
    f, _, _, _ = dag_greedy(graph, 1e9, candidates=cands)
    assert len(f) > 0 and set(f.tolist()) <= {2, 3}


@pytest.mark.parametrize("seed", range(6))
def test_never_worse_than_palantir_on_random_graphs(seed):
    r = np.random.default_rng(100 + seed)
    graph = random_graph(r, int(r.integers(10, 30)), 12, 16, density=float(r.choice([0.05, 0.3])))
    carry = r.random(graph.n_patches) * 3 if seed % 2 else None
    _check_guarantee(_chunk_for(graph), graph, (0.0167, 0.05, 0.1, 0.2, 0.3), carry)


@pytest.mark.parametrize("seed,patch_px", [(0, 32), (1, 16), (4, 32), (5, 16), (9, 16)])
def test_never_worse_than_palantir_on_pan_chunks(seed, patch_px):
    chunk = pan_chunk(seed, patch_px=patch_px)
    _check_guarantee(chunk, build_graph(chunk), (0.0167, 0.05, 0.1, 0.2))


def test_regression_where_the_plain_greedy_loses():
    """Pan chunk seed 2, 5x3 grid: the plain greedy ends above palantir's J at 1.67% and 5%
    (+0.9% and +2.9% when found); dag-greedy must not."""
    chunk = pan_chunk(2, patch_px=32)
    graph = build_graph(chunk)
    pal, plain = get_scheduler("palantir"), get_scheduler("dag-greedy-plain")
    for b in (0.0167, 0.05):
        j_pal = objective(graph, pal.plan(chunk, b, graph=graph))
        assert objective(graph, plain.plan(chunk, b, graph=graph)) > j_pal * 1.005  # still a case
    _check_guarantee(chunk, graph, (0.0167, 0.05, 0.1, 0.2))
    # At 20% the guarded plan still gains much more than palantir, which stops at its 4 frames.
    ours = get_scheduler("dag-greedy")
    plan = ours.plan(chunk, 0.2, graph=graph)
    assert ours.last_choice.startswith("palantir@")
    assert objective(graph, plan) < 0.8 * objective(graph, pal.plan(chunk, 0.2, graph=graph))


def test_plain_kept_when_it_passes(rng):
    graph = random_graph(rng, 12, 12, 16, density=0.3)
    ours, plain = get_scheduler("dag-greedy"), get_scheduler("dag-greedy-plain")
    chunk = _chunk_for(graph)
    a, b = ours.plan(chunk, 0.1, graph=graph), plain.plan(chunk, 0.1, graph=graph)
    assert ours.last_choice == "plain"
    np.testing.assert_array_equal(a.patches, b.patches)
    np.testing.assert_array_equal(a.frames, b.frames)
