"""A publisher that reconnects continues its session: :class:`SessionSource`.

``serve`` gives each publisher session one pipeline (or one cluster actor stream) reading a
``SessionSource``. When the publisher's input ends (it disconnected, or sent nothing for the
read timeout), the source waits up to ``grace_s`` seconds for another publisher of the same
stream name before it ends. A publisher that comes within that time, with video of the same
size, is the session's next *part*: its frames, packets and audio follow on from the last
frame of the part before, one frame period later (the timeline does not jump back, nor ahead
by the time the publisher was away: a viewer sees a stall, then the stream goes on). The
pipeline, its encoder and HLS muxer, and the session's LR copy go on as they were, so the
playlists stay one stream, without ``#EXT-X-ENDLIST`` in between; the new part starts at the
publisher's first key frame. Only when the grace period passes with nobody (or when the server
stops) does the source end, and the session is finalised.

The shift of a part is fixed when its publisher is accepted: from the input time of its first
video packet to one frame after the last frame of the part before (so its LR packets and its
audio, which come before its first frame is decoded, are shifted by the same amount). Audio of
a new part that would start before the audio already written is left out (timestamps must
increase); audio of another codec or sample rate than the first part's is left out too.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import replace
from fractions import Fraction
from typing import Iterator

import av

from ..stream import VideoSource
from ..stream.audio import AudioFeed

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = 5.0


class _ShiftedAudio:
    """The ``audio`` of a later part: its packets, shifted, go into the first part's feed."""

    def __init__(self, into: AudioFeed, own: AudioFeed | None, shift_s: float) -> None:
        self.into, self.shift_s = into, shift_s
        self.video_start = None
        self.same = own is not None and (own.codec_name, own.sample_rate, own.channels) == (
            into.codec_name, into.sample_rate, into.channels)
        self._own_tb = own.time_base if own is not None else None
        if own is not None and not self.same:
            log.warning("the reconnected publisher's audio (%s, %d Hz) differs from the session's (%s, %d Hz); "
                        "left out", own.codec_name, own.sample_rate, into.codec_name, into.sample_rate)

    def push(self, pkt: av.Packet) -> None:
        if not self.same:
            return
        tb = self.into.time_base
        ts = pkt.pts if pkt.pts is not None else pkt.dts
        if ts is None:
            return
        start = float(ts * self._own_tb) + self.shift_s
        if self.into.last_end_s is not None and start < self.into.last_end_s - 1e-6:
            return  # would overlap what the part before sent
        shift = self.shift_s
        out = av.Packet(bytes(pkt))
        out.pts = None if pkt.pts is None else int(round((float(pkt.pts * self._own_tb) + shift) / tb))
        out.dts = None if pkt.dts is None else int(round((float(pkt.dts * self._own_tb) + shift) / tb))
        out.duration = int(round(float(pkt.duration * self._own_tb) / tb)) if pkt.duration else 0
        out.time_base = tb
        self.into.push(out)

    def end(self) -> None:
        pass


