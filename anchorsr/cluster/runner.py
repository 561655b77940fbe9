"""``anchorsr serve --ray``: each stream's pipeline in a Ray actor, the ingest front where serve runs.

The front (listeners, HTTP, ``/status``, ``/metrics``, the LR copy) stays in the serve process.
For each accepted publisher, :class:`RayStream` reads the live-profile H.264 packets (no
decoding: ``VideoSource.live_packets``), sends them in batches to a :class:`StreamWorker` actor
that Ray places on a node with a free CPU (``cpus_per_stream``, spread over the nodes), and
shows the figures the actor returns with each batch.

Faults: when the actor dies (its node was lost), the front starts a new one (Ray places it on a
live node) that continues the same HLS playlist after an ``#EXT-X-DISCONTINUITY``. The front keeps
the packets sent since the last key frame at or before the end of the finished segments (read
from the playlist); the new actor gets them again from that key frame and writes only the frames
after those segments, so no frame already written is lost or written twice. When that key frame
is no longer held, it starts at the next one held, or waits for the next one to arrive.
``/status`` counts the restarts.

Audio: the input's audio packets go in the same batches (``WireAudio``, after one
``AudioHeader`` per actor), undecoded; the actor's sink passes them through as ``serve`` does in
process (``--no-audio`` drops them here). The front holds the audio of the held video's time
span too, so a restarted actor's segments have their audio.
"""

from __future__ import annotations

import collections
import glob
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import replace

from ..errors import ConfigError, SourceError
from ..pipeline.options import PipelineOptions
from ..stream.packets import AudioHeader, StreamParams, WireAudio, WirePacket, audio_header, wire_audio, wire_packets

log = logging.getLogger(__name__)

BATCH_PACKETS = 8  # a batch goes to the actor at this many packets or after BATCH_S
BATCH_S = 0.1
TRIM_S = 1.0  # how often the held packets are cut back to what a restart could need
MAX_HELD = 3600  # packets held at most (two minutes at 30 fps) when no key frame comes
MAX_HELD_AUDIO = 12000  # audio packets held at most (over four minutes of 48 kHz AAC)
HELD_AUDIO_MARGIN_S = 1.0  # audio held from this long before the first held video packet
MAX_RESTARTS = 8  # restarts of one stream before it is given up
SR_WORKER_CPUS = 1.0  # CPUs an SR worker actor asks for where the cluster has no GPU
SR_WORKER_RESTARTS = 8  # restarts of one SR worker actor before it is given up
SR_START_S = 300.0  # longest wait for the SR workers to load their model and be measured
END_TIMEOUT_S = 300.0  # longest wait for an actor to finish its stream after the input ended (start-up included)
NODE_DEATH_WAIT_S = 15.0  # longest wait, before a restart, for Ray to mark a lost actor's node dead
PLAYLIST = "index.m3u8"


def _exc_line(exc: BaseException, last: bool = False) -> str:
    """One line of an exception's message for a one-line error: the first, or the ``last``
    (where Ray puts the cause under its own traceback); the type's name when it has none."""
    lines = str(exc).strip().splitlines()
    return (lines[-1] if last else lines[0]) if lines else type(exc).__name__


def import_ray():
    """Ray, or a one-line error saying how to install it (it is an optional extra)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray, which is not installed: pip install 'anchorsr[cluster]' "
                          "(or ray==2.60.0)") from None
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"expected --ray local, auto or HOST:PORT of a Ray head node, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def finished_seconds(playlist: str, prefix: str) -> float:
    """Seconds of output in the finished segments of ``playlist`` whose names start with ``prefix``
    (0 when there is no playlist yet). A media playlist lists a segment only once it is complete."""
    try:
        with open(playlist) as fh:
            lines = [ln.strip() for ln in fh]
    except OSError:
        return 0.0
    total, duration = 0.0, None
    for ln in lines:
        if ln.startswith("#EXTINF:"):
            duration = float(ln[len("#EXTINF:"):].split(",")[0])
        elif ln and not ln.startswith("#"):
            if duration is not None and os.path.basename(ln).startswith(prefix):
                total += duration
            duration = None
    return total


def end_playlist(playlist: str) -> None:
    """Close an event playlist left open (its last writer died): add ``#EXT-X-ENDLIST``."""
    try:
        with open(playlist) as fh:
            text = fh.read()
        if text and "#EXT-X-ENDLIST" not in text:
            with open(playlist, "a") as fh:
                fh.write(("" if text.endswith("\n") else "\n") + "#EXT-X-ENDLIST\n")
    except OSError as exc:
        log.warning("cannot finalise %s: %s", playlist, exc)


