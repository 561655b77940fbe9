"""Baseline schedulers (docs/method.md §3.3), all behind the same interface.

``none``, ``all`` and ``keyframes`` have a fixed cost and ignore the budget; ``uniform``,
``key-uniform`` and ``neuroscaler`` spend it.
"""

from __future__ import annotations

import numpy as np

from ..types import AnchorPlan, Chunk
from .base import (Scheduler, budget_area, check_budget, frames_for_budget, key_offsets,
                   make_plan, register, whole_frames_plan)


@register("none")
class NoAnchors(Scheduler):
    """No SR at all: every pixel comes from upsampling and reuse (docs/method.md §3.3)."""

    def plan(self, chunk: Chunk, budget_fraction: float, *, graph=None, carry_in=None) -> AnchorPlan:
        check_budget(budget_fraction)
        return make_plan(chunk, [], [])


@register("all")
class AllFrames(Scheduler):
    """SR on every full frame: the quality ceiling at 100% cost (docs/method.md §3.3)."""

    def plan(self, chunk: Chunk, budget_fraction: float, *, graph=None, carry_in=None) -> AnchorPlan:
        check_budget(budget_fraction)
        return whole_frames_plan(chunk, np.arange(len(chunk)))


@register("keyframes")
class KeyFrames(Scheduler):
    """SR on key frames only, reuse elsewhere (NEMO/NeuroScaler's starting point; §3.3)."""

    def plan(self, chunk: Chunk, budget_fraction: float, *, graph=None, carry_in=None) -> AnchorPlan:
        check_budget(budget_fraction)
        return whole_frames_plan(chunk, key_offsets(chunk))


def even_picks(n_items: int, k: int) -> np.ndarray:
    """int64 (k,): k of range(n_items) at an even stride, starting at 0."""
    k = min(max(k, 0), n_items)
    return (np.arange(k) * n_items) // k if k else np.zeros(0, np.int64)


@register("uniform")
class Uniform(Scheduler):
    """Whole frames at an even stride; frames = budget pixels / frame pixels (§3.3)."""

    def plan(self, chunk: Chunk, budget_fraction: float, *, graph=None, carry_in=None) -> AnchorPlan:
        return whole_frames_plan(chunk, even_picks(len(chunk), frames_for_budget(chunk, budget_fraction)))


@register("key-uniform")
class KeyUniform(Scheduler):
    """Palantír's patch-level baseline (arXiv 2408.06152, §3.3 here): all key-frame patches
    first, then the remaining budget spread evenly over the other (frame, patch) positions,
    frame-major."""

    def plan(self, chunk: Chunk, budget_fraction: float, *, graph=None, carry_in=None) -> AnchorPlan:
        limit = budget_area(chunk, budget_fraction)
        n, areas = chunk.grid.n_patches, chunk.grid.areas()
        key = key_offsets(chunk)
        is_key = np.zeros(len(chunk), bool)
        is_key[key] = True
        key_nodes = (key[:, None] * n + np.arange(n)).ravel()
        others = np.flatnonzero(~np.repeat(is_key, n))
        left = limit - areas[key_nodes % n].sum()
        k = int(left // areas[others % n].mean()) if left > 0 and others.size else 0
        nodes = np.concatenate([key_nodes, others[even_picks(others.size, k)]])
        plan = make_plan(chunk, nodes // n, nodes % n)
        return plan.prefix_for_budget(budget_fraction)


def neuroscaler_order(sizes, is_key, n_anchors: int) -> list[int]:
    """NeuroScaler's anchor frames in pick order (SIGCOMM 2022; docs/method.md §3.3).

    sizes: coded bytes per frame (the residual proxy; key frames count 0). is_key: bool per frame.
    Key frames come first; then the frame j maximising ``(next_j - j) * acc_j`` repeatedly, where
    ``acc`` accumulates sizes since the last key/anchor frame and ``next_j`` is the next
    anchor/key frame (or the chunk end). Ties go to the earliest frame.
    """
    n = len(sizes)
    is_key = np.asarray(is_key, bool)
    acc = np.zeros(n)
    run = 0.0
    for j in range(n):
        run = 0.0 if is_key[j] else run + float(sizes[j])
        acc[j] = run
    order = [int(j) for j in np.flatnonzero(is_key)][:n_anchors]
    chosen = is_key.copy()
    while len(order) < n_anchors and not chosen.all():
        nxt = np.empty(n, np.int64)
        upcoming = n
        for j in range(n - 1, -1, -1):
            nxt[j] = upcoming
            if chosen[j]:
                upcoming = j
        score = np.where(chosen, -np.inf, (nxt - np.arange(n)) * acc)
        best = int(np.argmax(score))
        acc[best:nxt[best]] -= acc[best]
        chosen[best] = True
        order.append(best)
    return order


@register("neuroscaler")
class NeuroScaler(Scheduler):
    """NeuroScaler's frame-level real-time scheduler (SIGCOMM 2022; docs/method.md §3.3)."""

    def plan(self, chunk: Chunk, budget_fraction: float, *, graph=None, carry_in=None) -> AnchorPlan:
        sizes = [0 if f.is_key else f.size_bytes for f in chunk.frames]
        order = neuroscaler_order(sizes, [f.is_key for f in chunk.frames],
                                  frames_for_budget(chunk, budget_fraction))
        return whole_frames_plan(chunk, order)
