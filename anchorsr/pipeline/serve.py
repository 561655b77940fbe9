"""``anchorsr serve``: accept live streams, enhance each one, publish HLS over HTTP.

One listener thread per input URL waits for a publisher (FFmpeg's listen modes: ``tcp://HOST:PORT``
as a server, ``rtmp://HOST:PORT/APP/NAME`` with ``listen=1``, ``udp://HOST:PORT``), runs a
:class:`LivePipeline` for the stream, and when the source disconnects (no data for
``read_timeout_s``) finalises its HLS and listens again. All streams share one SR worker pool.
A small HTTP server (localhost unless told otherwise) serves the HLS folders and ``/status``.
"""

from __future__ import annotations

import functools
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
from .runners import warm_up
from .session import Session, apply_retention, earlier_sessions
from .srpool import SRPool
from .steps import make_patch_source

log = logging.getLogger(__name__)

_SCHEMES = ("tcp", "udp", "rtmp")


@dataclass(frozen=True)
class ServeOptions:
    """listen: input URLs (optionally ``NAME=URL``); out_dir: where the HLS folders go.

    live: each stream's pipeline settings (its audio passthrough and ``fps`` override included).
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
    transcode: bool = True
    retention: int = 0  # finished sessions kept per stream name (0: all)
    live: PipelineOptions = field(default_factory=PipelineOptions)


@dataclass(frozen=True)
class Listener:
    name: str
    url: str
    scheme: str
    host: str
    port: int

    @staticmethod
    def parse(spec: str, index: int) -> "Listener":
        name, _, url = spec.partition("=") if "=" in spec.split("://")[0] else ("", "", spec)
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname or not parts.port:
            raise ConfigError(f"expected a listen URL such as tcp://127.0.0.1:9000, udp://127.0.0.1:9001 or "
                              f"rtmp://127.0.0.1:1935/live/NAME, got {spec!r}")
        if not name:
            path = parts.path.strip("/").split("/")
            name = path[-1] if parts.scheme == "rtmp" and path[-1] else f"s{index}"
        if parts.scheme == "tcp" and "listen" not in parts.query:
            url += ("&" if parts.query else "?") + "listen=1"
        return Listener(name, url, parts.scheme, parts.hostname, parts.port)

    def check_free(self) -> None:
        """Fail at start-up, not in the accept loop, when the port is taken."""
        kind = socket.SOCK_DGRAM if self.scheme == "udp" else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((self.host, self.port))
            except OSError as exc:
                raise ConfigError(f"cannot listen on {self.host}:{self.port} ({self.url}): {exc.strerror}") from None

    def options(self, accept_timeout_s: float, read_timeout_s: float) -> dict[str, str]:
        """FFmpeg protocol options: wait ``accept_timeout_s`` for a publisher, then give up (the
        accept loop listens again), without limiting how long probing a connected stream takes.
        UDP has no connection: a silence of ``read_timeout_s`` ends the wait or the stream."""
        if self.scheme == "rtmp":
            return {"listen": "1", "timeout": str(max(int(round(accept_timeout_s)), 1))}
        if self.scheme == "tcp":
            return {"listen_timeout": str(int(accept_timeout_s * 1000))}
        return {"timeout": str(int(read_timeout_s * 1e6))}


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
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.pool: SRPool | None = None
        self.httpd: http.server.ThreadingHTTPServer | None = None

    @property
    def http_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "Server":
        for li in self.listeners:
            li.check_free()
        os.makedirs(self.options.out_dir, exist_ok=True)
        for li in self.listeners:
            self._retain(li.name)
        live = self.options.live
        source = make_patch_source(self.options.model, live.scale, live.device, live.sr_engine, realtime=True)
        warm_up(self.options.live, source)  # compile kernels before the first publisher arrives
        self.pool = SRPool(source, self.options.sr_workers)
        handler = functools.partial(Handler, self, directory=os.path.abspath(self.options.out_dir))
        try:
            self.httpd = http.server.ThreadingHTTPServer((self.options.host, self.options.http_port), handler)
        except OSError as exc:
            raise ConfigError(f"cannot serve HTTP on {self.options.host}:{self.options.http_port}: "
                              f"{exc.strerror}") from None
        self.httpd.daemon_threads = True
        self._spawn(self.httpd.serve_forever, "http")
        for li in self.listeners:
            self._spawn(functools.partial(self._accept_loop, li), f"listen-{li.name}")
        return self

    def _spawn(self, target, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept_loop(self, li: Listener) -> None:
        while not self._stop.is_set():
            try:
                src = VideoSource(li.url, transcode=self.options.transcode, audio=self.options.live.audio,
                                  fps=self.options.live.fps,
                                  options=li.options(self.options.accept_timeout_s, self.options.read_timeout_s),
                                  timeout_s=(self.options.probe_timeout_s, self.options.read_timeout_s))
            except AnchorsrError as exc:  # nobody published within the accept period, or a bad start
                log.debug("%s: %s", li.name, exc)
                continue
            try:
                session = Session(self.options.out_dir, li.name, src, self.options.live.segment_s)
            except OSError as exc:
                log.error("%s: cannot create a session folder in %s: %s", li.name, self.options.out_dir, exc)
                src.close()
                time.sleep(1.0)
                continue
            name = session.name
            log.info("%s: publisher on %s, HLS in %s", name, li.url, session.folder)
            pipeline = LivePipeline(src, src.fps, session.make_sink, self.pool, self.options.live, name=name)
            pipeline.start()
            self.sessions[name] = session
            self.pipelines[name] = pipeline  # listed once started: /status never shows it as ended early
            while not pipeline.wait(0.2):
                if self._stop.is_set():
                    pipeline.stop()
            session.close()
            error = pipeline.snapshot()["error"]
            if error:
                log.warning("%s ended with an error: %s", name, error)
            else:
                log.info("%s ended: %d frames", name, pipeline.stats.frames_out)
            self._retain(li.name)

    def _retain(self, stream: str) -> None:
        """Apply ``--retention`` to the finished sessions of ``stream`` (this run's and earlier ones)."""
        live = {n for n, p in list(self.pipelines.items()) if p.running}
        for removed in apply_retention(self.options.out_dir, stream, self.options.retention, live):
            self.pipelines.pop(removed, None)
            self.sessions.pop(removed, None)

    def status(self) -> dict:
        streams = [p.snapshot() for p in list(self.pipelines.values())]
        for s in streams:
            s["playlist"] = f"/{s['name']}/index.m3u8"
            session = self.sessions.get(s["name"])
            if session is not None:
                s.update(session.info())
        active = [s for s in streams if s["running"]]
        return {"listening": [li.url for li in self.listeners], "streams": streams,
                "active_streams": len(active),
                "sr_budget_in_use": round(sum(s["budget_fraction"] for s in active), 4),
                "sr_pool": self.pool.stats() if self.pool else None,
                "earlier_sessions": earlier_sessions(self.options.out_dir, set(self.sessions))}

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop accepting, end every stream (HLS finalised), shut the HTTP server down."""
        self._stop.set()
        for p in list(self.pipelines.values()):
            p.stop()
        end = time.monotonic() + timeout_s
        for t in self._threads:
            if t.name != "http":
                t.join(max(0.0, end - time.monotonic()))
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
        if self.pool is not None:
            self.pool.close()