def _signal_handlers() -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}


def _restore(handlers: dict) -> None:
    for sig, handler in handlers.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


class RayCluster:
    """The connection to a Ray cluster: ``address`` "local" starts one in this process, "auto"
    joins the one started on this machine (``ray start``), HOST:PORT joins that head node."""

    def __init__(self, address: str, cpus_per_stream: float = 1.0, num_cpus: int | None = None, *,
                 sr_workers: int = 0, model: str = "default", options: PipelineOptions | None = None) -> None:
        if not cpus_per_stream > 0:
            raise ConfigError(f"expected CPUs per stream > 0, got {cpus_per_stream}")
        if sr_workers < 0:
            raise ConfigError(f"expected SR workers >= 0, got {sr_workers}")
        ray = import_ray()
        self.address, self.cpus_per_stream = address, cpus_per_stream
        if address not in ("local", "auto"):
            _check_reachable(address)
        # the actors import the same anchorsr as this process where that path exists (one machine,
        # or a shared folder); elsewhere the anchorsr installed on the node
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
        kwargs = {"runtime_env": {"env_vars": {"PYTHONPATH": path}}, "include_dashboard": False,
                  "configure_logging": False}
        self.started_here = not ray.is_initialized()
        handlers = _signal_handlers()
        try:
            if not self.started_here:
                pass  # a test or an embedding program connected already
            elif address == "local":
                ray.init(num_cpus=num_cpus, **kwargs)
            else:
                ray.init(address=address, **kwargs)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError from Ray's start-up
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: {_exc_line(exc)}") from None
        finally:  # Ray's driver installs its own; serve's finalise every stream on SIGTERM
            _restore(handlers)
        from .actors import StreamWorker

        self.ray = ray
        self.actor_class = ray.remote(StreamWorker)
        self.coordinator, self.sr_workers = None, []
        if sr_workers:
            self._start_sr_workers(sr_workers, model, options or PipelineOptions())

    def _start_sr_workers(self, n: int, model: str, options: PipelineOptions) -> None:
        """``n`` SR worker actors (a GPU share each where the cluster has GPUs, else a CPU) and
        the coordinator that gives them the global budget (``cluster.srworkers``)."""
        from .srworkers import SRCoordinator, SRWorker

        gpus = float(self.ray.cluster_resources().get("GPU", 0.0))
        if gpus > 0:
            share = min(1.0, gpus / n)
            resources, device = {"num_gpus": share, "num_cpus": 0}, "cuda"
        else:
            resources, device = {"num_cpus": SR_WORKER_CPUS}, options.device
            cpus = float(self.ray.cluster_resources().get("CPU", 0.0))
            if n * SR_WORKER_CPUS > cpus:
                raise ConfigError(f"--ray-sr-workers {n}: the cluster has no GPU and {cpus:g} CPUs; each SR "
                                  f"worker asks for {SR_WORKER_CPUS:g} CPU (and each stream for its own)")
        worker = self.ray.remote(SRWorker)
        names = [f"sr-{i}" for i in range(n)]
        # Ray restarts a lost worker (on any node with room); the coordinator takes it back
        # once it answers again. Calls in flight when it died fail (max_task_retries 0): their
        # frames are rebuilt by reuse, as when SR is late.
        self.sr_workers = [worker.options(max_restarts=SR_WORKER_RESTARTS, max_task_retries=0,
                                          scheduling_strategy="SPREAD", **resources).remote(
            name, model, options.scale, device, options.sr_engine) for name in names]
        try:
            self.ray.get([w.stats.remote() for w in self.sr_workers], timeout=SR_START_S)
        except self.ray.exceptions.GetTimeoutError:
            raise ConfigError(f"{n} SR worker(s) asking for {resources} could not all start within "
                              f"{SR_START_S:g} s on the cluster ({self.ray.cluster_resources()})") from None
        except Exception as exc:  # the model failed to load in the worker
            raise ConfigError(f"an SR worker failed to start: {_exc_line(exc, last=True)}") from None
        self.coordinator = self.ray.remote(SRCoordinator).options(num_cpus=0, max_concurrency=64).remote(
            self.sr_workers, names, options.scale)
        try:
            self.ray.get(self.coordinator.record.remote(), timeout=SR_START_S)  # the workers measured
        except Exception as exc:  # noqa: BLE001 - a worker lost while it was measured, or too slow
            raise ConfigError(f"the SR workers could not be measured: {_exc_line(exc, last=True)}") from None
        self.sr_resources = resources

    def spawn(self, *args, **kwargs):
        """A StreamWorker actor wherever Ray finds ``cpus_per_stream`` free CPUs, streams spread
        over the nodes; its restarts are the front's (a new actor continues the stream)."""
        return self.actor_class.options(num_cpus=self.cpus_per_stream, max_restarts=0,
                                        scheduling_strategy="SPREAD").remote(*args, sr=self.coordinator, **kwargs)

    def wait_node_dead(self, node_id: str | None, timeout_s: float = NODE_DEATH_WAIT_S) -> bool:
        """Wait until Ray no longer lists ``node_id`` as alive (True), or ``timeout_s`` (False:
        the node lives on; its actor died for another reason). A lost node's actors die before
        the cluster has marked the node itself dead, and until then the scheduler may place the
        replacement actor on it, where it dies again: a second restart and discontinuity."""
        if not node_id:
            return True
        end = time.monotonic() + timeout_s
        while True:
            try:
                alive = any(n.get("NodeID") == node_id and n.get("Alive") for n in self.ray.nodes())
            except Exception:  # noqa: BLE001 - the cluster is unreachable: the spawn will say so
                return True
            if not alive:
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.2)

    def stats(self) -> dict:
        try:
            nodes = [n for n in self.ray.nodes() if n.get("Alive")]
            return {"address": self.address, "nodes": len(nodes),
                    "cpus": self.ray.cluster_resources().get("CPU", 0.0),
                    "free_cpus": self.ray.available_resources().get("CPU", 0.0),
                    "gpus": self.ray.cluster_resources().get("GPU", 0.0),
                    "cpus_per_stream": self.cpus_per_stream, "sr_workers": self.sr_stats()}
        except Exception as exc:  # the cluster went away: say so in /status rather than fail it
            return {"address": self.address, "error": str(exc)}

    def sr_stats(self) -> dict | None:
        """The SR workers' figures (None: SR runs in each stream's actor)."""
        if self.coordinator is None:
            return None
        try:
            return {**self.ray.get(self.coordinator.stats.remote(), timeout=10), "resources": self.sr_resources}
        except Exception as exc:  # noqa: BLE001 - shown in /status
            return {"error": _exc_line(exc)}

    def stream(self, source, session, options: PipelineOptions, model: str, name: str) -> "RayStream":
        return RayStream(self, source, session, options, model, name)

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()


