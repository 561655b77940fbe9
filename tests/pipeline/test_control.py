"""The deadline controller: shrink under overload (never below 0), grow back to the target."""

import pytest

from anchorsr.errors import ConfigError
from anchorsr.pipeline import BudgetController, LoadReport, next_budget
from anchorsr.pipeline.control import next_light

CALM = LoadReport(sr_late_frames=0, backlog_frames=0, chunk_frames=60)
LATE = LoadReport(sr_late_frames=3, backlog_frames=0, chunk_frames=60)
BACKLOG = LoadReport(sr_late_frames=0, backlog_frames=30, chunk_frames=60)


def test_overload_halves_then_reaches_zero_and_never_below():
    b = 0.05
    seen = []
    for _ in range(8):
        b = next_budget(b, 0.05, LATE)
        seen.append(b)
    assert seen[:3] == pytest.approx([0.025, 0.0125, 0.00625])
    assert seen[-1] == 0.0 and min(seen) >= 0.0
    assert next_budget(0.05, 0.05, BACKLOG) == pytest.approx(0.025)


def test_headroom_grows_back_to_the_target_and_not_beyond():
    b, steps = 0.0, 0
    while b < 0.05:
        b = next_budget(b, 0.05, CALM)
        steps += 1
    assert steps == 4 and b == pytest.approx(0.05)
    assert next_budget(0.05, 0.05, CALM) == pytest.approx(0.05)


def test_drops_or_a_whole_chunk_waiting_stop_sr_at_once():
    assert next_budget(0.05, 0.05, LoadReport(0, 0, 60, dropped_frames=1)) == 0.0
    assert next_budget(0.05, 0.05, LoadReport(0, 60, 60)) == 0.0
    c = BudgetController(0.05)
    c.dropped(3)
    assert c.decide(backlog_frames=0, chunk_frames=60) == 0.0
    assert c.decide(backlog_frames=0, chunk_frames=60) == pytest.approx(0.0125)


def test_small_backlog_is_not_overload():
    assert next_budget(0.05, 0.05, LoadReport(0, 10, 60)) == pytest.approx(0.05)


def test_controller_counts_late_frames_until_each_decision():
    c = BudgetController(0.1)
    c.sr_late(2)
    assert c.decide(backlog_frames=0, chunk_frames=60) == pytest.approx(0.05)
    assert c.decide(backlog_frames=0, chunk_frames=60) == pytest.approx(0.075)  # late count was reset
    assert c.history == pytest.approx([0.05, 0.075])
    with pytest.raises(ConfigError):
        BudgetController(1.5)


def test_the_light_reconstruction_starts_on_drops_and_ends_when_the_budget_is_back():
    dropped, waiting = LoadReport(0, 0, 60, dropped_frames=2), LoadReport(0, 60, 60)
    assert next_light(False, dropped, 0.0, 0.05) and next_light(False, waiting, 0.0, 0.05)
    assert not next_light(False, LATE, 0.025, 0.05)  # late SR alone: shedding SR is enough
    assert next_light(True, CALM, 0.0375, 0.05)  # kept while the budget climbs back...
    assert not next_light(True, CALM, 0.05, 0.05)  # ...and left once it is at its target
    c = BudgetController(0.05)
    c.dropped()
    seen = []
    for _ in range(10):
        seen.append((c.decide(backlog_frames=0, chunk_frames=60), c.light))
    # light from the drop until the budget is back at 0.05 (0, then up to the ceiling and beyond)
    assert [light for _, light in seen] == [b < 0.05 - 1e-9 for b, _ in seen]
    assert seen[0] == (0.0, True) and seen[-1] == (pytest.approx(0.05), False)


def test_above_the_ceiling_the_budget_grows_slowly():
    b, seen = 0.0, []
    for _ in range(6):
        b = next_budget(b, 0.05, CALM, ceiling=0.03)
        seen.append(b)
    # a quarter of the target a chunk up to the ceiling, then a sixteenth
    assert seen == pytest.approx([0.0125, 0.025, 0.03, 0.033125, 0.03625, 0.039375])
    assert next_budget(0.049, 0.05, CALM, ceiling=0.03) == pytest.approx(0.05)  # never above the target


def test_the_ceiling_is_set_where_an_overload_begins_and_kept_through_it():
    c = BudgetController(0.05)
    for _ in range(2):
        c.decide(backlog_frames=0, chunk_frames=60)
    assert c.ceiling is None and c.budget == pytest.approx(0.05)
    c.sr_late()
    assert c.decide(0, 60) == pytest.approx(0.025) and c.ceiling == pytest.approx(0.0375)
    c.dropped()  # the same overload goes on: the ceiling stays where it began
    assert c.decide(0, 60) == 0.0 and c.ceiling == pytest.approx(0.0375)
    seen = [c.decide(0, 60) for _ in range(5)]
    assert seen == pytest.approx([0.0125, 0.025, 0.0375, 0.040625, 0.04375])
    c.sr_late()  # a new overload at 0.04375
    c.decide(0, 60)
    assert c.ceiling == pytest.approx(0.75 * 0.04375)
