"""SR worker actors shared by every stream of a cluster, given their work by one global budget.

With ``serve --ray ... --ray-sr-workers N`` the stream actors do not run the SR network
themselves. The pieces, all plain Python (Ray is imported only where they run as actors):

* :class:`SRWorker`: one SR worker actor. It loads the network once and runs batches of anchor
  tasks, each an LR patch with its halo (``crop_task``), and skips a task whose frame's
  deadline has already passed. The front places it on a GPU (a fraction) where the cluster has
  one, else on a CPU.
* :class:`SRCoordinator`: the global budget (an actor). Each stream's chunk offers its anchors in
  plan order with their estimated gain (the scheduler's marginal drops in J), area and frame
  deadline, together with their tasks. Offers that arrive within a short round are allocated
  together by :func:`~anchorsr.cluster.budget.allocate_global` over the workers' measured
  speeds and backlogs; each stream keeps the prefix it is given, and the kept anchors go to the
  worker the allocation placed them on, each worker's calls in deadline order. A worker that a
  stream finds lost (its call failed with the actor gone) is left out of later rounds (the
  frames of its anchors are rebuilt by reuse) until Ray has restarted it (on any node with room:
  the front starts the workers with ``max_restarts``), reloaded its model and it has been
  measured again; then it rejoins. One that cannot be restarted stays out.
* :class:`RemoteSR`: the stream actor's side, in place of its ``SRPool``: ``submit_chunk``
  offers a group of frames and returns the kept prefix and one job per frame. A job hands back
  the frame's HR patches only when all of them arrived before the wait ends (the pipeline waits
  until shortly before the frame's deadline); otherwise the frame is rebuilt by reuse alone,
  as when the in-process SR pool is late.

Deadlines go between actors as wall-clock seconds (``time.time``): the nodes' clocks are taken
to be synchronised (NTP).
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
import uuid

import numpy as np

from ..types import AnchorPlan, CodedFrame, HRPatch, chroma_box
from .budget import Offer, Worker, allocate_global

log = logging.getLogger(__name__)

MARGIN_PX = 16  # LR context sent around an anchor: >= the network's halo (8) and chroma's (2x4)
ROUND_S = 0.02  # offers arriving within this long are allocated together
CALIBRATION_PX = 64  # side of the square patch a worker's speed is measured on
MAX_RECORD = 500  # rounds kept for inspection
OFFER_TIMEOUT_S = 30.0
REJOIN_S = 300.0  # longest wait for a lost worker to be restarted and answer again
REJOIN_DEAD_TRIES = 3  # calls that find a lost worker dead before it is taken to be gone for good
STATS_WAIT_S = 2.0
MAX_DONE_KEYS = 100_000  # keys of the last tasks a worker ran, kept for inspection


def crop_task(frame: CodedFrame, box, key, scale: int, deadline: float) -> dict:
    """One anchor's work: its LR box grown by ``MARGIN_PX`` (clipped to the frame, origin even
    so that the chroma crop lines up), with the box in the crop's coordinates."""
    y0, y1, x0, x1 = (int(b) for b in box)
    cy0, cx0 = max(0, y0 - MARGIN_PX) & ~1, max(0, x0 - MARGIN_PX) & ~1
    cy1, cx1 = min(frame.height, y1 + MARGIN_PX), min(frame.width, x1 + MARGIN_PX)
    c0, c1, c2, c3 = chroma_box((cy0, cy1, cx0, cx1))
    return {"key": key, "y": np.ascontiguousarray(frame.y[cy0:cy1, cx0:cx1]),
            "u": np.ascontiguousarray(frame.u[c0:c1, c2:c3]),
            "v": np.ascontiguousarray(frame.v[c0:c1, c2:c3]),
            "box": (y0 - cy0, y1 - cy0, x0 - cx0, x1 - cx0), "scale": int(scale), "deadline": float(deadline),
            "area": float((y1 - y0) * (x1 - x0))}


