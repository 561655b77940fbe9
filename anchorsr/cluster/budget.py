"""One SR budget over many streams: anchors go where they buy the most quality per unit of SR work.

Each stream's scheduler offers its chunk's anchors in plan order, each with the drop in the
quality model's error J that it brings given the anchors before it (``DagGreedy.last_gains``),
its area (LR luma pixels, the SR work) and the time its frame is due. The SR workers (threads,
processes or cluster actors, each with its own speed in LR pixels per second) have a capacity
per scheduling round. Two policies share that capacity:

* :func:`allocate_global`: one greedy over all streams. The next anchor is always the offered one
  with the highest gain per pixel among the streams' next picks; it is placed on the worker where
  it finishes earliest, and only if every job on that worker still meets its deadline when the
  worker runs them earliest-deadline-first. An anchor no worker can finish in time closes its
  stream's offer for the round (the picks after it were chosen given it).
* :func:`allocate_equal`: each stream gets the same share of the capacity (NeuroScaler's
  per-stream budget), spent on its own plan in order.

Both return, per stream, how many anchors of its plan are kept (a prefix: plans are nested, see
``anchorsr.schedule``), and the worker each kept anchor runs on. Because a greedy plan's gain per
pixel falls along the plan, merging the streams by that ratio spends the capacity where the
model says it buys most, which an equal split cannot do when streams differ (a static talk
beside a fast pan).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class Offer:
    """One stream's anchors for a round, in its plan order.

    gains: float (K,) drop in J each anchor brings after those before it (>= 0);
    areas: float (K,) LR luma pixels each anchor sends through the network (> 0);
    deadlines: float (K,) seconds (same clock as the workers') by which its frame is due.
    """

    stream: str
    gains: np.ndarray
    areas: np.ndarray
    deadlines: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.gains)
        if len(self.areas) != n or len(self.deadlines) != n:
            raise ConfigError(f"offer {self.stream!r}: expected gains, areas and deadlines of one "
                              f"length, got {n}, {len(self.areas)}, {len(self.deadlines)}")
        if n and (np.min(self.areas) <= 0 or np.min(self.gains) < 0):
            raise ConfigError(f"offer {self.stream!r}: expected areas > 0 and gains >= 0")

    def __len__(self) -> int:
        return len(self.gains)


@dataclass
class Worker:
    """One SR worker: ``px_per_s`` LR pixels per second, busy until ``free_at`` (seconds)."""

    name: str
    px_per_s: float
    free_at: float = 0.0
    jobs: list[tuple[float, float, str, int]] = field(default_factory=list)  # (deadline, seconds, stream, pick)

    def __post_init__(self) -> None:
        if not self.px_per_s > 0:
            raise ConfigError(f"worker {self.name!r}: expected a speed > 0 pixels/s, got {self.px_per_s!r}")

    def seconds(self, area: float) -> float:
        return float(area) / self.px_per_s

    def schedule(self, extra: tuple[float, float, str, int] | None = None) -> list[tuple[float, tuple]]:
        """Finish time of each job (with ``extra`` added) run earliest-deadline-first."""
        jobs = sorted(self.jobs + ([extra] if extra is not None else []), key=lambda j: (j[0], j[2], j[3]))
        t, out = self.free_at, []
        for job in jobs:
            t += job[1]
            out.append((t, job))
        return out

    def feasible_with(self, job: tuple[float, float, str, int]) -> float | None:
        """The finish time of ``job`` if every job, it included, meets its deadline; else None."""
        finish = None
        for end, j in self.schedule(job):
            if end > j[0] + 1e-12:
                return None
            if j is job:
                finish = end
        return finish


@dataclass
class Allocation:
    """Kept prefix length per stream, the worker of each kept anchor, and the totals."""

    kept: dict[str, int]
    placement: dict[str, list[str]]  # stream -> worker name per kept anchor, in plan order
    gain: float  # sum of the kept anchors' gains (model's drop in J)
    area: float  # LR pixels sent through the network
    late: int = 0  # anchors within the capacity that no worker could finish before their deadline

    def finish_times(self, workers: list[Worker]) -> dict[tuple[str, int], float]:
        """(stream, pick) -> finish time, with the workers run earliest-deadline-first."""
        return {(j[2], j[3]): end for w in workers for end, j in w.schedule()}


def _check(offers: list[Offer], workers: list[Worker]) -> None:
    if not workers:
        raise ConfigError("expected at least one SR worker, got none")
    names = [o.stream for o in offers]
    if len(set(names)) != len(names):
        raise ConfigError(f"expected one offer per stream, got streams {names}")


def _place(workers: list[Worker], offer: Offer, k: int) -> Worker | None:
    """Put pick ``k`` of ``offer`` on the worker where it finishes earliest in time (or None)."""
    best, best_end = None, np.inf
    for w in workers:
        job = (float(offer.deadlines[k]), w.seconds(offer.areas[k]), offer.stream, k)
        end = w.feasible_with(job)
        if end is not None and end < best_end:
            best, best_end = w, end
    if best is not None:
        best.jobs.append((float(offer.deadlines[k]), best.seconds(offer.areas[k]), offer.stream, k))
    return best


def allocate_global(offers: list[Offer], workers: list[Worker], capacity_px: float | None = None) -> Allocation:
    """One greedy over every stream's next pick by gain per pixel (see the module docstring).

    capacity_px: at most this many LR pixels in all (the round's SR compute); None: as many as
    the workers can finish before the deadlines. ``workers`` get the kept jobs appended.
    """
    _check(offers, workers)
    kept = {o.stream: 0 for o in offers}
    placement: dict[str, list[str]] = {o.stream: [] for o in offers}
    heap = [(-o.gains[0] / o.areas[0], i) for i, o in enumerate(offers) if len(o)]
    heapq.heapify(heap)
    gain = area = 0.0
    late = 0
    while heap:
        _, i = heapq.heappop(heap)
        o = offers[i]
        k = kept[o.stream]
        if o.gains[k] <= 0 or (capacity_px is not None and area + o.areas[k] > capacity_px + 1e-9):
            continue  # nothing left to gain there, or no capacity: the stream's offer closes
        w = _place(workers, o, k)
        if w is None:
            late += 1
            continue
        kept[o.stream] = k + 1
        placement[o.stream].append(w.name)
        gain += float(o.gains[k])
        area += float(o.areas[k])
        if k + 1 < len(o):
            heapq.heappush(heap, (-o.gains[k + 1] / o.areas[k + 1], i))
    return Allocation(kept, placement, gain, area, late)


def allocate_equal(offers: list[Offer], workers: list[Worker], capacity_px: float) -> Allocation:
    """Each stream spends ``capacity_px / len(offers)`` on its own plan, in order; an anchor
    that would pass the share, or that no worker can finish before its deadline, ends it."""
    _check(offers, workers)
    share = capacity_px / max(len(offers), 1)
    kept = {o.stream: 0 for o in offers}
    placement: dict[str, list[str]] = {o.stream: [] for o in offers}
    gain = area = 0.0
    late = 0
    for o in offers:
        spent = 0.0
        for k in range(len(o)):
            if o.gains[k] <= 0 or spent + o.areas[k] > share + 1e-9:
                break
            w = _place(workers, o, k)
            if w is None:
                late += 1
                break
            spent += float(o.areas[k])
            kept[o.stream] = k + 1
            placement[o.stream].append(w.name)
            gain += float(o.gains[k])
        area += spent
    return Allocation(kept, placement, gain, area, late)
