"""``anchorsr serve``: accept live streams, enhance each one, publish HLS over HTTP.

Ingest, one thread per ``--listen`` URL: TCP (``tcp://HOST:PORT``) and UDP use FFmpeg's listen
modes, one publisher at a time; RTMP (``rtmp://HOST:PORT/APP[/KEY]``) accepts any number of
publishers, each checked against the stream keys (``rtmp.py``); SRT (``srt://HOST:PORT``) runs
an ffmpeg relay process per publisher (``srt.py``). Every publisher gets a :class:`Session`
folder and a :class:`LivePipeline`; when its source ends (or sends nothing for
``read_timeout_s``), a publisher of the same stream name that comes within
``reconnect_grace_s`` continues the session (``reconnect.py``), else the HLS is finalised. All streams share one SR worker pool. A small HTTP
server (localhost unless told otherwise) serves the HLS folders, the watch page, ``/status``
and ``/metrics``.
With ``ray`` (a Ray cluster's address) each stream's pipeline runs in a cluster actor instead
(``anchorsr.cluster.runner``); this process keeps the listeners and the HTTP side.
"""

from __future__ import annotations

import functools
import re
import http.server
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import AnchorsrError, ConfigError
from ..stream import VideoSource
from .http import Handler
from .live import LivePipeline
from .options import PipelineOptions
from .reconnect import DEFAULT_GRACE_S, SessionSource
from .rtmp import Publisher, RtmpGate, StreamKey
from .runners import warm_up
from .session import Session, apply_retention, earlier_sessions
from .srpool import SRPool
from .srt import SrtRelay, check_relay
from .steps import make_patch_source

log = logging.getLogger(__name__)

_SCHEMES = ("tcp", "udp", "rtmp", "srt")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")  # a stream name is a folder name too


@dataclass(frozen=True)
class ServeOptions:
    """listen: input URLs (optionally ``NAME=URL``); out_dir: where the HLS folders go.

    live: each stream's pipeline settings (its audio passthrough and ``fps`` override included).
    ray: run each stream in a Ray actor on that cluster ("local", "auto" or HOST:PORT; None: in
    this process), each actor asking for ``ray_cpus_per_stream`` CPUs (the audio goes to it too).
    ray_sr_workers: with ``ray``, SR runs in this many SR worker actors shared by the streams
    under one global budget (``cluster.srworkers``); 0: in each stream's actor.
    """

    listen: tuple[str, ...] = ("tcp://127.0.0.1:9000",)
    out_dir: str = "hls"
    host: str = "127.0.0.1"
    http_port: int = 8080
    model: str = "default"
    sr_workers: int = 1
    accept_timeout_s: float = 1.0
    probe_timeout_s: float = 15.0
    read_timeout_s: float = 5.0
    reconnect_grace_s: float = DEFAULT_GRACE_S  # a publisher back within this continues its session
    handshake_timeout_s: float = 10.0  # an RTMP client that has not published by then is dropped
    transcode: bool = True
    retention: int = 0  # finished sessions kept per stream name (0: all)
    keys: tuple[StreamKey, ...] = ()  # RTMP stream keys that may publish (each names its stream)
    ffmpeg: str = "ffmpeg"  # the FFmpeg program that relays SRT (PyAV's FFmpeg has no libsrt)
    live: PipelineOptions = field(default_factory=PipelineOptions)
    ray: str | None = None
    ray_cpus_per_stream: float = 1.0
    ray_sr_workers: int = 0


def check_stream_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"expected a stream name of letters, digits, '_', '.' and '-' (up to 64, not "
                          f"starting with '.' or '-') for {what}, got {name!r}")
    return name


