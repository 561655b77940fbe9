"""palantir: the published two-stage greedy against a slow, obviously correct re-evaluation."""


import numpy as np

from anchorsr.schedule import Palantir, exhaustive_greedy, preselect_frames

from sched_graphs import random_graph


def _slow_j(graph, mask, carry):
    e, total = np.asarray(carry, float), 0.0
    for t in range(graph.n_frames):
        w = graph.weights[t].toarray()
        e = np.array([0.0 if mask[t, p] else graph.bias[t, p] + sum(w[p, q] * e[q] for q in range(len(e)))
                      for p in range(graph.n_patches)])
        total += e.sum()
    return total


def _slow_frame_j(graph, kept, carry):
    e, total = float(np.sum(carry)), 0.0
    for t in range(graph.n_frames):
        e = 0.0 if t in kept else graph.bias[t].sum() + graph.weights[t].sum() / graph.n_patches * e
        total += e
    return total


def _slow_palantir(graph, frames_kept, n_picks, carry):
    kept: set[int] = set()
    for _ in range(frames_kept):
        best = min((f for f in range(graph.n_frames) if f not in kept),
                   key=lambda f: _slow_frame_j(graph, kept | {f}, carry))
        kept.add(best)
    mask = np.zeros((graph.n_frames, graph.n_patches), bool)
    picks = []
    cands = [(t, p) for t in sorted(kept) for p in range(graph.n_patches)]
    for _ in range(n_picks):
        scores = []
        for t, p in cands:
            if mask[t, p]:
                continue
            mask[t, p] = True
            scores.append((_slow_j(graph, mask, carry), t, p))
            mask[t, p] = False
        _, t, p = min(scores)  # lowest J, then lowest (frame, patch)
        mask[t, p] = True
        picks.append((t, p))
    return sorted(kept), picks


def test_matches_slow_reference(rng):
    for seed in range(3):
        r = np.random.default_rng(seed)
        graph = random_graph(r, 6, 8, 12, density=0.4, zero_bias=0.0)
        carry = r.random(graph.n_patches)
        kept_ref, picks_ref = _slow_palantir(graph, 3, 7, carry)
        sched = Palantir(frames_kept=30)  # 30 per 60 frames -> 3 of 6
        kept = preselect_frames(graph, 3, carry)
        assert list(kept) == kept_ref
        cands = sched.candidates(graph, carry)
        f, p, _ = exhaustive_greedy(graph, 7 * 16, cands, carry_in=carry)
        assert list(zip(f.tolist(), p.tolist())) == picks_ref


def test_without_preselection_it_is_the_exhaustive_greedy(rng):
    graph = random_graph(rng, 4, 8, 8, density=0.4, zero_bias=0.0)
    _, picks_ref = _slow_palantir(graph, 4, 5, np.zeros(graph.n_patches))
    f, p, _ = exhaustive_greedy(graph, 5 * 16, Palantir(frames_kept=None).candidates(graph))
    assert list(zip(f.tolist(), p.tolist())) == picks_ref
