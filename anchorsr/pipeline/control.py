"""Deadline-aware SR budget: shrink when SR falls behind, grow back when there is headroom.

The rule is pure (state in, budget out), so tests replay scripted load instantly. It is an
additive-increase / multiplicative-decrease controller, the rule TCP uses for the same
problem (find the largest share that a shared, noisy resource sustains without queueing):

* overload (an SR result missed its frame's deadline, or frames are piling up in front of
  reconstruction): halve the budget; below ``floor_share`` of the target it becomes 0;
* severe overload (frames were dropped, or a whole chunk is waiting): 0 at once, since SR
  spent on frames that are then dropped is wasted and the pipeline needs all its CPU;
* headroom (nothing late, no backlog): add ``step_share`` of the target, up to the target;
  above the **ceiling** only ``slow_share`` of it. The ceiling is 3/4 of the budget at which
  the last overload began (TCP's slow-start threshold): a machine that sustains only part of
  the target climbs back quickly to just below where it failed, then probes slowly, instead of
  overshooting every few chunks (each overshoot drops frames).

Plans are ordered (a smaller budget is a prefix of the plan), so a shrunk budget costs no
re-scheduling: the pipeline cuts the chunk's plan with ``AnchorPlan.prefix_for_budget``.

Shedding SR alone is not enough where the rest of the per-frame work (decoding, the reuse gate,
the closed-loop reconstruction, encoding) exceeds the machine: frames are still dropped at
budget 0. The controller then also asks for the **light reconstruction** (``light``): the
closed loop's cheaper model of the LR (the box mean, about half the reconstruction's CPU with
the default bicubic model; a little less PSNR rather than dropped frames). It is asked for on severe
overload and kept until the budget has climbed back to its target, so that a machine which is
just short of real time does not switch every chunk (``next_light``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class LoadReport:
    """What happened since the last decision.

    sr_late_frames: frames rebuilt without (some of) their anchors because SR missed the deadline.
    backlog_frames: frames of earlier chunks still waiting for reconstruction.
    chunk_frames: frames per chunk (the backlog is judged against it).
    dropped_frames: frames dropped because the pipeline could not keep up.
    """

    sr_late_frames: int
    backlog_frames: int
    chunk_frames: int
    dropped_frames: int = 0


def severe(report: LoadReport) -> bool:
    """Frames were dropped, or a whole chunk is waiting."""
    return report.dropped_frames > 0 or report.backlog_frames >= report.chunk_frames


# Frames waiting in front of reconstruction, as a share of a chunk, that count as an overload.
BACKLOG_SHARE = 0.25


def overloaded(report: LoadReport, backlog_share: float = BACKLOG_SHARE) -> bool:
    """SR missed a deadline, or frames are piling up in front of reconstruction (or worse)."""
    return (severe(report) or report.sr_late_frames > 0
            or report.backlog_frames > backlog_share * report.chunk_frames)


def next_budget(current: float, target: float, report: LoadReport, *, ceiling: float | None = None,
                step_share: float = 0.25, slow_share: float = 0.0625, floor_share: float = 0.05,
                backlog_share: float = BACKLOG_SHARE) -> float:
    """The budget fraction for the next chunk (never below 0, never above ``target``).
    ceiling: above it the budget grows by ``slow_share`` of the target a chunk instead of
    ``step_share`` (None: no ceiling)."""
    if severe(report):
        return 0.0
    if overloaded(report, backlog_share):
        shrunk = current / 2.0
        return 0.0 if shrunk < floor_share * target else shrunk
    grown = current + step_share * target
    if ceiling is not None and grown > ceiling:
        grown = ceiling if current < ceiling else current + slow_share * target
    return min(target, grown)


def next_light(light: bool, report: LoadReport, budget: float, target: float) -> bool:
    """Whether the next chunk is rebuilt with the light reconstruction: from a severe overload
    (frames dropped, or a whole chunk waiting) until the budget is back at its target."""
    return severe(report) or (light and budget < target)


# The ceiling as a share of the budget at which an overload began.
CEILING_SHARE = 0.75


class BudgetController:
    """Thread-safe holder of the live budget: stages report late SR, the scheduler asks."""

    def __init__(self, target: float) -> None:
        if not 0.0 <= target <= 1.0:
            raise ConfigError(f"budget must lie in 0..1, got {target}")
        self.target = target
        self.budget = target
        self.light = False  # the light reconstruction (see the module's docstring)
        self.ceiling: float | None = None  # where growth slows down (see the module's docstring)
        self._calm = True  # the last decision saw no overload
        self._late = self._dropped = 0
        self._lock = threading.Lock()
        self.history: list[float] = []

    def sr_late(self, frames: int = 1) -> None:
        with self._lock:
            self._late += frames

    def dropped(self, frames: int = 1) -> None:
        with self._lock:
            self._dropped += frames

    def decide(self, backlog_frames: int, chunk_frames: int) -> float:
        """Budget of the chunk about to be planned (and whether it is rebuilt light,
        ``self.light``); resets the late and dropped counts."""
        with self._lock:
            report = LoadReport(self._late, backlog_frames, chunk_frames, self._dropped)
            self._late = self._dropped = 0
            hit = overloaded(report)
            if hit and self._calm and self.budget > 0:  # an overload begins: remember where
                self.ceiling = CEILING_SHARE * self.budget
            self._calm = not hit
            self.budget = next_budget(self.budget, self.target, report, ceiling=self.ceiling)
            self.light = next_light(self.light, report, self.budget, self.target)
            self.history.append(self.budget)
            return self.budget