# the figures of a stream before its actor has answered (the keys of LivePipeline.snapshot)
_EMPTY = {"frames_in": 0, "frames_out": 0, "fps": 0.0, "dropped": 0, "late": 0, "sr_late_frames": 0,
          "corrupt_packets": 0, "missing_frames": 0, "restarts": 0, "sr_share": 0.0, "budget_fraction": 0.0,
          "target_budget_fraction": 0.0, "latency_ms": {"median": None, "p95": None}, "latency_target_ms": 0.0,
          "output_size": None, "queues": {"decoded": 0, "planned": 0, "rebuilt": 0}, "error": None}
_SUMMED = ("frames_in", "dropped", "late", "sr_late_frames", "corrupt_packets", "missing_frames", "restarts")


class _Counts:
    def __init__(self, stream: "RayStream") -> None:
        self._stream = stream

    @property
    def frames_out(self) -> int:
        return self._stream.snapshot()["frames_out"]


class RayStream:
    """One publisher's stream run by actors (interface of ``LivePipeline`` that ``serve`` uses:
    ``start``, ``stop``, ``wait``, ``running``, ``snapshot``, ``stats.frames_out``)."""

    def __init__(self, cluster: RayCluster, source, session, options: PipelineOptions, model: str,
                 name: str) -> None:
        self.cluster, self.ray = cluster, cluster.ray
        self.source, self.session, self.options, self.model, self.name = source, session, options, model, name
        self.playlist = os.path.join(session.folder, PLAYLIST)
        self.stats = _Counts(self)
        self.restarts = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-ray", daemon=True)
        self._held: collections.deque[WirePacket] = collections.deque()  # sent packets a restart may need
        self._batch: list[WirePacket | WireAudio | AudioHeader] = []
        self._batch_video = 0
        self._held_audio: collections.deque[WireAudio] = collections.deque()
        self._audio_head: AudioHeader | None = None  # the audio's parameters, once its first packet came
        self._audio_off = False  # the audio cannot be carried (said once in the log)
        self._head_sent = False  # the current actor has the audio header
        self._refs: list = []
        self._actor = None
        self._inc = -1  # incarnation: 0 for the first actor, +1 per restart
        self._node_id: str | None = None  # the node of the current actor, from its first answer
        self._start_time: float | None = None  # input time the incarnation starts writing at
        self._last: dict | None = None  # the current actor's last figures
        self._base = {k: 0 for k in (*_SUMMED, "frames_out")}  # figures of the dead actors
        self._await_key = False
        self._lock = threading.Lock()

    # -- the interface serve uses ---------------------------------------------------------------
    def start(self) -> "RayStream":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def snapshot(self) -> dict:
        with self._lock:
            s = {**_EMPTY, **(self._last or {})}
            for k in _SUMMED:
                s[k] = self._base[k] + (s.get(k) or 0)
            s["frames_out"] = self._base["frames_out"] + (s.get("frames_out") or 0)
        s["name"], s["running"] = self.name, self.running
        s["actor_restarts"] = self.restarts
        s["restarts"] += self.restarts
        s["held_packets"] = len(self._held)
        s["error"] = self.error or s.get("error")
        return s

    # -- the front's loop ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.params = StreamParams.of(self.source, self.name)
            self._spawn(None, [])
            last_send = last_trim = time.monotonic()
            for wp in wire_packets(self.source):
                if self._await_key and not wp.key:
                    self._take_audio()
                    continue  # a restart found no key frame to start from: the next one
                self._await_key = False
                if self._start_time is None:
                    self._start_time = wp.time
                self._take_audio()
                self._batch.append(wp)
                self._batch_video += 1
                now = time.monotonic()
                if self._batch_video >= BATCH_PACKETS or now - last_send >= BATCH_S:
                    self._flush()
                    last_send = now
                self._poll()
                if now - last_trim >= TRIM_S:
                    self._trim()
                    last_trim = now
                if self._stop.is_set():
                    break
            self._finish()
        except Exception as exc:  # noqa: BLE001 - shown in /status, the server goes on
            self.error = str(exc) or type(exc).__name__
            log.error("%s: %s", self.name, self.error)
        finally:
            self.source.close()
            self._kill()
            end_playlist(self.playlist)

    def _spawn(self, write_from: float | None, replay: list[WirePacket]) -> None:
        self._inc += 1
        self._start_time = write_from
        self._last = None
        self._refs = []
        self._spawned_at = time.monotonic()
        self._actor = self.cluster.spawn(self.params, self.session.folder, self.options, model=self.model,
                                         segment_prefix=self._prefix(self._inc), append=self._inc > 0,
                                         write_from=write_from)
        self._head_sent = False
        if replay:
            if self._audio_head is not None:
                replay = [self._audio_head, *replay]
                self._head_sent = True
            self._refs.append(self._actor.feed.remote([replace(p, replay=True) for p in replay]))

    @staticmethod
    def _prefix(inc: int) -> str:
        return "seg" if inc == 0 else f"seg-r{inc}-"

    def _take_audio(self) -> None:
        """Move the audio packets demuxed so far into the batch (the first with the header)."""
        feed = self.source.audio
        if feed is None:
            return
        packets = feed.take(None)
        if not packets or self._audio_off:
            return
        if self._audio_head is None:
            self._audio_head = audio_header(feed, packets[0])
            if self._audio_head is None:
                self._audio_off = True
                return
        self._batch.extend(wire_audio(feed, packets))

    def _flush(self) -> None:
        if not self._batch:
            return
        if self._audio_head is not None and not self._head_sent:
            self._batch.insert(0, self._audio_head)
            self._head_sent = True
        # sent before the actor has answered once (it is starting): a backlog it must not shed
        batch = self._batch if self._last is not None else [replace(p, replay=True) for p in self._batch]
        self._refs.append(self._actor.feed.remote(batch))
        for p in self._batch:
            if isinstance(p, WirePacket):
                self._held.append(p)
            elif isinstance(p, WireAudio):
                self._held_audio.append(p)
        while len(self._held) > MAX_HELD:
            self._held.popleft()
        while len(self._held_audio) > MAX_HELD_AUDIO:
            self._held_audio.popleft()
        self._batch = []
        self._batch_video = 0

    def _poll(self, timeout_s: float = 0.0) -> None:
        """Take the actor's answers that have come; a dead actor is replaced."""
        if not self._refs:
            return
        ready, _ = self.ray.wait(self._refs, num_returns=len(self._refs), timeout=timeout_s)
        done = set(ready)
        for ref in [r for r in self._refs if r in done]:
            self._refs.remove(ref)
            try:
                self._update(self.ray.get(ref))
            except self.ray.exceptions.RayActorError as exc:
                self._restart(exc)
                return

    def _update(self, snap: dict) -> None:
        with self._lock:
            first, self._last = self._last is None, snap
        if first:
            self._node_id = snap.get("node_id")
            log.info("%s: actor %d running on node %s (host %s, pid %s), %.1f s after it was asked for",
                     self.name, self._inc, snap.get("node_id"), snap.get("host"), snap.get("pid"),
                     time.monotonic() - self._spawned_at)
        if snap.get("output_size") and self.session.uhd is None:
            self.session.uhd = tuple(snap["output_size"])
            self.session.write_master()

    def _resume_time(self) -> float | None:
        """Input time after the current actor's finished segments (None: from the start)."""
        done = finished_seconds(self.playlist, self._prefix(self._inc))
        first = (self._last or {}).get("first_time")
        if done <= 0:
            return self._start_time
        origin = first if first is not None else self._start_time
        return None if origin is None else origin + done

    def _trim(self) -> None:
        """Forget held packets before the key frame a restart would start from."""
        resume = self._resume_time()
        if resume is None:
            return
        keys = [i for i, p in enumerate(self._held) if p.key and p.time <= resume + 1e-6]
        for _ in range(keys[-1] if keys else 0):
            self._held.popleft()
        if self._held:
            while self._held_audio and self._held_audio[0].time < self._held[0].time - HELD_AUDIO_MARGIN_S:
                self._held_audio.popleft()

    def _restart(self, why: Exception) -> None:
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            raise SourceError(f"stream {self.name!r} lost its actor {self.restarts} times; giving up "
                              f"({_exc_line(why)})")
        resume = self._resume_time()
        log.warning("%s: its actor was lost (%s); restarting it from input time %s", self.name,
                    type(why).__name__, "the start" if resume is None else f"{resume:.3f} s")
        self._kill()
        if not self.cluster.wait_node_dead(self._node_id):
            log.info("%s: node %s is still alive; the new actor may be placed there", self.name, self._node_id)
        with self._lock:  # the dead actor's figures: its frames in finished segments count as out
            last = self._last or {}
            for k in _SUMMED:
                self._base[k] += last.get(k) or 0
            done_s = finished_seconds(self.playlist, self._prefix(self._inc))
            self._base["frames_out"] += min(last.get("frames_out") or 0, int(round(done_s * self.params.fps)))
            self._last = None
        for tmp in glob.glob(os.path.join(glob.escape(self.session.folder), "*.tmp")):
            try:  # the segment the dead actor was writing: it starts again from the held packets
                os.remove(tmp)
            except OSError:
                pass
        held = list(self._held)
        eps = 0.5 / self.params.fps
        start = None
        if resume is None:
            start = next((i for i, p in enumerate(held) if p.key), None)
        else:
            before = [i for i, p in enumerate(held) if p.key and p.time <= resume + eps]
            start = before[-1] if before else next((i for i, p in enumerate(held) if p.key), None)
        replay = held[start:] if start is not None else []
        if replay:  # the audio of that span (the sink drops what comes before its first frame)
            replay = [p for p in self._held_audio if p.time >= replay[0].time - HELD_AUDIO_MARGIN_S] + replay
        else:  # no key frame held: the new actor starts at the next one to arrive
            keys = [i for i, p in enumerate(self._batch) if p.key]
            self._batch = self._batch[keys[0]:] if keys else []
            self._batch_video = sum(isinstance(p, WirePacket) for p in self._batch)
            self._await_key = not keys
        self._spawn(None if resume is None else resume - eps, replay)
        if resume is not None and self._start_time is None:
            self._start_time = resume

    def _finish(self) -> None:
        """The input ended (or serve stops): the actor finishes and finalises the playlist."""
        while True:
            self._take_audio()
            self._flush()
            try:
                self._update(self.ray.get(self._actor.end.remote(END_TIMEOUT_S / 2), timeout=END_TIMEOUT_S))
                return
            except self.ray.exceptions.RayActorError as exc:
                self._restart(exc)
            except self.ray.exceptions.GetTimeoutError:
                raise SourceError(f"stream {self.name!r}: its actor did not finish within {END_TIMEOUT_S:g} s")

    def _kill(self) -> None:
        if self._actor is not None:
            try:
                self.ray.kill(self._actor, no_restart=True)
            except Exception:  # already dead with its node
                pass
