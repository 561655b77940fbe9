"""A pool of SR worker threads shared by every live stream of a process.

Jobs (one frame's anchor boxes) are served earliest-deadline-first across streams, so a stream
whose frames are due sooner is never stuck behind another stream's chunk. A job whose deadline
has passed before a worker reaches it is skipped, not run: its frame has already been rebuilt
by reuse alone. The network releases the GIL (torch, and numpy's matrix products and large
array operations), so SR overlaps reconstruction.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from typing import Callable

import numpy as np

from ..types import CodedFrame, HRPatch, HRPatchSource

log = logging.getLogger(__name__)


class SRJob:
    """One frame's anchors; ``wait`` returns the HR patches, or None (late, skipped or failed)."""

    def __init__(self, frame: CodedFrame, boxes: np.ndarray, scale: int, deadline: float | None) -> None:
        self.frame, self.boxes, self.scale = frame, boxes, scale
        self.deadline = math.inf if deadline is None else deadline
        self.result: list[HRPatch] | None = None
        self.cancelled = False
        self._done = threading.Event()

    def finish(self, result: list[HRPatch] | None) -> None:
        self.result = result
        self._done.set()

    def wait(self, timeout_s: float | None) -> list[HRPatch] | None:
        if not self._done.wait(timeout_s):
            self.cancelled = True  # a worker that has not started it skips it
            return None
        return self.result


class SRPool:
    """``workers`` threads running ``patch_source``; ``submit`` returns an :class:`SRJob`.

    sr_threads: threads of one network call (the patch source's ``set_threads``: the numpy
    engine's own, torch's intra-op setting, which is process-wide; None leaves it alone). On a
    2-core machine one SR thread with one network thread leaves the other core to
    reconstruction and encoding (README, live benchmark).
    """

    def __init__(self, patch_source: HRPatchSource, workers: int = 1, sr_threads: int | None = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        set_threads = getattr(patch_source, "set_threads", None)
        if sr_threads is not None and set_threads is not None:  # only when a network is loaded
            set_threads(sr_threads)
        self.patch_source, self.clock = patch_source, clock
        self._heap: list[tuple[float, int, SRJob]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._closed = False
        self.patches_done = 0
        self.jobs_skipped = 0
        self.busy_s = 0.0
        self._threads = [threading.Thread(target=self._work, name=f"sr-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, frame: CodedFrame, boxes: np.ndarray, scale: int, deadline: float | None) -> SRJob:
        job = SRJob(frame, boxes, scale, deadline)
        with self._cv:
            heapq.heappush(self._heap, (job.deadline, next(self._seq), job))
            self._cv.notify()
        return job

    @property
    def queued(self) -> int:
        return len(self._heap)

    def _next(self) -> SRJob | None:
        with self._cv:
            while not self._heap and not self._closed:
                self._cv.wait()
            return heapq.heappop(self._heap)[2] if self._heap else None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            if job.cancelled or self.clock() > job.deadline:
                self.jobs_skipped += 1
                job.finish(None)
                continue
            start = time.perf_counter()
            try:
                result = self.patch_source(job.frame, job.boxes, job.scale)
            except Exception:  # a failed job degrades its frame to reuse; the stream goes on
                log.exception("SR failed on frame %d", job.frame.index)
                result = None
            self.busy_s += time.perf_counter() - start
            self.patches_done += len(job.boxes) if result is not None else 0
            job.finish(result)

    def stats(self) -> dict:
        return {"workers": len(self._threads), "queued_jobs": self.queued, "patches_done": self.patches_done,
                "jobs_skipped_late": self.jobs_skipped, "busy_s": round(self.busy_s, 3)}

    def close(self) -> None:
        with self._cv:
            self._closed = True
            for _, _, job in self._heap:
                job.finish(None)
            self._heap.clear()
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=5)
