"""``dag-greedy``: anchorsr's scheduler, exact greedy gains in O(edges) per pick.

Source: algorithms.md §3.2 (anchorsr's own; same objective as Palantír, arXiv 2408.06152, §2).
Because ``e_t = m_t * (b_t + W_t e_{t-1})`` is linear, anchoring node (t, p) lowers J by exactly
``e_t[p] * g_t[p]`` with the adjoint ``g_t = 1 + W_{t+1}^T (m_{t+1} * g_{t+1})``. One forward
and one backward pass score every node; after a pick only the errors of later frames and the
adjoints of earlier frames change, and they are updated by propagating sparse deltas.

Both ``e`` and ``g`` only shrink as anchors are added (all weights and biases are >= 0), so the
stored gains in a max-heap are upper bounds and a lazy heap finds the exact argmax: pop, refresh,
and accept when the refreshed gain still beats the next stored bound.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..graph import DependencyGraph
from ..types import AnchorPlan, Chunk
from .base import Scheduler, budget_area, make_plan, register


# A gain below this share of the chunk's J is rounding noise of the incremental updates: stop.
GAIN_EPS = 1e-12


@njit(cache=True, inline="always")
def _better(ka, na, kb, nb):  # pragma: no cover - compiled
    return ka > kb or (ka == kb and na < nb)


@njit(cache=True)
def _sift_down(hk, hn, i, size):  # pragma: no cover - compiled
    while True:
        c = 2 * i + 1
        if c >= size:
            return
        if c + 1 < size and _better(hk[c + 1], hn[c + 1], hk[c], hn[c]):
            c += 1
        if not _better(hk[c], hn[c], hk[i], hn[i]):
            return
        hk[i], hk[c] = hk[c], hk[i]
        hn[i], hn[c] = hn[c], hn[i]
        i = c


@njit(cache=True)
def _sift_up(hk, hn, i):  # pragma: no cover - compiled
    while i > 0:
        parent = (i - 1) // 2
        if not _better(hk[i], hn[i], hk[parent], hn[parent]):
            return
        hk[i], hk[parent] = hk[parent], hk[i]
        hn[i], hn[parent] = hn[parent], hn[i]
        i = parent


@njit(cache=True)
def _propagate(indptr, indices, data, anchored, vals, t0, step, t_end, seed_idx, seed_val,
               backward):  # pragma: no cover - compiled
    """Push a sparse delta frame by frame (t0, t0+step, ..., t_end exclusive) and add it to vals.

    Forward (errors): ``d_t = m_t * (W_t d_{t-1})`` with W_t^T given as CSR (rows = sources).
    Backward (adjoints): ``d_t = W_{t+1}^T (m_{t+1} * d_{t+1})`` with W_{t+1} as CSR.
    seed_idx/seed_val: the delta at the frame before t0 (in the direction of travel).
    """
    n = vals.shape[1]
    cur_idx, cur_val = seed_idx, seed_val
    acc = np.zeros(n)
    seen = np.zeros(n, np.bool_)
    nxt = np.empty(n, np.int64)
    t = t0
    while t != t_end and cur_idx.size > 0:
        mt = t + 1 if backward else t
        k = 0
        for a in range(cur_idx.size):
            q, d = cur_idx[a], cur_val[a]
            if backward and anchored[mt, q]:
                continue
            for j in range(indptr[mt, q], indptr[mt, q + 1]):
                p = indices[j]
                if not backward and anchored[t, p]:
                    continue
                if not seen[p]:
                    seen[p] = True
                    nxt[k] = p
                    k += 1
                acc[p] += data[j] * d
        cur_idx = nxt[:k].copy()
        cur_val = np.empty(k)
        for a in range(k):
            p = cur_idx[a]
            cur_val[a] = acc[p]
            vals[t, p] += acc[p]
            acc[p] = 0.0
            seen[p] = False
        t += step


@njit(cache=True)
def greedy_kernel(indptr, indices, data, t_indptr, t_indices, t_data, bias, carry, cost, area,
                  budget, max_picks):  # pragma: no cover - compiled
    """Exact greedy anchor selection. Returns (nodes int64 (K,), gains float64 (K,), e_last (N,)).

    Nodes are t * N + p in pick order; gains are the exact drops in J; e_last the last frame's
    errors under the chosen anchors. Ranks by gain / cost; stops at the first pick whose area
    would exceed ``budget``, when no positive gain is left, or after ``max_picks``.
    """
    n_frames, n = bias.shape
    e = np.zeros((n_frames, n))
    g = np.ones((n_frames, n))
    anchored = np.zeros((n_frames, n), np.bool_)
    prev = carry
    for t in range(n_frames):
        for p in range(n):
            s = bias[t, p]
            for j in range(indptr[t, p], indptr[t, p + 1]):
                s += data[j] * prev[indices[j]]
            e[t, p] = s
        prev = e[t]
    for t in range(n_frames - 2, -1, -1):
        for q in range(n):
            s = 1.0
            for j in range(t_indptr[t + 1, q], t_indptr[t + 1, q + 1]):
                s += t_data[j] * g[t + 1, t_indices[j]]
            g[t, q] = s
    tiny = GAIN_EPS * e.sum()  # gains at rounding-noise level count as zero
    size = n_frames * n
    hk = np.empty(size)
    hn = np.arange(size)
    for i in range(size):
        hk[i] = e.flat[i] * g.flat[i] / cost[i % n]
    for i in range(size // 2 - 1, -1, -1):
        _sift_down(hk, hn, i, size)
    nodes = np.empty(max_picks, np.int64)
    gains = np.empty(max_picks)
    k = 0
    spent = 0.0
    while size > 0 and k < max_picks:
        node = hn[0]
        t, p = node // n, node % n
        key = e[t, p] * g[t, p] / cost[p]
        size -= 1
        hk[0], hn[0] = hk[size], hn[size]
        _sift_down(hk, hn, 0, size)
        if size > 0 and not _better(key, node, hk[0], hn[0]):
            hk[size], hn[size] = key, node  # stale bound: put back refreshed
            _sift_up(hk, hn, size)
            size += 1
            continue
        if e[t, p] * g[t, p] <= tiny or spent + area[p] > budget * (1 + 1e-12):
            break
        spent += area[p]
        nodes[k], gains[k] = node, e[t, p] * g[t, p]
        k += 1
        de = -e[t, p]
        e[t, p] = 0.0
        anchored[t, p] = True
        # Later frames' errors: the delta travels along W^T columns (who copies from p).
        _propagate(t_indptr, t_indices, t_data, anchored, e, t + 1, 1, n_frames,
                   np.array([p], np.int64), np.array([de]), False)
        # Earlier frames' adjoints: g_{t-1} loses W_t[p, :] * g_t[p], then spreads backwards.
        if t > 0:
            lo, hi = indptr[t, p], indptr[t, p + 1]
            seed_idx = indices[lo:hi].astype(np.int64)
            seed_val = -data[lo:hi] * g[t, p]
            for a in range(seed_idx.size):
                g[t - 1, seed_idx[a]] += seed_val[a]
            _propagate(indptr, indices, data, anchored, g, t - 2, -1, -1, seed_idx, seed_val, True)
    return nodes[:k], gains[:k], e[n_frames - 1].copy()


def dag_greedy(graph: DependencyGraph, budget_area_px: float, *, carry_in=None,
               cost_aware: bool = True, max_picks: int | None = None):
    """Run the exact greedy on ``graph``.

    budget_area_px: anchor area allowed (LR luma pixels). cost_aware: rank by gain per pixel of
    patch area (edge patches are cheaper); else by gain.
    Returns (frames int32 (K,), patches int32 (K,), gains float64 (K,), e_last float64 (N,)):
    picks in order, the exact drop in J of each pick, and the last frame's final errors.
    """
    pk = graph.packed
    n = graph.n_patches
    area = graph.grid.areas().astype(np.float64)
    cost = area if cost_aware else np.ones(n)
    carry = np.zeros(n) if carry_in is None else np.ascontiguousarray(carry_in, np.float64)
    limit = graph.n_frames * n if max_picks is None else int(max_picks)
    nodes, gains, e_last = greedy_kernel(
        pk.indptr, pk.indices, pk.data, pk.t_indptr, pk.t_indices, pk.t_data,
        np.ascontiguousarray(graph.bias, np.float64), carry, cost, area, float(budget_area_px), limit)
    frames, patches = np.divmod(nodes, n)
    return frames.astype(np.int32), patches.astype(np.int32), gains, e_last


@register("dag-greedy")
class DagGreedy(Scheduler):
    """anchorsr's scheduler: exact greedy over all (frame, patch) nodes (algorithms.md §3.2).

    cost_aware: rank by gain per unit of patch area (default), so smaller edge patches compete
    fairly. After ``plan`` the attributes ``last_gains`` (exact drop in J per pick) and
    ``last_carry`` (the last frame's errors, for the next chunk) describe the latest plan.
    """

    needs_graph = True

    def __init__(self, *, cost_aware: bool = True) -> None:
        self.cost_aware = cost_aware
        self.last_gains = np.zeros(0)
        self.last_carry: np.ndarray | None = None

    def plan(self, chunk: Chunk, budget_fraction: float, *, graph=None, carry_in=None) -> AnchorPlan:
        graph = self._graph(chunk, graph)
        frames, patches, self.last_gains, self.last_carry = dag_greedy(
            graph, budget_area(chunk, budget_fraction), carry_in=carry_in,
            cost_aware=self.cost_aware)
        return make_plan(chunk, frames, patches)
