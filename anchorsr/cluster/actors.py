"""The work a cluster node does for one stream: :class:`StreamWorker`, run as a Ray actor.

It receives the stream's compressed packets in batches (``feed``), decodes them with motion
(``stream.packets.PacketSource``), and runs the live pipeline on them: schedule, SR (its own
SR thread, in the actor), rebuild, encode, and write HLS into the session folder. Audio packets
in the batches (after their ``AudioHeader``) go to the sink's audio feed, passed through in sync
as ``serve`` does in process. That folder
is the serve front's output folder, so on several machines it is a shared folder mounted at the
same path on every node.

After a restart (its node died) a new worker continues the same playlist: ``append`` keeps the
segments already there and marks a discontinuity, its segments have their own names
(``segment_prefix``), and frames before ``write_from`` (seconds of input time, already in the
finished segments) are decoded and rebuilt, as references, but not written again.

The class is plain Python (no Ray import): the front wraps it with ``ray.remote``, and tests
can run it in process.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time

from ..pipeline.live import LivePipeline
from ..pipeline.options import PipelineOptions
from ..pipeline.runners import warm_up
from ..pipeline.srpool import SRPool
from ..pipeline.steps import make_patch_source
from ..stream import EncodeSettings, hls_sink
from ..stream.audio import AudioFeed
from ..stream.packets import (AudioHeader, PacketFeed, PacketSource, StreamParams, WireAudio, WirePacket,
                              audio_feed_from_header, audio_packet)

log = logging.getLogger(__name__)

HOLD_LIMIT_S = 10.0  # longest a backlog frame waits for room in the pipeline


class _FromTime:
    """A sink opened at the first frame at or after ``write_from`` (earlier ones are counted,
    not written), so a restarted stream's output starts where the finished segments end."""

    def __init__(self, open_sink, write_from: float | None) -> None:
        self._open, self.write_from = open_sink, write_from
        self.sink = None
        self.skipped = 0
        self.first_time: float | None = None

    def write(self, y, u, v, index=None, time=None) -> None:
        if self.write_from is not None and time is not None and time < self.write_from:
            self.skipped += 1
            return
        if self.sink is None:
            self.sink = self._open()
            self.first_time = time
        self.sink.write(y, u, v, index, time=time)

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()

    def abort(self) -> None:
        if self.sink is not None:
            self.sink.abort()


class StreamWorker:
    """One stream's pipeline fed with packets (see the module docstring).

    params: the stream's decoder parameters; folder: its session folder (HLS ``index.m3u8``);
    options: its pipeline settings; model: the SR network (``--model``: "default", "bicubic" or
    a file; None: ``options.model``), run on ``options.device``.
    """

    def __init__(self, params: StreamParams, folder: str, options: PipelineOptions, *, model: str | None = None,
                 segment_prefix: str = "seg", append: bool = False, write_from: float | None = None,
                 sr=None) -> None:
        self.params, self.folder, self.options = params, folder, options
        self._prefix, self._append = segment_prefix, append
        if sr is None:
            source = make_patch_source(model or options.model, options.scale, options.device, options.sr_engine,
                                       realtime=True)
            warm_up(options, source)
            self.pool = SRPool(source, 1)
        else:  # the cluster's SR workers, through the global budget's coordinator (an actor handle)
            from .srworkers import RemoteSR

            warm_up(options, make_patch_source("bicubic", options.scale))  # the kernels; no network here
            self.pool = RemoteSR(sr, params.name)
        self.feed_q = PacketFeed()
        self.frames = PacketSource(params, self.feed_q, hold_replay=self._hold)
        self._out: _FromTime | None = None
        self._write_from = write_from
        self.audio: AudioFeed | None = None
        self.audio_packets = 0
        self.pipeline = LivePipeline(self.frames, params.fps, self._make_sink, self.pool, options, name=params.name)
        self.pipeline.start()

    def _make_sink(self, width: int, height: int, settings: EncodeSettings) -> _FromTime:
        self._out = _FromTime(lambda: hls_sink(self.folder, width, height, settings, self.options.segment_s,
                                               self.audio, segment_prefix=self._prefix, append=self._append),
                              self._write_from)
        return self._out

    def _hold(self) -> None:
        """Wait until the pipeline's decoded-frame queue has room (a backlog frame is not shed)."""
        q, end = self.pipeline.q_decoded, time.monotonic() + HOLD_LIMIT_S
        while q.maxsize and q.qsize() >= q.maxsize - 1 and time.monotonic() < end:
            time.sleep(0.005)

    def feed(self, packets: list[WirePacket | WireAudio | AudioHeader]) -> dict:
        """Queue a batch of packets (video to the decoder, audio to the sink's audio feed);
        returns the stream's figures."""
        video = []
        for p in packets:
            if isinstance(p, WirePacket):
                video.append(p)
            elif isinstance(p, WireAudio):
                if self.audio is not None:
                    self.audio.push(audio_packet(p, self.audio.time_base))
                    self.audio_packets += 1
            elif isinstance(p, AudioHeader) and self.audio is None:
                if self._out is not None and self._out.sink is not None:
                    log.warning("%s: the audio parameters came after the output started; no audio", self.params.name)
                else:
                    self.audio = audio_feed_from_header(p)
        self.feed_q.put(video)
        return self.snapshot()

    def end(self, timeout_s: float = 60.0) -> dict:
        """The input ended: finish what is queued, finalise the HLS, return the figures."""
        if self.audio is not None:
            self.audio.end()
        self.feed_q.end()
        self.pipeline.wait(timeout_s)
        self.pool.close()
        return self.snapshot()

    def snapshot(self) -> dict:
        s = self.pipeline.snapshot()
        skipped = self._out.skipped if self._out is not None else 0
        s["frames_out"] -= skipped
        s["frames_skipped_as_written"] = skipped
        s["first_time"] = self._out.first_time if self._out is not None else None
        s["packets_queued"] = self.feed_q.qsize()
        s["audio_packets"] = self.audio_packets
        s["host"] = socket.gethostname()
        s["pid"] = os.getpid()
        s["node_id"] = _node_id()
        s["sr"] = self.pool.stats()
        return s


def _node_id() -> str | None:
    """The Ray node this runs on (None outside a Ray worker; Ray is never started from here)."""
    ray = sys.modules.get("ray")
    try:
        return ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - a figure for /status only
        return None