class SessionSource:
    """The frames of one session's publishers, part after part (see the module docstring).

    Offers the interface of ``VideoSource`` that the live pipeline, the cluster front and the
    session use: iteration (CodedFrames), ``live_packets``, ``extradata``, ``fps``,
    ``time_base``, ``stats``, ``audio``, ``stream``, ``on_packet``, ``close``.
    """

    def __init__(self, first: VideoSource, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.first, self.grace_s = first, grace_s
        self.current = first
        self.fps = first.fps
        self.time_base = first.time_base
        self.audio = first.audio
        self.stream = getattr(first, "stream", None)
        self.size = _size(first)
        self.parts = 1
        self.stats = _Stats(self)
        self._done_stats = {"frames": 0, "corrupt_packets": 0, "packets": 0, "lost_frames": 0}
        self._next: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._waiting = False  # the part before ended; a publisher may continue the session
        self._closed = False
        self._part_done = threading.Event()  # set when the current part's input ended
        self._last_time: float | None = None  # output time of the last frame (or packet) given
        self._shift = 0.0  # seconds added to the current part's times
        self._on_packet = None
        self._index = 0
        self._live: VideoSource | None = first

    # -- what serve asks -------------------------------------------------------------------------
    @property
    def on_packet(self):
        return self._on_packet

    @on_packet.setter
    def on_packet(self, fn) -> None:
        self._on_packet = fn
        self.current.on_packet = fn

    @property
    def waiting(self) -> bool:
        """True while the last publisher is gone and the grace period runs."""
        return self._waiting

    def wait_part(self, timeout_s: float | None = None) -> bool:
        """Wait until the current part's input has ended (True) or ``timeout_s`` passed."""
        return self._part_done.wait(timeout_s)

    def offer(self, src: VideoSource) -> bool:
        """Continue the session with ``src`` (True), or refuse it: not waiting for a publisher
        any more, or video of another size (False; the caller starts a new session)."""
        with self._lock:
            if not self._waiting or self._closed:
                return False
            if _size(src) != self.size:
                log.info("%s: a publisher with %s video cannot continue a session of %s video; a new session",
                         src.source, _size(src), self.size)
                return False
            start = src.start_time()
            step = 1.0 / self.fps if self.fps else 0.0
            self._shift = ((self._last_time if self._last_time is not None else 0.0) + step
                           - (start if start is not None else 0.0))
            if self.audio is not None:
                own = src.audio
                src.audio = _ShiftedAudio(self.audio, own, self._shift)
                for pkt in own.take(None) if own is not None else ():  # read while it was probed
                    src.audio.push(pkt)
            elif src.audio is not None:
                src.audio = None
            if self._on_packet is not None:
                src.on_packet = _shifted_packets(self._on_packet, self._shift)
            self._waiting = False
            self._part_done.clear()
            self._next.put(src)
            return True

    def end(self) -> None:
        """Stop waiting for publishers (the server stops): the source ends."""
        with self._lock:
            self._closed = True
            self._waiting = False
        self._next.put(None)

    def close(self) -> None:
        self.end()
        self.current.close()

    def extradata(self) -> bytes | None:
        return self.first.extradata()

    # -- the parts ---------------------------------------------------------------------------------
    def _parts(self) -> Iterator[VideoSource]:
        src = self.first
        while src is not None:
            yield src
            self._finish_part(src)
            src = self._wait_next()
            if src is not None:
                self.current = self._live = src
                self.parts += 1
                log.info("%s: the publisher reconnected; the session goes on (part %d, shifted %+.3f s)",
                         src.source, self.parts, self._shift)

    def _finish_part(self, src: VideoSource) -> None:
        src.close()
        with self._lock:
            for k in self._done_stats:
                self._done_stats[k] += getattr(src.stats, k)
            self._live = None
            if not self._closed and self.grace_s > 0:
                self._waiting = True
        self._part_done.set()

    def _wait_next(self) -> VideoSource | None:
        if not self._waiting:
            return None
        try:
            src = self._next.get(timeout=self.grace_s)
        except queue.Empty:
            src = None
        with self._lock:
            self._waiting = False
            if src is None and not self._closed and not self._next.empty():
                src = self._next.get_nowait()  # offered as the grace period ran out: still taken
            elif src is None:  # the server stops: a publisher offered meanwhile is let go
                while not self._next.empty():
                    late = self._next.get_nowait()
                    if late is not None:
                        late.close()
        return src

    def _shifted_time(self, t: float | None) -> float | None:
        if t is None:
            return None
        t += self._shift
        if self._last_time is None or t > self._last_time:
            self._last_time = t
        return t

    def __iter__(self) -> Iterator:
        for src in self._parts():
            ticks = int(round(self._shift / self.time_base)) if self.time_base else 0
            for frame in src:
                pts = frame.pts + ticks if frame.pts is not None else None
                yield replace(frame, index=self._index, pts=pts, time=self._shifted_time(frame.time))
                self._index += 1

    def live_packets(self) -> Iterator[tuple[av.Packet, float]]:
        for src in self._parts():
            for pkt, t in src.live_packets():
                yield pkt, self._shifted_time(t)


class _Stats:
    """The counters of every part so far (``DecodeStats``' fields, read by the pipeline)."""

    def __init__(self, owner: SessionSource) -> None:
        self._owner = owner

    def __getattr__(self, name: str):
        own = self._owner
        live = own._live  # the part being read, not in the totals yet (None between parts)
        if name not in own._done_stats:
            return getattr((live or own.current).stats, name)
        return own._done_stats[name] + (getattr(live.stats, name) if live is not None else 0)


def _size(src) -> tuple[int, int] | None:
    stream = getattr(src, "stream", None)
    ctx = getattr(stream, "codec_context", None)
    return (ctx.width, ctx.height) if ctx is not None else None


def _shifted_packets(write, shift_s: float):
    """``write`` (the LR copy's) for a later part's packets: timestamps shifted by ``shift_s``."""

    def shifted(pkt: av.Packet) -> None:
        tb = pkt.time_base or Fraction(1, 90000)
        ticks = int(round(shift_s / tb))
        copy = av.Packet(bytes(pkt))
        copy.pts = None if pkt.pts is None else pkt.pts + ticks
        copy.dts = None if pkt.dts is None else pkt.dts + ticks
        copy.time_base, copy.is_keyframe = tb, pkt.is_keyframe
        write(copy)

    return shifted