@dataclass(frozen=True)
class Listener:
    """One ``--listen`` URL. RTMP: ``rtmp://HOST:PORT/APP`` takes the keys of the config file,
    ``rtmp://HOST:PORT/APP/KEY`` also that one key (its stream named NAME, else KEY)."""

    name: str
    url: str
    scheme: str
    host: str
    port: int
    app: str = ""
    key: str = ""

    @staticmethod
    def parse(spec: str, index: int) -> "Listener":
        name, _, url = spec.partition("=") if "=" in spec.split("://")[0] else ("", "", spec)
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname or not parts.port:
            raise ConfigError(f"expected a listen URL such as tcp://127.0.0.1:9000, udp://127.0.0.1:9001, "
                              f"srt://127.0.0.1:9002 or rtmp://127.0.0.1:1935/live[/KEY], got {spec!r}")
        app, _, key = parts.path.strip("/").partition("/")
        if parts.scheme == "rtmp" and not app:
            raise ConfigError(f"expected an application name in the RTMP listen URL, as in "
                              f"rtmp://{parts.netloc}/live, got {spec!r}")
        name = name or (key if parts.scheme == "rtmp" and key else f"s{index}")
        check_stream_name(name, spec)
        if parts.scheme == "tcp" and "listen" not in parts.query:
            url += ("&" if parts.query else "?") + "listen=1"
        return Listener(name, url, parts.scheme, parts.hostname, parts.port, app, key)

    def check_free(self) -> None:
        """Fail at start-up, not in the accept loop, when the port is taken."""
        kind = socket.SOCK_DGRAM if self.scheme in ("udp", "srt") else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:  # as the listener itself: a closed connection's TIME_WAIT is no conflict
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.host, self.port))
            except OSError as exc:
                raise ConfigError(f"cannot listen on {self.host}:{self.port} ({self.url}): {exc.strerror}") from None

    def options(self, accept_timeout_s: float) -> dict[str, str]:
        """FFmpeg protocol options: wait ``accept_timeout_s`` for a publisher, then give up (the
        accept loop listens again), without limiting how long probing a connected stream takes.
        UDP has no connection: the socket stays bound while the open waits for a first datagram
        (the open timeout: a publisher starting meanwhile loses nothing), and a silence of the
        read timeout ends the stream."""
        if self.scheme == "rtmp":
            return {"listen": "1", "timeout": str(max(int(round(accept_timeout_s)), 1))}
        if self.scheme == "tcp":
            return {"listen_timeout": str(int(accept_timeout_s * 1000))}
        return {}


