"""``palantir``: the published two-stage greedy, kept as the faithful reference.

Source: Palantír (Jin et al., arXiv 2408.06152, MMSys 2025), as described in docs/method.md §3.1:
1. frame preselection on the DAG collapsed to one node per frame (weight ``sum(W_t) / N``, bias
   ``sum(b_t)``): greedily keep ``frames_kept`` frames (8 per 60-frame chunk) that most reduce
   the frame-level J;
2. patch greedy over the patches of the kept frames: each step evaluates ``J(A + {c})`` for every
   candidate c, batched as one sparse ``W_t`` (N x N) times dense (N x B) product per frame, and
   adds the argmin.
With ``frames_kept=None`` there is no preselection: the exhaustive greedy over all nodes, which
``dag-greedy`` must reproduce.
"""

from __future__ import annotations

import numpy as np

from ..graph import DependencyGraph, anchor_factors, forward_errors
from ..types import AnchorPlan, Chunk
from .base import Scheduler, budget_area, make_plan, register
from .dag_greedy import GAIN_EPS


def preselect_frames(graph: DependencyGraph, frames_kept: int, carry_in=None) -> np.ndarray:
    """int64 (k,): the frames greedily chosen on the collapsed frame-level DAG, sorted."""
    n_frames, n = graph.n_frames, graph.n_patches
    w = np.array([m.sum() / n for m in graph.weights])
    beta = graph.bias.sum(axis=1)
    e_in = 0.0 if carry_in is None else float(np.sum(carry_in))
    keep = np.ones(n_frames)  # 0 at kept frames
    chosen: list[int] = []
    for _ in range(min(frames_kept, n_frames)):
        # Column c: frame-level errors with frame c also kept, all candidates at once.
        cand = np.ones((n_frames, n_frames)) * keep[:, None]
        cand[np.arange(n_frames), np.arange(n_frames)] = 0.0
        e, total = np.full(n_frames, e_in), np.zeros(n_frames)
        for t in range(n_frames):
            e = cand[t] * (beta[t] + w[t] * e)
            total += e
        total[chosen] = np.inf
        best = int(np.argmin(total))
        chosen.append(best)
        keep[best] = 0.0
    return np.sort(np.asarray(chosen, np.int64))


def candidate_objectives(graph: DependencyGraph, e: np.ndarray, mask: np.ndarray,
                         cand: np.ndarray) -> np.ndarray:
    """float64 (C,): ``J(A + {c})`` for each candidate node id c, A given by ``mask`` (an
    anchor keeps its keep share of its error, ``DependencyGraph.keep``).

    e: float64 (T, N) errors under A. Frames before a candidate's frame keep their errors; from
    there on, each frame is one sparse ``W_t`` times dense (N x B) product for the B candidates
    of that frame (Palantír's batched evaluation).
    """
    n_frames, n = graph.n_frames, graph.n_patches
    m = anchor_factors(graph, mask)
    keep = graph.keep_shares
    prefix = np.concatenate([[0.0], np.cumsum(e.sum(axis=1))])
    frames_of = cand // n
    out = np.empty(cand.size)
    for f in np.unique(frames_of):
        sel = np.flatnonzero(frames_of == f)
        err = np.repeat(e[f][:, None], sel.size, axis=1)
        rows = cand[sel] % n
        err[rows, np.arange(sel.size)] *= keep[f, rows]
        acc = prefix[f] + err.sum(axis=0)
        for t in range(f + 1, n_frames):
            err = m[t][:, None] * (graph.bias[t][:, None] + graph.weights[t] @ err)
            acc += err.sum(axis=0)
        out[sel] = acc
    return out


def exhaustive_greedy(graph: DependencyGraph, budget_area_px: float, candidates=None, *,
                      carry_in=None, cost_aware: bool = False, max_picks: int | None = None):
    """Greedy by re-evaluating ``J(A + {c})`` for every candidate at every step.

    candidates: int64 (C,) node ids ``t * N + p`` (all nodes when None). Ties go to the lowest id.
    cost_aware: rank by J drop per pixel of patch area instead of by J.
    Returns (frames int32 (K,), patches int32 (K,), drops float64 (K,)).
    """
    n_frames, n = graph.n_frames, graph.n_patches
    area = graph.grid.areas().astype(np.float64)
    cand = np.arange(n_frames * n) if candidates is None else np.sort(np.asarray(candidates, np.int64))
    mask = np.zeros((n_frames, n), bool)
    carry = np.zeros(n) if carry_in is None else np.asarray(carry_in, np.float64)
    e = forward_errors(graph, mask, carry)
    tiny = GAIN_EPS * e.sum()
    picks, drops, spent = [], [], 0.0
    limit = n_frames * n if max_picks is None else max_picks
    while cand.size and len(picks) < limit:
        drop = e.sum() - candidate_objectives(graph, e, mask, cand)
        best = int(np.argmax(drop / area[cand % n] if cost_aware else drop))
        t, p = divmod(int(cand[best]), n)
        if drop[best] <= tiny or spent + area[p] > budget_area_px * (1 + 1e-12):
            break
        spent += area[p]
        picks.append(t * n + p)
        drops.append(drop[best])
        mask[t, p] = True
        cand = np.delete(cand, best)
        e = forward_errors(graph, mask, carry)
    frames, patches = np.divmod(np.asarray(picks, np.int64), n)
    return frames.astype(np.int32), patches.astype(np.int32), np.asarray(drops)


@register("palantir")
class Palantir(Scheduler):
    """Palantír's published scheduler (arXiv 2408.06152; docs/method.md §3.1).

    frames_kept: frames kept by the preselection per 60-frame chunk (scaled to the chunk length;
    8 in the paper); None turns preselection off (exhaustive greedy over every node).
    cost_aware: rank by J drop per pixel of patch area (off in the paper).
    Its graph is the published model's: the texture term as node bias whatever the stream's
    node bias (``published_bias``), edges that carry all of the reference's error (no sub-pixel
    detail retention, docs/method.md §2.3), and an anchor that removes its node's whole error
    (no blend with reuse, docs/method.md §1.2).
    """

    needs_graph = True
    published_bias = True
    graph_options = {"retention": False, "anchor_weight": None}

    def __init__(self, *, frames_kept: int | None = 8, cost_aware: bool = False) -> None:
        self.frames_kept = frames_kept
        self.cost_aware = cost_aware

    def candidates(self, graph: DependencyGraph, carry_in=None) -> np.ndarray | None:
        """Node ids the patch greedy may pick (None: all)."""
        if self.frames_kept is None:
            return None
        k = max(1, int(round(self.frames_kept * graph.n_frames / 60)))
        kept = preselect_frames(graph, k, carry_in)
        n = graph.n_patches
        return (kept[:, None] * n + np.arange(n)[None, :]).ravel()

    def plan(self, chunk: Chunk, budget_fraction: float, *, graph=None, carry_in=None) -> AnchorPlan:
        graph = self._graph(chunk, graph)
        frames, patches, _ = exhaustive_greedy(
            graph, budget_area(chunk, budget_fraction), self.candidates(graph, carry_in),
            carry_in=carry_in, cost_aware=self.cost_aware)
        return make_plan(chunk, frames, patches)
