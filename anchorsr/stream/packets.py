"""A stream's compressed packets, carried to another process and decoded there with motion.

The ingest side (``VideoSource.live_packets``) reads the publisher's H.264 in the live profile
and sends it on as :class:`WirePacket` batches (plain bytes and numbers: they pickle); the other
side (a cluster actor) decodes them with :class:`PacketSource` into the same CodedFrames a
``VideoSource`` yields, motion vectors included. Compressed data is what travels: a 360p packet
is a few kilobytes, its decoded frame with motion about a hundred times more.

Each packet carries its sequence number (the decoder's pts: one packet, one frame, no
reordering in the live profile) and its input time, which the frame keeps.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable, Iterator

import av

from .decode import DecodeStats, VideoSource, _new_mv_decoder


@dataclass(frozen=True)
class WirePacket:
    """One H.264 packet: ``seq`` its number in the stream, ``time`` its input time (seconds),
    ``key`` whether it starts a key frame. ``replay``: part of a backlog (sent again after a
    restart, or queued while the receiver started): its frame waits for room downstream rather
    than being dropped as a late live frame would be."""

    seq: int
    data: bytes
    time: float
    key: bool
    replay: bool = False


@dataclass(frozen=True)
class StreamParams:
    """What a remote decoder needs besides the packets: the codec's parameter sets
    (``extradata``, None when in-band), the frame rate and the time base of the output."""

    name: str
    fps: float
    time_base: Fraction
    extradata: bytes | None = None

    @staticmethod
    def of(source: VideoSource, name: str) -> "StreamParams":
        return StreamParams(name, source.fps, source.time_base, source.extradata())


def wire_packets(source: VideoSource) -> Iterator[WirePacket]:
    """``source``'s live-profile packets as WirePackets, numbered from 0."""
    for seq, (pkt, time) in enumerate(source.live_packets()):
        yield WirePacket(seq, bytes(pkt), float(time), bool(pkt.is_keyframe))


class PacketFeed:
    """A thread-safe queue of WirePackets with an end; iterating it blocks for the next one."""

    _END = object()

    def __init__(self) -> None:
        self._q: queue.Queue = queue.Queue()

    def put(self, packets: Iterable[WirePacket]) -> None:
        for p in packets:
            self._q.put(p)

    def end(self) -> None:
        self._q.put(self._END)

    def qsize(self) -> int:
        return self._q.qsize()

    def __iter__(self) -> Iterator[WirePacket]:
        while (p := self._q.get()) is not self._END:
            yield p


class PacketSource(VideoSource):
    """CodedFrames decoded from WirePackets (a ``VideoSource`` whose input is a packet feed).

    It opens nothing: the packets were demuxed (and transcoded when needed) where the stream
    came in. ``hold_replay``, when given, is called before each frame of a replayed packet and
    returns once the consumer has room, so that a burst sent again after a restart is not shed
    by a real-time pipeline's drop policy (live frames are never held).
    """

    def __init__(self, params: StreamParams, packets: Iterable[WirePacket],
                 hold_replay: Callable[[], None] | None = None) -> None:
        # VideoSource's own __init__ opens an input; the state its decoding uses is set here.
        self.source = params.name
        self.stats = DecodeStats()
        self.audio = None
        self._audio_index = -1
        self._container = None
        self._fps, self.fps_source = float(params.fps), "sender"
        self._time_base = params.time_base
        self._retime = False
        self._raw = False
        self._first_time = None
        self._params = params
        self._packets_in = packets
        self._times: dict[int, tuple[float, bool]] = {}
        self._hold = hold_replay

    def _direct_packets(self) -> Iterator[tuple[av.Packet | None, av.CodecContext]]:
        ctx = _new_mv_decoder()
        if self._params.extradata:
            ctx.extradata = self._params.extradata
        ctx.thread_type = "SLICE"
        for wp in self._packets_in:
            pkt = av.Packet(wp.data)
            pkt.pts = pkt.dts = wp.seq
            pkt.is_keyframe = wp.key
            self._times[wp.seq] = (wp.time, wp.replay)
            self.stats.packets += 1
            yield pkt, ctx
        yield None, ctx

    def _input_time(self, pts: int | None, idx: int) -> float:
        time, replay = self._times.pop(pts, (None, False)) if pts is not None else (None, False)
        if replay and self._hold is not None:
            self._hold()
        if time is None:  # a frame with no packet of its own: timed after the last one at the rate
            time = (self._first_time or 0.0) + idx / self._fps
        if self._first_time is None:
            self._first_time = time
        return time

    def close(self) -> None:
        pass  # nothing opened; the feed ends when its sender says so
