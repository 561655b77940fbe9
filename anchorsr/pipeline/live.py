"""The real-time runner (the live pipeline of one stream): decode -> chunk + schedule -> SR ->
reconstruct -> encode, the step functions of ``steps.py`` driven in threads.

Each stage is a thread; bounded queues sit between them::

    decode --q_decoded--> schedule --(SR jobs to the shared SRPool)--> q_planned --> reconstruct
           --q_rebuilt--> encode (sink)

Scheduling needs the whole chunk, so a frame waits for the end of its chunk: the added latency
is about one chunk plus processing. When the input pauses (``idle_flush_s`` without a frame),
the chunk in progress is planned as it is: its frames do not wait past their deadlines for
frames that may never come (the end of a UDP stream is only known after a silence of the read
timeout, and an MPEG-TS demuxer holds a stream's last frame until then).

Every frame gets a deadline, its decode time plus ``max_latency_s``. Reconstruction waits for
a frame's SR patches only until shortly before that deadline; after it, the frame is rebuilt by
reuse alone and the budget controller is told (``control.py``), which shrinks the next chunks'
budget; with headroom it grows back. Where frames are dropped even with SR shed, the controller
also asks for the light reconstruction (the closed loop's box model of the LR, about half its
CPU) until the budget is back at its target (``options.light``).

Queue policies (named, as the live loop needs them): in real-time mode the decoded-frame queue
drops the newest frame when full (counted as dropped; the reuse reference is reset after the
gap), because a live source cannot be paused; in file mode every queue blocks and nothing is
dropped or skipped. A corrupt or missing packet resets the reuse reference at the next frame.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import SourceError
from ..reuse import Reconstructor
from ..schedule import CHUNK_END, get_scheduler, read_plans
from ..stream import EncodeSettings, Sink
from ..types import AnchorPlan, CodedFrame, HRFrame, HRPatch, PlannedFrame
from .control import BudgetController
from .options import PipelineOptions
from .srpool import SRJob, SRPool
from .steps import SRCounts, count, plan_groups, rebuild, size_changed, with_budget

log = logging.getLogger(__name__)

_END = object()
_POLL_S = 0.1


# The closed loop's model of the LR in the light reconstruction (overload): the box mean, whose
# residual is measured in the same pass as the prediction.
LIGHT_LR_MODEL = "box"

# Output frames whose latency the figures are taken over (a live stream runs without end).
LATENCY_WINDOW = 10000


@dataclass
class LiveStats(SRCounts):
    """Counters of one stream, updated by its stages (read them from any thread)."""

    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    late: int = 0
    sr_late_frames: int = 0
    missing_frames: int = 0
    restarts: int = 0
    idle_flushes: int = 0  # chunks planned early because the input paused
    repeated_frames: int = 0  # the sink's repeats where dropped frames left a gap (key frames, top-ups)
    light_frames: int = 0  # frames rebuilt with the light reconstruction (overload)
    started: float | None = None
    first_out: float | None = None
    last_out: float | None = None
    finished: float | None = None
    latencies_s: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))  # seconds, newest last
    output_size: tuple[int, int] | None = None

    def fps(self, now: float) -> float:
        """Output frames per second since the first output frame (the sustained rate)."""
        if self.frames_out < 2 or self.first_out is None:
            return 0.0
        end = self.last_out if self.finished else now
        return (self.frames_out - 1) / (end - self.first_out) if end > self.first_out else 0.0

    def latency_ms(self) -> dict:
        lat = np.asarray(self.latencies_s)
        if not lat.size:
            return {"median": None, "p95": None}
        return {"median": round(float(np.median(lat)) * 1e3, 1), "p95": round(float(np.percentile(lat, 95)) * 1e3, 1)}


@dataclass
class _Item:
    frame: CodedFrame
    arrival: float
    gap: bool = False
    light: bool = False
    deadline: float | None = None
    planned: PlannedFrame | None = None
    job: SRJob | None = None
    hr: HRFrame | None = None
    time: float | None = None


class LivePipeline:
    """Enhance one stream of CodedFrames into a sink, stage by stage in threads.

    frames: the decoded input (a ``VideoSource``; its ``stats.corrupt_packets`` is watched).
    make_sink: (width, height, EncodeSettings) -> Sink, called at the first output frame.
    pool: the shared SR pool. ``run()`` blocks until the stream ends and returns the stats.
    """

    def __init__(self, frames: Iterable[CodedFrame], fps: float, make_sink: Callable[[int, int, EncodeSettings], Sink],
                 pool: SRPool, options: PipelineOptions = PipelineOptions(), *, name: str = "stream",
                 clock: Callable[[], float] = time.monotonic,
                 on_frame: Callable[[LiveStats], None] | None = None) -> None:
        self.frames, self.fps, self.make_sink, self.pool = frames, fps, make_sink, pool
        self.options, self.name, self.clock, self.on_frame = options, name, clock, on_frame
        self.plans = read_plans(options.plan_path) if options.plan_path else None
        self.scheduler = None if self.plans is not None else get_scheduler(options.scheduler)
        self.config = options.reuse_config()
        self.controller = BudgetController(options.budget_fraction)
        self.latency_target_s = options.latency_target_s(fps)
        # a quarter of the time a chunk's first frame has left once the chunk is complete
        self.idle_flush_s = max((self.latency_target_s - options.chunk_frames / fps) / 4, 2 / fps)
        n = options.queue_frames or 2 * options.chunk_frames
        self.q_decoded: queue.Queue = queue.Queue(n)
        self.q_planned: queue.Queue = queue.Queue(2 * options.chunk_frames)
        self.q_rebuilt: queue.Queue = queue.Queue(4)
        self.stats = LiveStats()
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._errors: list[BaseException] = []
        self._proc_s = 0.02  # running estimates of reconstruct and of encode time per frame
        self._enc_s = 0.02
        self._threads = [threading.Thread(target=self._guard, args=(fn, out), name=f"{name}-{fn.__name__}", daemon=True)
                         for fn, out in ((self._decode, self.q_decoded), (self._schedule, self.q_planned),
                                         (self._reconstruct, self.q_rebuilt), (self._encode, None))]

    # -- control -------------------------------------------------------------------------------
    def start(self) -> "LivePipeline":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """End the input at the next frame; what is in flight is finished and finalised."""
        self._stop.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        end = None if timeout_s is None else time.monotonic() + timeout_s
        for t in self._threads:
            t.join(None if end is None else max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def run(self) -> LiveStats:
        """Start, wait (Ctrl-C finalises the output), raise a stage's error if one failed."""
        self.start()
        try:
            while not self.wait(0.2):
                pass
        except KeyboardInterrupt:
            self.stop()
            self.wait(30)
            raise
        if self._errors:
            raise self._errors[0]
        if self.stats.frames_out == 0:
            raise SourceError(f"no frames decoded from {self.name!r}")
        return self.stats

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def snapshot(self) -> dict:
        """The stream's figures for ``/status`` and the benchmark."""
        s, now = self.stats, self.clock()
        return {"name": self.name, "running": self.running, "frames_in": s.frames_in, "frames_out": s.frames_out,
                "fps": round(s.fps(now), 2), "dropped": s.dropped, "late": s.late,
                "sr_late_frames": s.sr_late_frames, "corrupt_packets": s.corrupt_packets,
                "missing_frames": s.missing_frames, "restarts": s.restarts, "idle_flushes": s.idle_flushes,
                "repeated_frames": s.repeated_frames, "light_frames": s.light_frames,
                "sr_share": round(s.sr_share, 4), "budget_fraction": round(self.controller.budget, 4),
                "target_budget_fraction": self.controller.target, "latency_ms": s.latency_ms(),
                "latency_target_ms": round(self.latency_target_s * 1e3, 1), "output_size": s.output_size,
                "queues": {"decoded": self.q_decoded.qsize(), "planned": self.q_planned.qsize(),
                           "rebuilt": self.q_rebuilt.qsize()},
                "error": str(self._errors[0]) if self._errors else None}

    # -- plumbing ------------------------------------------------------------------------------
    def _guard(self, stage: Callable[[], None], out: queue.Queue | None) -> None:
        try:
            stage()
        except BaseException as exc:  # noqa: BLE001 - recorded, re-raised by run()
            if not self._errors:
                log.error("%s: %s stage failed: %s", self.name, stage.__name__.lstrip("_"), exc)
            self._errors.append(exc)
            self._abort.set()
        finally:
            if out is not None:
                self._put(out, _END, force=True)

    def _put(self, q: queue.Queue, item, force: bool = False) -> None:
        while True:
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                if self._abort.is_set():
                    if force:  # make room for the end marker: the consumer is gone anyway
                        try:
                            q.get_nowait()
                        except queue.Empty:
                            pass
                        continue
                    raise RuntimeError("pipeline aborted") from None

    def _items(self, q: queue.Queue) -> Iterator[_Item]:
        while (item := q.get()) is not _END:
            yield item

    # -- stages --------------------------------------------------------------------------------
    def _decode(self) -> None:
        corrupt = lambda: getattr(getattr(self.frames, "stats", None), "corrupt_packets", 0)  # noqa: E731
        seen, gap, last_time = corrupt(), False, None
        for frame in self.frames:
            now = self.clock()
            self.stats.started = self.stats.started or now
            self.stats.frames_in += 1
            if corrupt() != seen:
                seen, gap = corrupt(), True
                self.stats.corrupt_packets = seen
            if frame.time is not None and last_time is not None and frame.time - last_time > 1.5 / self.fps:
                # a hole in the timestamps: frames went missing (lost packets) before this one
                self.stats.missing_frames += max(int(round((frame.time - last_time) * self.fps)) - 1, 1)
                gap = True
            last_time = frame.time
            item = _Item(frame, now, gap)
            if self.options.realtime:
                try:
                    self.q_decoded.put_nowait(item)
                    gap = False
                except queue.Full:
                    self.stats.dropped += 1
                    self.controller.dropped()
                    gap = True
            else:
                self._put(self.q_decoded, item)
                gap = False
            if self._stop.is_set() or self._abort.is_set() or (
                    self.options.max_frames and self.stats.frames_in >= self.options.max_frames):
                break
        self.stats.corrupt_packets = corrupt()
        if hasattr(self.frames, "close"):
            self.frames.close()

    def _schedule(self) -> None:
        """Plan frames as they arrive (a chunk at a time, or a frame at a time in client mode),
        cut each plan to the live budget, and submit every SR job of a group before its frames
        go on (the pool works while earlier frames are rebuilt)."""
        items: dict[int, _Item] = {}  # frame index -> its item, until its plan is known (the
        # planned frame may be another object: the reuse gate rewrites motion fields)
        # a live input that pauses (or ended without saying so yet: UDP) has its chunk planned
        # after this long, not when frames that may never come complete it
        flush = self.options.realtime and self.plans is None

        def frames() -> Iterator[CodedFrame]:
            while True:
                try:
                    item = self.q_decoded.get(timeout=self.idle_flush_s if flush and items else None)
                except queue.Empty:
                    self.stats.idle_flushes += 1
                    yield CHUNK_END
                    continue
                if item is _END:
                    return
                items[item.frame.index] = item
                yield item.frame

        def overloaded() -> bool:  # a chunk that starts at zero budget skips the graph, its main cost
            return self.options.realtime and self.controller.budget == 0.0

        full: AnchorPlan | None = None
        cut: AnchorPlan | None = None
        light = False
        for group in plan_groups(frames(), self.options, plans=self.plans, skip_chunk=overloaded,
                                 scheduler=self.scheduler):
            if self.options.realtime:
                if group[0].plan is not full:  # one budget decision per plan
                    full = group[0].plan
                    cut = full.prefix_for_budget(self.controller.decide(self.q_planned.qsize(),
                                                                        self.options.chunk_frames))
                    light = self.options.light and self.controller.light
                group = with_budget(group, cut)
            batch = [items.pop(pf.frame.index) for pf in group]
            for item in batch:
                item.light = light
            if hasattr(self.pool, "submit_chunk"):  # SR workers shared by streams, one global budget
                self._submit_chunk(batch, group)
            else:
                for item, pf in zip(batch, group):
                    self._submit(item, pf)
            for item in batch:
                self._put(self.q_planned, item)

    def _deadline(self, item: _Item) -> float | None:
        """When the frame's output is due (None: not real time, nothing is due)."""
        return item.arrival + self.latency_target_s if self.options.realtime else None

    def _submit(self, item: _Item, pf: PlannedFrame) -> None:
        item.planned = pf
        item.deadline = self._deadline(item)
        boxes = pf.boxes
        if len(boxes):
            item.job = self.pool.submit(item.frame, boxes, self.options.scale, item.deadline)

    def _submit_chunk(self, batch: list[_Item], group: list[PlannedFrame]) -> None:
        """Offer the group's anchors to the global budget (``cluster.srworkers.RemoteSR``) with
        the scheduler's marginal gains; the frames keep the prefix it gives them."""
        for item in batch:
            item.deadline = self._deadline(item)
        plan = group[0].plan
        gains = getattr(self.scheduler, "last_gains", None) if self.plans is None else None
        kept, jobs = self.pool.submit_chunk([pf.frame for pf in group], [pf.t for pf in group], plan,
                                            None if gains is None else np.asarray(gains),
                                            [item.deadline for item in batch], self.options.scale)
        for item, pf, job in zip(batch, with_budget(group, kept), jobs):
            item.planned, item.job = pf, job

    def _reconstruct(self) -> None:
        if self.options.kernel_threads is not None:
            import numba

            numba.set_num_threads(self.options.kernel_threads)  # numba's setting is per thread
        rec, gap, shape = Reconstructor(self.config), False, None
        for item in self._items(self.q_planned):
            start = self.clock()
            f = item.frame
            if size_changed(shape, f, self.name):
                self.stats.restarts += 1  # the schedule restarted at the new size; step takes no reference
            shape = f.y.shape
            # when this frame would leave the encoder: its own reconstruction, then the encoder's queue
            done = start + self._proc_s + (self.q_rebuilt.qsize() + 1) * self._enc_s
            if item.deadline is not None and done > item.deadline:
                # Too late to be rebuilt and encoded in time: dropped, so that an overloaded
                # pipeline sheds frames instead of letting its latency grow without bound.
                self.stats.dropped += 1
                self.controller.dropped()
                if item.job is not None:
                    item.job.cancelled = True
                gap = True
                continue
            if gap or item.gap:
                rec.reset()  # after a gap the previous HR frame is no reference
            gap = False
            patches = self._patches(item, done)
            item.hr = rebuild(rec, item.planned, patches, LIGHT_LR_MODEL if item.light else None)
            self.stats.light_frames += item.light
            count(self.stats, item.planned, patches is not None)
            item.time, item.frame, item.planned, item.job = f.time, None, None, None  # LR planes: not needed downstream
            self._put(self.q_rebuilt, item)
            self._proc_s = 0.9 * self._proc_s + 0.1 * (self.clock() - start)

    def _patches(self, item: _Item, done: float) -> list[HRPatch] | None:
        """The frame's SR patches, waited for until shortly before its deadline (None: late)."""
        if item.job is None:
            return None
        wait = None if item.deadline is None else max(0.0, item.deadline - done - self._proc_s)
        patches = item.job.wait(wait)
        if patches is None:
            self.stats.sr_late_frames += 1
            self.controller.sr_late()
        return patches

    def _encode(self) -> None:
        sink: Sink | None = None
        t0, last = None, -1
        try:
            for item in self._items(self.q_rebuilt):
                # output timestamps follow the input's, so dropped frames leave a gap in time
                # rather than speeding the video up
                t0 = item.time if t0 is None else t0
                index = last + 1 if item.time is None else max(last + 1, int(round((item.time - t0) * self.fps)))
                last = index
                hr = item.hr
                if sink is None:
                    h, w = hr.y.shape
                    settings = EncodeSettings(fps=self.fps, crf=self.options.crf, preset=self.options.preset,
                                              keyint=max(int(round(self.fps * self.options.segment_s)), 1),
                                              threads=self.options.encoder_threads,
                                              time_base=getattr(self.frames, "time_base", None),
                                              key_interval_s=self.options.segment_s)
                    sink = self.make_sink(w, h, settings)
                    self.stats.output_size = (w, h)
                began = self.clock()
                sink.write(hr.y, hr.u, hr.v, index, time=item.time)
                self.stats.repeated_frames = getattr(sink, "repeated_frames", 0)
                now = self.clock()
                self._enc_s = 0.9 * self._enc_s + 0.1 * (now - began)
                self.stats.first_out = self.stats.first_out or now
                self.stats.last_out = now
                self.stats.frames_out += 1
                self.stats.latencies_s.append(now - item.arrival)
                if item.deadline is not None and now > item.deadline:
                    self.stats.late += 1
                if self.on_frame is not None:
                    self.on_frame(self.stats)
        finally:
            self.stats.finished = self.clock()
            if sink is not None:
                sink.abort() if self._errors else sink.close()  # abort: files are discarded, HLS finalised

