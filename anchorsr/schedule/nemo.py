"""``nemo``: NEMO's offline anchor-frame scheduler, measured by decoding (evaluation only).

Source: Yeo et al., "NEMO: Enabling Neural-enhanced Video Streaming on Commodity Mobile
Devices", MobiCom 2020; algorithms.md §3.3. For each frame j of a chunk, the chunk is rebuilt
with only frame j as an anchor frame (SR on the whole frame, reuse elsewhere) and every frame's
quality is measured against the ground truth. A set of anchor frames is then estimated to give
each frame the best quality any of its members gives it alone; frames are ordered greedily by that
estimate and a budget takes the prefix it can pay for (whole frames).

It needs the ground-truth HR frames and the SR output, so it runs only inside the quality
benchmark, never live: ``get_scheduler("nemo", reference=..., patch_source=...)``.
"""

from __future__ import annotations

import copy
import logging
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError
from ..reuse import Reconstructor, ReuseConfig
from ..types import AnchorPlan, Chunk, HRPatchSource
from .base import Scheduler, frames_for_budget, register, whole_frames_plan

log = logging.getLogger(__name__)

Reference = Callable[[int], Sequence[np.ndarray]]


def psnr_planes(planes: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    """PSNR (dB) over the samples of all planes together (Y, U, V combined)."""
    se, n = 0.0, 0
    for a, b in zip(planes, reference):
        d = a.astype(np.float64) - b.astype(np.float64)
        se += float(np.einsum("ij,ij->", d, d))
        n += d.size
    return float("inf") if se == 0 else 10.0 * np.log10(255.0**2 * n / se)


def greedy_frame_order(base: np.ndarray, single: np.ndarray) -> list[int]:
    """NEMO's greedy order of anchor frames from measured qualities.

    base: (T,) quality of each frame with no anchor. single: (T, T), ``single[j, t]`` the quality
    of frame t when frame j alone is an anchor. The estimate of a set's quality on frame t is the
    best of its members' (and of ``base``); each step adds the frame that raises the summed
    estimate most (ties: the earliest frame).
    """
    base = np.asarray(base, np.float64)
    single = np.asarray(single, np.float64)
    cur = base.copy()
    left = list(range(len(base)))
    order: list[int] = []
    while left:
        totals = [float(np.maximum(cur, single[j]).sum()) for j in left]
        best = left[int(np.argmax(totals))]
        order.append(best)
        left.remove(best)
        cur = np.maximum(cur, single[best])
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
        """(base (T,), single (T, T)): measured per-frame PSNR with no anchor / one anchor frame."""
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
            base[t] = psnr_planes((hr.y, hr.u, hr.v), self.reference(frame.index))
        single = np.tile(base, (n, 1))
        for j in range(n):
            rec = snapshots[j]
            patches = self.patch_source(frames[j], boxes, self.config.scale)
            for t in range(j, n):
                hr = rec.step(frames[t], boxes if t == j else None, patches if t == j else None)
                single[j, t] = psnr_planes((hr.y, hr.u, hr.v), self.reference(frames[t].index))
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