def _calibration_task(scale: int) -> dict:
    rng = np.random.default_rng(0)
    n = CALIBRATION_PX + 2 * MARGIN_PX
    y = rng.integers(0, 256, (n, n), np.uint8)
    u, v = (rng.integers(0, 256, (n // 2, n // 2), np.uint8) for _ in range(2))
    frame = CodedFrame(0, None, None, "P", 0, y, u, v, None)
    return crop_task(frame, (MARGIN_PX, MARGIN_PX + CALIBRATION_PX, MARGIN_PX, MARGIN_PX + CALIBRATION_PX),
                     None, scale, math.inf)


class SRWorker:
    """One SR worker: the network (``model`` as ``--model``) loaded once on ``device``."""

    def __init__(self, name: str, model: str, scale: int, device: str = "cpu", engine: str = "auto") -> None:
        from ..pipeline.steps import make_patch_source

        self.name, self.scale = name, scale
        self.source = make_patch_source(model, scale, device, engine, realtime=True)
        set_threads = getattr(self.source, "set_threads", None)
        if set_threads is not None:
            set_threads(1)
        self.done: collections.deque = collections.deque(maxlen=MAX_DONE_KEYS)  # keys of the tasks run
        self.anchors_done = 0
        self.skipped_late = 0
        self.busy_s = 0.0
        self.px_done = 0.0
        self.run([_calibration_task(scale)])  # the first call loads or compiles what it needs
        self.done.clear()
        self.px_done = self.busy_s = 0.0
        self.anchors_done = 0

    def run(self, tasks: list[dict]) -> list[HRPatch | None]:
        """HR (Y, U, V) per task, None for one whose deadline passed before it was reached."""
        out: list[HRPatch | None] = []
        for t in tasks:
            if time.time() > t["deadline"]:
                self.skipped_late += 1
                out.append(None)
                continue
            start = time.perf_counter()
            frame = CodedFrame(0, None, None, "P", 0, t["y"], t["u"], t["v"], None)
            out.append(self.source(frame, np.asarray([t["box"]], np.int64), t["scale"])[0])
            self.busy_s += time.perf_counter() - start
            self.px_done += t["area"]
            self.anchors_done += 1
            if t["key"] is not None:
                self.done.append(t["key"])
        return out

    def stats(self) -> dict:
        return {"name": self.name, "anchors_done": self.anchors_done, "skipped_late": self.skipped_late,
                "busy_s": round(self.busy_s, 3),
                "px_per_s": round(self.px_done / self.busy_s) if self.busy_s > 0 else None}

    def done_keys(self) -> list:
        return list(self.done)


def plan_round(pending: list[dict], speeds: dict[str, float], free_at: dict[str, float], now: float):
    """One round of the global budget: ``allocate_global`` over the pending offers.

    pending: dicts with ``offer`` (an :class:`Offer`) and ``frames`` (the frame of each pick);
    speeds, free_at: per live worker, LR pixels/s and when its backlog ends (wall seconds).
    Returns the allocation, the worker states it started from, and per worker the calls to make,
    ``[(deadline, slot index, [picks])]`` in deadline order (one call per stream frame).
    """
    start = {n: max(now, free_at.get(n, now)) for n in speeds}
    workers = [Worker(n, speeds[n], start[n]) for n in sorted(speeds)]
    alloc = allocate_global([p["offer"] for p in pending], workers)
    calls: dict[str, dict[tuple[int, int], list[int]]] = {w.name: {} for w in workers}
    for i, p in enumerate(pending):
        o = p["offer"]
        for k, wname in enumerate(alloc.placement[o.stream]):
            calls[wname].setdefault((i, int(p["frames"][k])), []).append(k)
    ordered = {w: sorted(((float(pending[i]["offer"].deadlines[ks[0]]), i, ks) for (i, _), ks in c.items()),
                         key=lambda c: (c[0], c[1], c[2][0]))
               for w, c in calls.items()}
    busy = {w.name: sum(j[1] for j in w.jobs) for w in workers}
    return alloc, start, ordered, busy


class SRCoordinator:
    """The global SR budget over ``workers`` (SR worker actor handles, see the module docstring)."""

    def __init__(self, workers: list, names: list[str], scale: int, round_s: float = ROUND_S) -> None:
        import ray

        self.ray, self.round_s = ray, round_s
        self.handles = dict(zip(names, workers))
        self.speeds: dict[str, float] = {}
        self._task = _calibration_task(scale)
        for name, w in self.handles.items():
            self.speeds[name] = self._measure(w)
        self.free_at = {n: 0.0 for n in self.handles}
        self.dropped: list[str] = []  # left out of the rounds: lost, restarting or gone for good
        self.rejoined: list[str] = []  # lost, restarted and measured again (one entry per return)
        self.rounds: list[dict] = []
        self.last_stats: dict[str, dict] = {}
        self.offered = self.kept = 0
        self._lock = threading.Lock()
        self._round_lock = threading.Lock()
        self._pending: list[dict] = []

    def offer(self, stream: str, gains, areas, deadlines, frames, tasks: list[dict]) -> dict:
        """A stream's offer (plan order); returns ``kept`` (the prefix length) and ``calls``:
        ``[(picks, ref, worker name)]``, the worker calls that compute the kept picks."""
        slot = {"offer": Offer(stream, np.asarray(gains, float), np.asarray(areas, float),
                               np.asarray(deadlines, float)),
                "frames": np.asarray(frames, int), "tasks": tasks, "done": threading.Event()}
        with self._lock:
            self._pending.append(slot)
        time.sleep(self.round_s)  # other streams' offers join the round
        with self._round_lock:
            if not slot["done"].is_set():
                self._round()
        return slot["result"]

    def _measure(self, handle, timeout_s: float | None = None) -> float:
        """A worker's speed in LR pixels per second, measured with the call's overhead as
        dispatched (median of three calls on a calibration patch)."""
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            self.ray.get(handle.run.remote([self._task]), timeout=timeout_s)
            times.append(time.perf_counter() - t0)
        return CALIBRATION_PX ** 2 / max(float(np.median(times)), 1e-6)

    def lost(self, name: str) -> None:
        """A stream's call to worker ``name`` failed because the worker is gone: the next rounds
        leave it out (the anchors it held are not redone; their frames are rebuilt by reuse), and
        a thread waits for Ray to restart it; measured again, it rejoins the rounds."""
        with self._lock:
            if name not in self.handles or name in self.dropped:
                return
            log.warning("SR worker %s lost; left out until it is restarted", name)
            self.dropped.append(name)
        threading.Thread(target=self._rejoin, args=(name,), name=f"rejoin-{name}", daemon=True).start()

    def _rejoin(self, name: str) -> None:
        handle, end = self.handles[name], time.monotonic() + REJOIN_S
        died = 0  # calls that found it dead: a call sent just before Ray saw it die can fail so too
        while True:
            try:  # a call to a restarting actor waits for it; to one gone for good it fails at once
                speed = self._measure(handle, timeout_s=max(end - time.monotonic(), 0.1))
                break
            except self.ray.exceptions.GetTimeoutError:
                log.warning("SR worker %s was not restarted within %g s; it stays out", name, REJOIN_S)
                return
            except self.ray.exceptions.ActorUnavailableError:
                if time.monotonic() < end:
                    time.sleep(0.5)  # the call reached it while it was being restarted: again
                    continue
                log.warning("SR worker %s was not restarted within %g s; it stays out", name, REJOIN_S)
                return
            except self.ray.exceptions.RayActorError:  # dead, perhaps for good (killed, no restarts left)
                died += 1
                if died < REJOIN_DEAD_TRIES:
                    time.sleep(1.0)
                    continue
                log.warning("SR worker %s cannot be restarted; it stays out", name)
                return
        with self._lock:
            self.speeds[name] = speed
            self.free_at[name] = 0.0
            self.dropped.remove(name)
            self.rejoined.append(name)
        log.warning("SR worker %s restarted and measured again (%.0f px/s); it rejoins", name, speed)

    def _round(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        with self._lock:
            live = {n: s for n, s in self.speeds.items() if n not in self.dropped}
        if not live:
            for p in pending:
                p["result"] = {"kept": 0, "calls": []}
                p["done"].set()
            return
        now = time.time()
        try:
            alloc, start, ordered, busy = plan_round(pending, live, self.free_at, now)
        except Exception:  # noqa: BLE001 - a bad offer: this round's streams go on by reuse
            log.exception("SR round failed")
            for p in pending:
                p["result"] = {"kept": 0, "calls": []}
                p["done"].set()
            return
        results = {i: [] for i in range(len(pending))}
        for wname, calls in ordered.items():
            handle = self.handles[wname]
            for _, i, picks in calls:
                ref = handle.run.remote([pending[i]["tasks"][k] for k in picks])
                results[i].append((picks, ref, wname))
            self.free_at[wname] = start[wname] + busy[wname]
        self.rounds.append({"time": now, "offers": [p["offer"] for p in pending],
                            "workers": {n: (live[n], start[n]) for n in live},
                            "kept": dict(alloc.kept), "placement": {k: list(v) for k, v in alloc.placement.items()}})
        del self.rounds[:-MAX_RECORD]
        for i, p in enumerate(pending):
            self.offered += len(p["offer"])
            self.kept += alloc.kept[p["offer"].stream]
            p["result"] = {"kept": alloc.kept[p["offer"].stream], "calls": results[i]}
            p["done"].set()

    def record(self) -> list[dict]:
        return list(self.rounds)

    def stats(self) -> dict:
        live = [n for n in self.handles if n not in self.dropped]
        refs = {n: self.handles[n].stats.remote() for n in live}
        # a worker answers between its calls: what has not come within the wait is shown as last seen
        ready, _ = self.ray.wait(list(refs.values()), num_returns=len(refs), timeout=STATS_WAIT_S)
        ready = set(ready)
        workers = []
        for n, ref in refs.items():
            if ref in ready:
                try:
                    self.last_stats[n] = self.ray.get(ref)
                except Exception:  # noqa: BLE001 - lost since the last round
                    self.last_stats[n] = {"name": n, "error": "lost"}
            s = dict(self.last_stats.get(n, {"name": n}))
            s["measured_px_per_s"] = round(self.speeds[n])
            workers.append(s)
        return {"count": len(live), "dropped": list(self.dropped), "rejoined": list(self.rejoined),
                "rounds": len(self.rounds),
                "anchors_offered": self.offered, "anchors_kept": self.kept, "workers": workers,
                "anchors_done": sum(w.get("anchors_done", 0) for w in workers),
                "late": sum(w.get("skipped_late", 0) for w in workers)}


class _RemoteJob:
    """One frame's anchors computed by SR workers: ``wait`` as ``SRJob.wait``."""

    def __init__(self, owner: "RemoteSR", refs: list, n: int, deadline: float | None) -> None:
        self.owner, self.refs, self.n, self.deadline = owner, refs, n, deadline
        self.cancelled = False

    def wait(self, timeout_s: float | None) -> list[HRPatch] | None:
        ray, o = self.owner.ray, self.owner
        refs = [r for _, r, _ in self.refs]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        if len(ready) < len(refs):
            o.late_anchors += self.n
            return None
        patches: list = [None] * self.n
        for slots, ref, wname in self.refs:
            try:
                part = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the frame is rebuilt by reuse
                log.warning("%s: SR worker %s call failed (%s)", o.name, wname, type(exc).__name__)
                o.failed_anchors += self.n
                if isinstance(exc, ray.exceptions.RayActorError):  # the worker is gone
                    o.coordinator.lost.remote(wname)
                return None
            for j, p in zip(slots, part):
                patches[j] = p
        if any(p is None for p in patches):
            o.late_anchors += self.n
            return None
        if self.deadline is not None and time.monotonic() > self.deadline:
            o.pasted_after_deadline += 1  # never expected: the wait ends before the deadline
        o.pasted_anchors += self.n
        return patches


class RemoteSR:
    """A stream actor's SR through the coordinator (in place of its ``SRPool``)."""

    def __init__(self, coordinator, name: str) -> None:
        import ray

        self.ray, self.coordinator, self.name = ray, coordinator, name
        self.tag = f"{name}/{uuid.uuid4().hex[:8]}"
        self.chunks = 0
        self.offered_anchors = self.kept_anchors = 0
        self.pasted_anchors = self.late_anchors = self.failed_anchors = self.pasted_after_deadline = 0

    def submit_chunk(self, frames: list[CodedFrame], ts: list[int], plan: AnchorPlan, gains: np.ndarray | None,
                     deadlines: list[float | None], scale: int) -> tuple[AnchorPlan, list[_RemoteJob | None]]:
        """Offer the anchors of the frames at plan offsets ``ts`` (plan order); returns the kept
        plan and one job per frame (None: no kept anchor there)."""
        wanted = set(ts)
        sel = [i for i in range(len(plan)) if int(plan.frames[i]) in wanted]
        empty = AnchorPlan(plan.chunk_start, plan.n_frames, plan.grid)
        if not sel:
            return empty, [None] * len(frames)
        self.chunks += 1
        key_chunk = f"{self.tag}/{plan.chunk_start}/{self.chunks}"
        by_t = dict(zip(ts, range(len(ts))))
        boxes, areas = plan.grid.boxes()[plan.patches[sel]], plan.grid.areas()[plan.patches[sel]].astype(float)
        if gains is not None and len(gains) >= len(plan):
            g = np.maximum(np.asarray(gains, float)[sel], 0.0)
        else:  # no marginal gains (a plan file, a scheduler without them): plan order, falling
            g = areas * (len(sel) - np.arange(len(sel))) / len(sel)
        mono, wall = time.monotonic(), time.time()
        due = []
        for i in sel:
            d = deadlines[by_t[int(plan.frames[i])]]
            due.append(math.inf if d is None else wall + (d - mono))
        tasks = [crop_task(frames[by_t[int(plan.frames[i])]], boxes[j], (self.tag, key_chunk, j), scale, due[j])
                 for j, i in enumerate(sel)]
        fr = [int(plan.frames[i]) for i in sel]
        try:
            res = self.ray.get(self.coordinator.offer.remote(key_chunk, g, areas, due, fr, tasks),
                               timeout=OFFER_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - no coordinator: reuse alone for this chunk
            log.warning("%s: the SR coordinator did not answer (%s)", self.name, type(exc).__name__)
            return empty, [None] * len(frames)
        k = int(res["kept"])
        self.offered_anchors += len(sel)
        self.kept_anchors += k
        kept_idx = sel[:k]
        kept = AnchorPlan(plan.chunk_start, plan.n_frames, plan.grid, plan.frames[kept_idx], plan.patches[kept_idx])
        # per frame: the worker calls holding its picks, and each pick's place among the frame's
        order = {}  # pick -> (frame position, index among its frame's kept boxes)
        seen: dict[int, int] = {}
        for j in range(k):
            t = fr[j]
            order[j] = (by_t[t], seen.get(t, 0))
            seen[t] = seen.get(t, 0) + 1
        per_frame: dict[int, list] = {}
        for picks, ref, wname in res["calls"]:
            pos = order[picks[0]][0]
            per_frame.setdefault(pos, []).append(([order[p][1] for p in picks], ref, wname))
        jobs = [None if pos not in per_frame else
                _RemoteJob(self, per_frame[pos], seen[ts[pos]], deadlines[pos]) for pos in range(len(frames))]
        return kept, jobs

    def stats(self) -> dict:
        return {"remote": True, "chunks_offered": self.chunks, "anchors_offered": self.offered_anchors,
                "anchors_kept": self.kept_anchors, "anchors_pasted": self.pasted_anchors,
                "anchors_late": self.late_anchors, "anchors_failed": self.failed_anchors,
                "pasted_after_deadline": self.pasted_after_deadline}

    def close(self) -> None:
        pass
