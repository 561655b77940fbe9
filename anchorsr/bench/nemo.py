"""``nemo``: NEMO's offline anchor-frame scheduler, measured by decoding (evaluation only).

Source: Yeo et al., "NEMO: Enabling Neural-enhanced Video Streaming on Commodity Mobile
Devices", MobiCom 2020; docs/method.md §3.3. For each frame j of a chunk, the chunk is rebuilt
with only frame j as an anchor frame (SR on the whole frame, reuse elsewhere) and every frame's
quality is measured against the ground truth (MSE over Y, U and V). A set of anchor frames is then
estimated to give each frame the lowest error any of its members gives it alone; frames are ordered
greedily by the summed estimate (the chunk's mean-MSE PSNR, as the benchmark measures clips) and a
budget takes the prefix it can pay for (whole frames).

It needs the ground-truth HR frames and the SR output, so it runs only inside the quality
benchmark, never live: ``get_scheduler("nemo", reference=..., patch_source=...)`` once this
module is imported. It lives beside the benchmark, not in ``anchorsr.schedule``, because it must
rebuild frames to measure them: the schedulers only read coded metadata and never import the
reuse path.
"""

from __future__ import annotations

import copy
import logging
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError
from ..metrics import planes_mse
from ..reuse import Reconstructor, ReuseConfig
from ..schedule.base import Scheduler, frames_for_budget, register, whole_frames_plan
from ..types import AnchorPlan, Chunk, HRPatchSource

log = logging.getLogger(__name__)

Reference = Callable[[int], Sequence[np.ndarray]]


def greedy_frame_order(base: np.ndarray, single: np.ndarray) -> list[int]:
    """NEMO's greedy order of anchor frames from measured per-frame errors.

    base: (T,) MSE of each frame with no anchor. single: (T, T), ``single[j, t]`` the MSE of frame
    t when frame j alone is an anchor. The estimate of a set's error on frame t is the lowest of
    its members' (and of ``base``); each step adds the frame that lowers the summed estimate most
    (ties: the earliest frame).

    Errors, not per-frame PSNRs, are summed: the chunk's quality is the PSNR of its mean MSE
    (``anchorsr.metrics.clip_psnr``), so this greedy raises exactly that figure, and a frame that is
    already exact (MSE 0, an infinite PSNR) weighs nothing instead of looking infinitely valuable.
    NEMO (§3.3) orders by per-frame quality; this is the same greedy on the measure the benchmark
    reports.
    """
    base = np.asarray(base, np.float64)
    single = np.asarray(single, np.float64)
    cur = base.copy()
    left = list(range(len(base)))
    order: list[int] = []
    while left:
        totals = [float(np.minimum(cur, single[j]).sum()) for j in left]
        best = left[int(np.argmin(totals))]
        order.append(best)
        left.remove(best)
        cur = np.minimum(cur, single[best])
    return order


@register("nemo")
class Nemo(Scheduler):
    """NEMO's offline scheduler (see the module text). reference: stream index -> HR planes
    (Y, U, V) of the ground truth; patch_source: the SR output for anchors; config: the reuse
    path. Chunks that do not start at a key frame are measured from an unanchored start."""

    def __init__(self, *, reference: Reference | None = None, patch_source: HRPatchSource | None = None,
                 config: ReuseConfig = ReuseConfig(), on_step: Callable[[], None] | None = None) -> None:
        if reference is None or patch_source is None:
            raise ConfigError("nemo measures quality by decoding against the ground truth: it is an "
                              "offline, evaluation-only scheduler (used by 'anchorsr bench quality')")
        self.reference, self.patch_source, self.config = reference, patch_source, config
        self.on_step = on_step
        self._orders: dict[int, list[int]] = {}

    def measure(self, chunk: Chunk) -> tuple[np.ndarray, np.ndarray]:
        """(base (T,), single (T, T)): measured per-frame MSE (Y, U, V combined) with no anchor /
        with one anchor frame."""
        frames, n = chunk.frames, len(chunk)
        if not frames[0].is_key:
            log.info("nemo: chunk at %d does not start at a key frame; measured from an "
                     "unanchored start", chunk.start)
        boxes = chunk.grid.boxes()
        rec = Reconstructor(self.config)
        snapshots, base = [], np.zeros(n)
        for t, frame in enumerate(frames):
            snapshots.append(copy.deepcopy(rec))
            hr = rec.step(frame)
            base[t] = planes_mse((hr.y, hr.u, hr.v), self.reference(frame.index))
        single = np.tile(base, (n, 1))
        for j in range(n):
            rec = snapshots[j]
            patches = self.patch_source(frames[j], boxes, self.config.scale)
            for t in range(j, n):
                hr = rec.step(frames[t], boxes if t == j else None, patches if t == j else None)
                single[j, t] = planes_mse((hr.y, hr.u, hr.v), self.reference(frames[t].index))
            snapshots[j] = None  # type: ignore[call-overload]
            if self.on_step is not None:
                self.on_step()
        return base, single

    def frame_order(self, chunk: Chunk) -> list[int]:
        """Anchor frames of ``chunk`` in NEMO's greedy order (measured once per chunk)."""
        if chunk.start not in self._orders:
            self._orders[chunk.start] = greedy_frame_order(*self.measure(chunk))
        return self._orders[chunk.start]

    def plan(self, chunk: Chunk, budget_fraction: float, *, graph=None, carry_in=None) -> AnchorPlan:
        k = frames_for_budget(chunk, budget_fraction)
        return whole_frames_plan(chunk, self.frame_order(chunk)[:k] if k else [])
