"""``dag-greedy-plain``: the exact greedy, gains in O(edges) per pick; the kernel of
anchorsr's scheduler ``dag-greedy`` (``guarded.py`` runs it, and Palantír's restricted greedy
on it, and keeps the plan that is not worse than Palantír's).

Source: docs/method.md §3.2 (anchorsr's own; same objective as Palantír, arXiv 2408.06152, §2).
Because ``e_t = m_t * (b_t + W_t e_{t-1})`` is linear, anchoring node (t, p), which sets
``m_t[p]`` from 1 to its keep share ``k`` (0 unless anchors are blended with reuse,
``DependencyGraph.keep``), lowers J by exactly ``(1 - k) e_t[p] g_t[p]`` with the adjoint
``g_t = 1 + W_{t+1}^T (m_{t+1} * g_{t+1})``. One forward and one backward pass score every
node; after a pick only the errors of later frames and the adjoints of earlier frames change.

Two observations keep the work per pick small (the compiled kernel ``greedy_kernel``):

* ``e`` and ``g`` only shrink as anchors are added (weights and biases are >= 0, keep shares
  < 1), so a frame's
  best key from its last refresh bounds its current best from above. A frame's best is the
  exact argmax once its exact key beats every other frame's bound (the lazy-greedy argument,
  per frame instead of per node); frames whose bounds still beat it are refreshed, nearest to
  where the pending deltas are first.
* A pick's change is not pushed through the whole chunk at once: errors keep a pending delta
  per frame and are exact up to a frontier, adjoints likewise from the other end. Refreshing
  frame s pushes what is pending up to s only, so the deltas of many picks travel together.
Rounding aside, the result is the exhaustive greedy's (tests/schedule/test_dag_greedy.py).

Where the time goes (bench schedule): pushing. Consecutive picks lie about 10 (synthetic pan)
to 18 (photo pan + zoom) frames apart, and checking a frame after a pick needs that pick's
delta to have travelled there, so a chunk takes 18,000-33,500 frame pushes. A push of a
frame with much pending is a product with its few motion diagonals (``_dia``), bound by
memory traffic (about 1 us for 510 patches); a push of a little is a scatter from the listed
nodes. Keeping 8 candidates per frame and making a single candidate's key exact by following
its ancestors and descendants (a "pull", no frontier moved) cut refreshes 2-3x but not pushes
nor time, so it was dropped.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..graph import DependencyGraph
from ..types import AnchorPlan, Chunk
from .base import Scheduler, budget_area, make_plan, register


# A gain below this share of the chunk's J is rounding noise of the incremental updates: stop.
GAIN_EPS = 1e-12

# A frame's pending delta is pushed as a dense product once more than this share of its nodes
# is listed, else scattered from the listed nodes (a dense product of a 510-patch frame costs
# about as much as scattering from 30 nodes).
DENSE_FROM = 1 / 16
# Dense products keep up to DIA_MAX diagonals per frame (the offsets q - p holding the most
# entries, each at least max(2, N / DIA_MIN_SHARE)); the other entries stay as CSR rows.
DIA_MAX = 8
DIA_MIN_SHARE = 64

# Work counters of the latest dag_greedy call (frame refreshes, frame pushes), for benchmarks.
LAST_STATS: dict[str, int] = {}


@njit(cache=True, inline="always")
def _better(ka, na, kb, nb):  # pragma: no cover - compiled
    """(key a, node a) ranks before (key b, node b): higher key, then lower node id."""
    return ka > kb or (ka == kb and na < nb)


@njit(cache=True)
def _dia(indptr, indices, data):  # pragma: no cover - compiled
    """The frames' matrices for dense products, as diagonals plus the rest in CSR.

    Motion is local and mostly uniform, so a frame's entries W[p, q] sit on a few offsets
    d = q - p (a pan over a 64 px grid: 4 to 8 of them). Diagonal k of frame t has offset
    off[t, k] and holds W[p, p + off[t, k]] at dat[t, k, p] (0 where absent), for k <
    n_dia[t]; a product then runs over contiguous slices and vectorises, where a gather per
    row would not. Entries on no kept diagonal stay as CSR rows: rows ovf_rows[t, :n_ovf[t]],
    entries ovf_ptr[t, p]..ovf_ptr[t, p+1] of ovf_idx / ovf_dat."""
    n_frames, n = indptr.shape[0], indptr.shape[1] - 1
    n_dia = np.zeros(n_frames, np.int64)
    off = np.zeros((n_frames, DIA_MAX), np.int64)
    dat = np.zeros((n_frames, DIA_MAX, n))
    ovf_ptr = np.zeros((n_frames, n + 1), np.int64)
    ovf_rows = np.empty((n_frames, n), np.int64)
    n_ovf = np.zeros(n_frames, np.int64)
    counts = np.zeros(2 * n, np.int64)  # entries per offset + n
    slot = np.full(2 * n, -1, np.int64)  # kept diagonal of an offset + n, -1: none
    seen = np.empty(2 * n, np.int64)  # the offsets (+ n) present in the frame
    on_dia = np.zeros(indices.size, np.bool_)
    min_count = max(2, n // DIA_MIN_SHARE)
    total = 0
    for t in range(n_frames):
        n_seen = 0
        for p in range(n):
            for j in range(indptr[t, p], indptr[t, p + 1]):
                d = indices[j] - p + n
                if counts[d] == 0:
                    seen[n_seen] = d
                    n_seen += 1
                counts[d] += 1
        for k in range(DIA_MAX):  # the offsets holding the most entries, in that order
            best, best_count = -1, min_count - 1
            for i in range(n_seen):
                d = seen[i]
                if slot[d] < 0 and (counts[d] > best_count or (counts[d] == best_count and d < best)):
                    best, best_count = d, counts[d]
            if best < 0:
                break
            slot[best] = k
            off[t, k] = best - n
            n_dia[t] = k + 1
        for p in range(n):
            ovf_ptr[t, p] = total
            rest = 0
            for j in range(indptr[t, p], indptr[t, p + 1]):
                k = slot[indices[j] - p + n]
                if k >= 0:
                    dat[t, k, p] = data[j]
                    on_dia[j] = True
                else:
                    rest += 1
            if rest:
                ovf_rows[t, n_ovf[t]] = p
                n_ovf[t] += 1
                total += rest
        ovf_ptr[t, n] = total
        for i in range(n_seen):  # reset the tables for the next frame
            counts[seen[i]] = 0
            slot[seen[i]] = -1
    ovf_idx = np.empty(total, np.uint32)
    ovf_dat = np.empty(total)
    for t in range(n_frames):
        for p in range(n):
            m = ovf_ptr[t, p]
            for j in range(indptr[t, p], indptr[t, p + 1]):
                if not on_dia[j]:
                    ovf_idx[m], ovf_dat[m] = indices[j], data[j]
                    m += 1
    return off, dat, n_dia, ovf_ptr, ovf_idx, ovf_dat, ovf_rows, n_ovf


@njit(cache=True)
def _push(dia, s_ptr, s_idx, s_dat, mt, src, dst, free, vals, pend, inl, lst, cnt,
          prune, dense_k, acc):  # pragma: no cover - compiled
    """Push frame ``src``'s pending delta into frame ``dst`` and clear it.

    The delta at dst is ``free[dst] * (A pend[src])``, ``A`` the frame ``mt``
    matrix, given as diagonals for a dense product (``dia``, see ``_dia``) and as CSR rows of
    its transpose for a sparse scatter (s_*). It is added to ``vals[dst]`` and becomes dst's
    pending delta (merged with what is already pending there). pend (T, N) values, inl (T, N)
    membership, lst (T, N) / cnt (T,) the indices listed per frame; ``cnt[t] == -1`` marks a
    dense frame, whose list is not kept (any node may be pending). free: float (T, N), ``m``:
    the keep share at anchors, else 1. Contributions with |c| <= prune are dropped.

    Pending values are deltas of ``m * e`` (forward: the errors themselves) and of ``m * g``
    (backward: what frame t hands to t-1), so both directions scale by the destination's ``m``;
    ``vals`` of an anchored node is then exact for errors and unused for adjoints (an anchored
    node is never picked again). The push is dense when more
    than dense_k nodes are listed (or the frame is dense). acc: work array (N,).
    """
    n = vals.shape[1]
    k = cnt[src]
    if k < 0 or k > dense_k:  # dense: every row, diagonal by diagonal
        d_off, d_dat, n_dia, ovf_ptr, ovf_idx, ovf_dat, ovf_rows, n_ovf = dia
        acc[:] = 0.0
        source = pend[src]
        for kk in range(n_dia[mt]):
            o = d_off[mt, kk]
            p0, p1 = max(0, -o), min(n, n - o)
            a_v, d_v, s_v = acc[p0:p1], d_dat[mt, kk, p0:p1], source[p0 + o:p1 + o]
            for i in range(p1 - p0):
                a_v[i] += d_v[i] * s_v[i]
        for r in range(n_ovf[mt]):
            p = ovf_rows[mt, r]
            for j in range(ovf_ptr[mt, p], ovf_ptr[mt, p + 1]):
                acc[p] += ovf_dat[j] * source[ovf_idx[j]]
        cnt[dst] = -1
        if prune > 0.0:
            for p in range(n):
                d = acc[p] * free[dst, p]
                if abs(d) > prune:
                    vals[dst, p] += d
                    pend[dst, p] += d
        else:
            v_dst, p_dst, f_dst = vals[dst], pend[dst], free[dst]
            for p in range(n):
                d = acc[p] * f_dst[p]
                v_dst[p] += d
                p_dst[p] += d
    else:  # sparse: scatter from the few pending sources
        listed = cnt[dst] >= 0
        # Row views and unsigned indices: no 2-d offsets or negative-index checks per entry.
        v_dst, p_dst, f_dst, i_dst, l_dst = vals[dst], pend[dst], free[dst], inl[dst], lst[dst]
        p_src, l_src = pend[src], lst[src]
        c_dst = cnt[dst]
        for a in range(k):
            uq = np.uintp(l_src[a])
            v = p_src[uq]
            for j in range(s_ptr[mt, uq], s_ptr[mt, uq + 1]):
                up = np.uintp(s_idx[j])
                c = s_dat[j] * v * f_dst[up]
                if abs(c) <= prune:  # also 0 at an anchor that keeps nothing
                    continue
                v_dst[up] += c
                p_dst[up] += c
                if listed and not i_dst[up]:
                    i_dst[up] = True
                    l_dst[c_dst] = up
                    c_dst += 1
        if listed:
            cnt[dst] = c_dst
    p_src, i_src = pend[src], inl[src]
    if k < 0:
        p_src[:] = 0.0
        i_src[:] = False
    else:
        l_src = lst[src]
        for a in range(k):
            uq = np.uintp(l_src[a])
            p_src[uq] = 0.0
            i_src[uq] = False
    cnt[src] = 0


@njit(cache=True)
def _add_pending(pend, inl, lst, cnt, t, p, d):  # pragma: no cover - compiled
    pend[t, p] += d
    if cnt[t] >= 0 and not inl[t, p]:
        inl[t, p] = True
        lst[t, cnt[t]] = p
        cnt[t] += 1


# error_model="numpy": no zero-division check per key (costs are > 0), so the key pass vectorises.
@njit(cache=True, error_model="numpy")
def _frame_best(e, g, drop, cost, closed, t, k1, p1, k2, p2, keys):  # pragma: no cover - compiled
    """Exact best and runner-up (key, patch) of frame t's open nodes (-inf, -1 when none).
    drop: (T, N) 1 - keep share; closed: bool (T, N), True at anchors and at nodes that may
    not be picked. keys: work array (N,); the keys are computed in one vectorised pass, then
    scanned."""
    n = e.shape[1]
    e_t, g_t, d_t, a_t = e[t], g[t], drop[t], closed[t]
    for p in range(n):
        keys[p] = -np.inf if a_t[p] else d_t[p] * e_t[p] * g_t[p] / cost[p]
    b1, b2, q1, q2 = -np.inf, -np.inf, -1, -1
    for p in range(n):
        key = keys[p]
        if key > b2:  # closed nodes have key -inf
            if key > b1:
                b2, q2, b1, q1 = b1, q1, key, p
            else:
                b2, q2 = key, p
    k1[t], p1[t], k2[t], p2[t] = b1, q1, b2, q2


@njit(cache=True)
def _initial_passes(indptr, indices, data, t_indptr, t_indices, t_data, bias, carry, free):  # pragma: no cover
    """Errors e (T, N) and adjoints g (T, N) under the anchors where ``free`` (T, N) is 0:
    one forward, one backward pass."""
    n_frames, n = bias.shape
    e = np.zeros((n_frames, n))
    g = np.ones((n_frames, n))
    prev = carry
    for t in range(n_frames):
        for p in range(n):
            s = bias[t, p]
            for j in range(indptr[t, p], indptr[t, p + 1]):
                s += data[j] * prev[indices[j]]
            e[t, p] = s * free[t, p]
        prev = e[t]
    for t in range(n_frames - 2, -1, -1):
        for q in range(n):
            s = 1.0
            for j in range(t_indptr[t + 1, q], t_indptr[t + 1, q + 1]):
                s += t_data[j] * free[t + 1, t_indices[j]] * g[t + 1, t_indices[j]]
            g[t, q] = s
    return e, g


@njit(cache=True)
def _pending(n_frames, n):  # pragma: no cover - compiled
    """Empty per-frame pending deltas: values, membership, index lists, counts."""
    return (np.zeros((n_frames, n)), np.zeros((n_frames, n), np.bool_),
            np.empty((n_frames, n), np.int64), np.zeros(n_frames, np.int64))


@njit(cache=True)
def _forward_to(t, lo, fwd_dia, t_indptr, t_indices, t_data, free, e, pf, prune, dense_k,
                stats, acc):  # pragma: no cover - compiled
    """Push pending errors from frame ``lo`` on until frame t is exact; returns the new lo."""
    vals, inl, lst, cnt = pf
    while lo < t:
        if cnt[lo] != 0:
            stats[1] += 1
            _push(fwd_dia, t_indptr, t_indices, t_data, lo + 1, lo, lo + 1, free, e,
                  vals, inl, lst, cnt, prune, dense_k, acc)
        lo += 1
    return lo


@njit(cache=True)
def _backward_to(t, hi, bwd_dia, indptr, indices, data, free, g, pb, prune, dense_k,
                 stats, acc):  # pragma: no cover - compiled
    """Push pending adjoints from frame ``hi`` down until frame t is exact; returns the new hi."""
    vals, inl, lst, cnt = pb
    while hi > t:
        if cnt[hi] != 0:
            stats[2] += 1
            _push(bwd_dia, indptr, indices, data, hi, hi, hi - 1, free, g, vals, inl,
                  lst, cnt, prune, dense_k, acc)
        hi -= 1
    return hi


@njit(cache=True)
def _anchor(t, p, keep, indptr, indices, data, anchored, closed, free, e, g, pf, pb):  # pragma: no cover - compiled
    """Anchor node (t, p) whose e and g are exact, recording its effect as pending deltas."""
    n_frames = e.shape[0]
    k = keep[t, p]
    anchored[t, p] = True
    closed[t, p] = True
    free[t, p] = k
    # Errors: e_t[p] drops to k e_t[p]. Frames after t see it through the pending delta;
    # deltas still on their way to (t, p) are scaled by k when they arrive.
    if t + 1 < n_frames:
        _add_pending(pf[0], pf[1], pf[2], pf[3], t, p, (k - 1.0) * e[t, p])
    e[t, p] *= k
    # Adjoints: m_t[p] drops to k, so what (t, p) hands to g_{t-1} becomes k g_t[p], of
    # which g_t[p] minus its pending part is already there; the difference goes to g_{t-1}
    # at once (scaled by m_{t-1} in the pending delta) and the pending part is dropped.
    if t > 0:
        vals = pb[0]
        change = k * g[t, p] - (g[t, p] - vals[t, p])
        vals[t, p] = 0.0
        for j in range(indptr[t, p], indptr[t, p + 1]):
            q = indices[j]
            d = data[j] * change
            g[t - 1, q] += d
            f = free[t - 1, q]
            if f > 0.0:
                _add_pending(pb[0], pb[1], pb[2], pb[3], t - 1, q, d * f)


@njit(cache=True)
def _top_frame(k1, p1, n):  # pragma: no cover - compiled
    """The frame whose bound ranks first (-1 when none)."""
    best = -1
    for f in range(k1.size):
        if p1[f] >= 0 and (best < 0 or _better(k1[f], f * n + p1[f], k1[best], best * n + p1[best])):
            best = f
    return best


@njit(cache=True)
def _nearest_rival(k1, p1, n, best, lo, hi):  # pragma: no cover - compiled
    """Of the frames whose bound ranks above frame ``best``'s exact key (each must be refreshed
    before that key can be picked), the one needing the fewest pushes given the frontiers lo
    and hi (ties: the higher bound); -1 when there is none."""
    t, t_cost = -1, 0
    for f in range(k1.size):
        if f == best or p1[f] < 0 or not _better(k1[f], f * n + p1[f], k1[best], best * n + p1[best]):
            continue
        cost_f = max(f - lo, 0) + max(hi - f, 0)
        if t < 0 or cost_f < t_cost or (cost_f == t_cost and _better(k1[f], f * n + p1[f], k1[t],
                                                                       t * n + p1[t])):
            t, t_cost = f, cost_f
    return t


@njit(cache=True)
def greedy_kernel(indptr, indices, data, t_indptr, t_indices, t_data, bias, keep, carry, cost, area,
                  budget, max_picks, prune_eps, dense_k, stats, anchored, closed):  # pragma: no cover - compiled
    """Exact greedy anchor selection. Returns (nodes int64 (K,), gains float64 (K,), e_last (N,)).

    keep: float64 (T, N) in [0, 1), the share of its error a node keeps once anchored.

    Nodes are t * N + p in pick order; gains are the exact drops in J; e_last the last frame's
    errors under the chosen anchors. Ranks by gain / cost; stops at the first pick whose area
    would exceed ``budget``, when no positive gain is left, or after ``max_picks``.

    anchored: bool (T, N), the anchors already chosen (their area is not counted in
    ``budget``); closed: bool (T, N), True there and at nodes that may not be picked. Both are
    updated in place with the picks.

    Errors keep a pending delta per frame and are exact up to frame ``lo`` (all that is pending
    sits at frames >= lo); adjoints likewise down to frame ``hi``. Per frame, (k1, p1) and
    (k2, p2) are the best two (key, patch) at its last refresh: upper bounds now, since keys
    only shrink. A pick in frame t changes no key of frame t itself (errors change after t,
    adjoints before t), so its runner-up stays exact. The best exact key may be picked once no
    other frame's bound ranks above it; of the frames whose bounds do, the one needing the
    fewest pushes is refreshed first (the picks are the same in any order; the work is not).
    """
    n_frames, n = bias.shape
    free = np.ones((n_frames, n))
    drop = 1.0 - keep
    for t in range(n_frames):
        for p in range(n):
            if anchored[t, p]:
                free[t, p] = keep[t, p]
    e, g = _initial_passes(indptr, indices, data, t_indptr, t_indices, t_data, bias, carry, free)
    acc = np.empty(n)
    keys = np.empty(n)
    fwd_dia = _dia(indptr, indices, data)
    bwd_dia = _dia(t_indptr, t_indices, t_data)
    total = e.sum()
    tiny = GAIN_EPS * total  # gains at rounding-noise level count as zero
    prune = prune_eps * total / (n_frames * n)
    pf, pb = _pending(n_frames, n), _pending(n_frames, n)
    lo, hi = n_frames, -1
    k1, p1 = np.empty(n_frames), np.empty(n_frames, np.int64)
    k2, p2 = np.empty(n_frames), np.empty(n_frames, np.int64)
    for t in range(n_frames):
        _frame_best(e, g, drop, cost, closed, t, k1, p1, k2, p2, keys)
    nodes = np.empty(max_picks, np.int64)
    gains = np.empty(max_picks)
    k, spent = 0, 0.0
    # best: the frame whose (k1, p1) is exact under the current anchors and ranks first among
    # the exact ones (-1: none). runner[t]: (k2, p2) of frame t is its exact runner-up.
    best = -1
    runner = np.zeros(n_frames, np.bool_)
    while k < max_picks:
        if best < 0:
            t = _top_frame(k1, p1, n)
            if t < 0:
                break  # every node is anchored
        else:
            t = _nearest_rival(k1, p1, n, best, lo, hi)
        if t >= 0:
            stats[0] += 1
            lo = _forward_to(t, lo, fwd_dia, t_indptr, t_indices, t_data, free, e, pf,
                             prune, dense_k, stats, acc)
            hi = _backward_to(t, hi, bwd_dia, indptr, indices, data, free, g, pb, prune,
                              dense_k, stats, acc)
            _frame_best(e, g, drop, cost, closed, t, k1, p1, k2, p2, keys)
            runner[t] = True
            if p1[t] >= 0 and (best < 0 or _better(k1[t], t * n + p1[t], k1[best], best * n + p1[best])):
                best = t
            continue
        t = best
        p = p1[t]
        gain = drop[t, p] * e[t, p] * g[t, p]
        if gain <= tiny or spent + area[p] > budget * (1 + 1e-12):
            break
        spent += area[p]
        nodes[k], gains[k] = t * n + p, gain
        k += 1
        _anchor(t, p, keep, indptr, indices, data, anchored, closed, free, e, g, pf, pb)
        lo, hi = min(lo, t), max(hi, t - 1)
        # Every other frame's keys may have dropped: only frame t can stay exact, as a pick
        # changes no key of its own frame.
        best = -1
        if runner[t]:  # the runner-up is exact and now first in its frame
            k1[t], p1[t] = k2[t], p2[t]
            runner[t] = False
            if p1[t] >= 0:
                best = t
        # else: the picked (key, node) stays as the frame's bound until it is refreshed
    # Push what is still pending so the last frame's errors are exact.
    _forward_to(n_frames - 1, lo, fwd_dia, t_indptr, t_indices, t_data, free, e, pf,
                prune, dense_k, stats, acc)
    return nodes[:k], gains[:k], e[n_frames - 1].copy()


def dag_greedy(graph: DependencyGraph, budget_area_px: float, *, carry_in=None,
               cost_aware: bool = True, max_picks: int | None = None, prune_eps: float = 0.0,
               dense_from: float = DENSE_FROM, candidates=None, anchors=None):
    """Run the exact greedy on ``graph``.

    budget_area_px: anchor area allowed (LR luma pixels). cost_aware: rank by gain per pixel of
    patch area (edge patches are cheaper); else by gain. prune_eps: drop pushed contributions
    below this share of the mean node error (0: exact). dense_from: share of a frame's nodes
    pending above which a push is a dense product rather than a scatter (work only: the picks
    are the same). candidates: int64 node ids ``t * N + p`` the greedy may pick (None: all).
    anchors: bool (T, N), anchors already chosen: the greedy continues from them, and
    ``budget_area_px`` counts only the new picks.
    Returns (frames int32 (K,), patches int32 (K,), gains float64 (K,), e_last float64 (N,)):
    picks in order, the exact drop in J of each pick, and the last frame's final errors.
    """
    pk = graph.packed
    n_frames, n = graph.n_frames, graph.n_patches
    area = graph.grid.areas().astype(np.float64)
    cost = area if cost_aware else np.ones(n)
    carry = np.zeros(n) if carry_in is None else np.ascontiguousarray(carry_in, np.float64)
    limit = n_frames * n if max_picks is None else int(max_picks)
    anchored = (np.zeros((n_frames, n), np.bool_) if anchors is None
                else np.array(anchors, np.bool_).reshape(n_frames, n))
    if candidates is None:
        closed = anchored.copy()
    else:
        closed = np.ones(n_frames * n, np.bool_)
        closed[np.asarray(candidates, np.int64)] = False
        closed = closed.reshape(n_frames, n) | anchored
    stats = np.zeros(3, np.int64)
    nodes, gains, e_last = greedy_kernel(
        pk.indptr, pk.indices, pk.data, pk.t_indptr, pk.t_indices, pk.t_data,
        np.ascontiguousarray(graph.bias, np.float64), graph.keep_shares, carry, cost, area,
        float(budget_area_px), limit,
        float(prune_eps), int(dense_from * n), stats, anchored, closed)
    frames, patches = np.divmod(nodes, n)
    LAST_STATS.update(refreshes=int(stats[0]), forward_pushes=int(stats[1]), backward_pushes=int(stats[2]))
    return frames.astype(np.int32), patches.astype(np.int32), gains, e_last


@register("dag-greedy-plain")
class DagGreedyPlain(Scheduler):
    """The plain exact greedy over all (frame, patch) nodes (docs/method.md §3.2), without the
    guard against Palantír's plan that ``dag-greedy`` adds (``schedule/guarded.py``).

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
