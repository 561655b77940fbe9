import itertools

import numpy as np
import pytest

from anchorsr.cluster import Offer, Worker, allocate_equal, allocate_global
from anchorsr.errors import ConfigError


def _offer(name, gains, areas=None, deadline=1e9):
    gains = np.asarray(gains, float)
    areas = np.full(len(gains), 64.0 * 64) if areas is None else np.asarray(areas, float)
    return Offer(name, gains, areas, np.full(len(gains), float(deadline)))


def _best_prefixes(offers, capacity_px):
    """Brute force: the most total gain of any prefix per stream within the capacity."""
    best = 0.0
    for ks in itertools.product(*(range(len(o) + 1) for o in offers)):
        area = sum(o.areas[:k].sum() for o, k in zip(offers, ks))
        if area <= capacity_px:
            best = max(best, sum(o.gains[:k].sum() for o, k in zip(offers, ks)))
    return best


def test_global_budget_is_optimal_for_equal_areas_and_beats_the_equal_split():
    rng = np.random.default_rng(3)
    beaten = 0
    for trial in range(30):
        offers = [_offer(f"s{i}", np.sort(rng.exponential(10.0 ** rng.uniform(-1, 2), rng.integers(1, 6)))[::-1])
                  for i in range(3)]
        capacity = 64.0 * 64 * rng.integers(1, 9)
        g = allocate_global(offers, [Worker("w", 1e12)], capacity)
        e = allocate_equal(offers, [Worker("w", 1e12)], capacity)
        assert g.area <= capacity + 1e-6
        assert g.gain == pytest.approx(_best_prefixes(offers, capacity))
        assert g.gain >= e.gain - 1e-9
        beaten += g.gain > e.gain + 1e-9
    assert beaten > 5  # streams that differ: the equal split leaves gain behind


def test_no_anchor_is_given_to_a_worker_that_cannot_meet_its_deadline():
    rng = np.random.default_rng(7)
    for trial in range(20):
        workers = [Worker("gpu", 2e6), Worker("cpu", 2e5, free_at=0.01)]
        offers = []
        for i in range(4):
            n = int(rng.integers(2, 12))
            offers.append(Offer(f"s{i}", np.sort(rng.exponential(1.0, n))[::-1], rng.uniform(1e3, 2e4, n),
                                np.sort(rng.uniform(0.005, 0.2, n))))
        alloc = allocate_global(offers, workers)
        finish = alloc.finish_times(workers)
        assert len(finish) == sum(alloc.kept.values())
        for (stream, k), end in finish.items():
            offer = next(o for o in offers if o.stream == stream)
            assert k < alloc.kept[stream]
            assert end <= offer.deadlines[k] + 1e-12
        # the kept anchors are each stream's plan prefix, placed on the worker named
        for o in offers:
            assert len(alloc.placement[o.stream]) == alloc.kept[o.stream]


def test_an_impossible_deadline_keeps_nothing_and_a_fast_worker_takes_more():
    late = _offer("late", [5.0, 4.0], deadline=1e-6)
    fine = _offer("fine", [1.0, 1.0, 1.0, 1.0], deadline=1.0)
    workers = [Worker("slow", 4096.0), Worker("fast", 4096.0 * 8)]  # 1 s and 1/8 s per patch
    alloc = allocate_global([late, fine], workers)
    assert alloc.kept == {"late": 0, "fine": 4}
    assert alloc.late == 1  # its first anchor was refused, which closed its offer
    assert alloc.placement["fine"].count("fast") >= 3


def test_a_stream_whose_next_anchor_brings_nothing_stops():
    alloc = allocate_global([_offer("a", [3.0, 0.0, 2.0]), _offer("b", [1.0])], [Worker("w", 1e9)])
    assert alloc.kept == {"a": 1, "b": 1}


def test_bad_offers_and_workers_are_refused_with_one_message():
    with pytest.raises(ConfigError, match="one length"):
        Offer("x", np.ones(2), np.ones(3), np.ones(2))
    with pytest.raises(ConfigError, match="areas > 0"):
        Offer("x", np.ones(2), np.zeros(2), np.ones(2))
    with pytest.raises(ConfigError, match="speed"):
        Worker("w", 0.0)
    with pytest.raises(ConfigError, match="at least one SR worker"):
        allocate_global([_offer("a", [1.0])], [])
    with pytest.raises(ConfigError, match="one offer per stream"):
        allocate_global([_offer("a", [1.0]), _offer("a", [2.0])], [Worker("w", 1.0)])


@pytest.mark.parametrize("policy", ["global", "equal"])
def test_a_worker_that_would_finish_late_gets_no_anchor_under_either_policy(policy):
    """A worker busy past every deadline, and one too slow for any anchor, are given nothing;
    the anchors that are kept all go to the worker that finishes them in time."""
    rng = np.random.default_rng(11)
    offers = [Offer(f"s{i}", np.sort(rng.exponential(1.0, 6))[::-1], np.full(6, 32.0 * 32),
                    np.sort(rng.uniform(0.05, 0.2, 6))) for i in range(3)]
    busy = Worker("busy", 1e9, free_at=0.5)  # fast, but free only after every deadline
    slow = Worker("slow", 32.0 * 32 / 0.3)  # 0.3 s per anchor: late for every one
    ok = Worker("ok", 32.0 * 32 / 0.04)  # 40 ms per anchor: it fills up, and then 'busy' would finish first
    workers = [busy, slow, ok]
    if policy == "global":
        alloc = allocate_global(offers, workers)
    else:
        alloc = allocate_equal(offers, workers, capacity_px=1e9)
    assert busy.jobs == [] and slow.jobs == [] and alloc.late > 0
    assert sum(alloc.kept.values()) > 0 and len(ok.jobs) == sum(alloc.kept.values())
    assert all(name == "ok" for names in alloc.placement.values() for name in names)
    for (stream, k), end in alloc.finish_times(workers).items():
        assert end <= next(o for o in offers if o.stream == stream).deadlines[k] + 1e-12