class Server:
    """The live server; ``start()`` returns once it listens, ``stop()`` finalises every stream."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.listeners = [Listener.parse(spec, i) for i, spec in enumerate(options.listen)]
        names = [li.name for li in self.listeners]
        if len(set(names)) != len(names):
            raise ConfigError(f"expected distinct stream names, got {names}")
        self.pipelines: dict[str, LivePipeline] = {}
        self.sessions: dict[str, Session] = {}
        self.sources: dict[str, SessionSource] = {}
        self._offer_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._waiting: set[threading.Thread] = set()  # listener threads waiting for a publisher
        self._gates: list[RtmpGate] = []
        self._relays: dict[str, SrtRelay] = {}
        self.pool: SRPool | None = None
        self.cluster = None  # a cluster.runner.RayCluster with ``ray``
        self.httpd: http.server.ThreadingHTTPServer | None = None

    @property
    def http_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "Server":
        if self.options.ray_sr_workers and self.options.ray is None:
            raise ConfigError("--ray-sr-workers runs SR in Ray actors: it needs --ray ADDRESS")
        for li in self.listeners:
            li.check_free()
        self._check_srt_relay()
        os.makedirs(self.options.out_dir, exist_ok=True)
        for name in {li.name for li in self.listeners} | {k.name for k in self.options.keys}:
            self._retain(name)
        if self.options.ray is None:
            live = self.options.live
            source = make_patch_source(self.options.model, live.scale, live.device, live.sr_engine, realtime=True)
            warm_up(self.options.live, source)  # compile kernels before the first publisher arrives
            self.pool = SRPool(source, self.options.sr_workers)
        else:  # Ray is imported only here: serve without --ray needs no Ray
            from ..cluster.runner import RayCluster

            self.cluster = RayCluster(self.options.ray, self.options.ray_cpus_per_stream,
                                      sr_workers=self.options.ray_sr_workers, model=self.options.model,
                                      options=self.options.live)
        handler = functools.partial(Handler, self, directory=os.path.abspath(self.options.out_dir))
        try:
            self.httpd = http.server.ThreadingHTTPServer((self.options.host, self.options.http_port), handler)
        except OSError as exc:
            raise ConfigError(f"cannot serve HTTP on {self.options.host}:{self.options.http_port}: "
                              f"{exc.strerror}") from None
        self.httpd.daemon_threads = True
        self._spawn(self.httpd.serve_forever, "http")
        for li in self.listeners:
            if li.scheme == "rtmp":
                gate = self._rtmp_gate(li)
                self._spawn(gate.serve, f"listen-{li.name}")
            elif li.scheme == "srt":
                self._spawn(functools.partial(self._srt_loop, li), f"listen-{li.name}")
            else:
                self._spawn(functools.partial(self._accept_loop, li), f"listen-{li.name}")
        return self

    def _spawn(self, target, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _open(self, url: str, options: dict[str, str], timeout_s) -> VideoSource:
        # with ``ray`` the audio packets go to the stream's actor with the video's (cluster.runner)
        return VideoSource(url, transcode=self.options.transcode, audio=self.options.live.audio,
                           fps=self.options.live.fps, options=options, timeout_s=timeout_s)

    def _accept_loop(self, li: Listener) -> None:
        """TCP and UDP: FFmpeg's listen mode, one publisher at a time."""
        me = threading.current_thread()
        while not self._stop.is_set():
            self._waiting.add(me)  # holds no stream: stop() need not wait for it
            try:
                src = self._open(li.url, li.options(self.options.accept_timeout_s),
                                 (self.options.probe_timeout_s, self.options.read_timeout_s))
            except AnchorsrError as exc:  # nobody published within the accept period, or a bad start
                log.debug("%s: %s", li.name, exc)
                continue
            finally:
                self._waiting.discard(me)
            if self._stop.is_set():  # came as the server stopped: not waited for, so not started
                src.close()
                return
            if self._run_session(li.name, src, li.url) is None:
                time.sleep(1.0)

    def _run_session(self, stream: str, src: VideoSource, where: str) -> str | None:
        """Enhance one publisher's stream until its input ends: as the next part of the
        stream's session that waits for its publisher to come back, or in a new session folder.
        The session's name, or None when no session folder could be made."""
        with self._offer_lock:
            name = self._continue(stream, src)
            if name is None:
                try:
                    session = Session(self.options.out_dir, stream, src, self.options.live.segment_s)
                except OSError as exc:
                    log.error("%s: cannot create a session folder in %s: %s", stream, self.options.out_dir, exc)
                    src.close()
                    return None
                name = session.name
                source = SessionSource(src, self.options.reconnect_grace_s)
                session.set_source(source)
                log.info("%s: publisher on %s, HLS in %s", name, where, session.folder)
                pipeline = self._pipeline(source, session, name)
                pipeline.start()
                self.sessions[name] = session
                self.sources[name] = source
                self.pipelines[name] = pipeline  # listed once started: /status never shows it as ended early
                self._spawn(functools.partial(self._finalise, stream, name), f"end-{name}")
            else:
                log.info("%s: publisher on %s continues the session", name, where)
        source, pipeline = self.sources[name], self.pipelines[name]
        while not source.wait_part(0.2) and pipeline.running:
            pass
        return name

    def _continue(self, stream: str, src: VideoSource) -> str | None:
        """The session of ``stream`` that took ``src`` as its next part (None: none waits)."""
        for name, source in list(self.sources.items()):
            session = self.sessions.get(name)
            if session is not None and session.stream == stream and source.waiting and source.offer(src):
                return name
        return None

    def _finalise(self, stream: str, name: str) -> None:
        """Wait for a session's pipeline to end (its last publisher gone for the grace period,
        or the server stopping), then finalise the session."""
        pipeline, session, source = self.pipelines[name], self.sessions[name], self.sources[name]
        while not pipeline.wait(0.2):
            if self._stop.is_set():
                source.end()
                pipeline.stop()
        source.end()
        session.close()
        error = pipeline.snapshot()["error"]
        if error:
            log.warning("%s ended with an error: %s", name, error)
        else:
            log.info("%s ended: %d frames in %d part(s)", name, pipeline.stats.frames_out, source.parts)
        self._retain(stream)

    # -- RTMP: many publishers per port, with stream keys (rtmp.py) ----------------------------
    def _rtmp_gate(self, li: Listener) -> RtmpGate:
        keys = {k.key: k for k in self.options.keys}
        if li.key:
            keys.setdefault(li.key, StreamKey(li.name, li.key))
        gate = RtmpGate(li.host, li.port, li.app, keys, functools.partial(self._rtmp_session, li), self._is_live,
                        handshake_timeout_s=self.options.handshake_timeout_s)
        try:
            gate.listen()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {li.host}:{li.port} ({li.url}): {exc.strerror}") from None
        self._gates.append(gate)
        return gate

    def _is_live(self, stream: str) -> bool:
        return any(s.stream == stream and self.pipelines.get(n) is not None and self.pipelines[n].running
                   and not (n in self.sources and self.sources[n].waiting) for n, s in list(self.sessions.items()))

    def _rtmp_session(self, li: Listener, pub: Publisher) -> None:
        """One RTMP connection: FFmpeg's listener at ``pub.backend_url`` (the gate relays to it)."""
        try:
            src = self._open(pub.backend_url, {"listen": "1", "timeout": "10"},
                             (self.options.probe_timeout_s, self.options.read_timeout_s))
        except AnchorsrError as exc:
            (log.warning if pub.stream else log.debug)("%s: no stream from %s: %s", li.name, pub.address, exc)
            return
        if pub.stream is None:  # cannot happen: FFmpeg only returns after the gate let publish through
            src.close()
            return
        self._run_session(pub.stream, src, f"{li.url} (from {pub.address})")

    # -- SRT: Debian's ffmpeg as a relay (srt.py) ----------------------------------------------
    def _check_srt_relay(self) -> None:
        if any(li.scheme == "srt" for li in self.listeners):
            check_relay(self.options.ffmpeg)

    def _srt_loop(self, li: Listener) -> None:
        """One SRT publisher at a time: a relay process per publisher, its MPEG-TS read from a pipe."""
        while not self._stop.is_set():
            relay = SrtRelay(self.options.ffmpeg, li.url, self.options.read_timeout_s)
            self._relays[li.name] = relay
            try:
                src = self._open(relay.input_url, {}, (None, self.options.read_timeout_s))
            except AnchorsrError as exc:
                relay.close()
                if not self._stop.is_set():
                    log.info("%s: no stream from the SRT relay: %s%s", li.name, exc, relay.why())
                    time.sleep(0.5)
                continue
            began = time.monotonic()
            try:
                name = self._run_session(li.name, src, li.url)
            finally:
                relay.close()
            log.info("SRT relay of %s used %.2f s of CPU over %.1f s", name or li.name, relay.cpu_s,
                     time.monotonic() - began)

    def _pipeline(self, src: SessionSource, session: Session, name: str):
        """The stream's runner: a LivePipeline here, or a stream of cluster actors with ``ray``."""
        if self.cluster is not None:
            return self.cluster.stream(src, session, self.options.live, self.options.model, name)
        return LivePipeline(src, src.fps, session.make_sink, self.pool, self.options.live, name=name)

    def _retain(self, stream: str) -> None:
        """Apply ``--retention`` to the finished sessions of ``stream`` (this run's and earlier ones)."""
        live = {n for n, p in list(self.pipelines.items()) if p.running}
        for removed in apply_retention(self.options.out_dir, stream, self.options.retention, live):
            self.pipelines.pop(removed, None)
            self.sessions.pop(removed, None)
            self.sources.pop(removed, None)

    def status(self) -> dict:
        streams = [p.snapshot() for p in list(self.pipelines.values())]
        for s in streams:
            s["playlist"] = f"/{s['name']}/index.m3u8"
            session = self.sessions.get(s["name"])
            if session is not None:
                s.update(session.info())
            source = self.sources.get(s["name"])
            if source is not None:
                s["parts"], s["waiting_for_publisher"] = source.parts, source.waiting
        active = [s for s in streams if s["running"]]
        return {"listening": [li.url for li in self.listeners], "streams": streams,
                "active_streams": len(active),
                "sr_budget_in_use": round(sum(s["budget_fraction"] for s in active), 4),
                "sr_pool": self.pool.stats() if self.pool else None,
                "cluster": self.cluster.stats() if self.cluster else None,
                "earlier_sessions": earlier_sessions(self.options.out_dir, set(self.sessions))}

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop accepting, end every stream (HLS finalised), shut the HTTP server down."""
        self._stop.set()
        for gate in self._gates:
            gate.stop()
        for source in list(self.sources.values()):
            source.end()
        for p in list(self.pipelines.values()):
            p.stop()
        for relay in list(self._relays.values()):
            relay.terminate()  # its reader sees the pipe end
        end = time.monotonic() + timeout_s
        for t in self._threads:
            if t.name != "http" and t not in self._waiting:
                t.join(max(0.0, end - time.monotonic()))
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
        if self.pool is not None:
            self.pool.close()
        if self.cluster is not None:
            self.cluster.close()
