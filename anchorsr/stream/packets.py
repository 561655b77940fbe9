"""A stream's compressed packets, carried to another process and decoded there with motion.

The ingest side (``VideoSource.live_packets``) reads the publisher's H.264 in the live profile
and sends it on as :class:`WirePacket` batches (plain bytes and numbers: they pickle); the other
side (a cluster actor) decodes them with :class:`PacketSource` into the same CodedFrames a
``VideoSource`` yields, motion vectors included. Compressed data is what travels: a 360p packet
is a few kilobytes, its decoded frame with motion about a hundred times more.

Each packet carries its sequence number (the decoder's pts: one packet, one frame, no
reordering in the live profile) and its input time, which the frame keeps.

Audio travels beside the video, not decoded: the input's audio packets as :class:`WireAudio`
(bytes and timestamps in the audio stream's time base), preceded once by an :class:`AudioHeader`,
the codec's parameters as a tiny Matroska file holding the stream and its first packet (what
FFmpeg needs to copy or decode the rest: for AAC from MPEG-TS, the parameters are read from that
packet's ADTS header). The receiver turns them back into an ``AudioFeed`` for its sink
(:func:`audio_feed_from_header`), which passes the audio through as the in-process pipeline does.
"""

from __future__ import annotations

import io
import logging
import queue
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable, Iterator

import av

from .audio import AudioFeed
from .decode import DecodeStats, VideoSource, _new_mv_decoder

log = logging.getLogger(__name__)


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
class WireAudio:
    """One audio packet: ``pts``/``dts`` in the audio time base (``AudioHeader.time_base``),
    ``time`` its start in seconds (the video's clock). Never a key frame; ``replay`` as for
    :class:`WirePacket` (audio is never held back, the flag only marks a resend)."""

    data: bytes
    pts: int | None
    dts: int | None
    time: float
    replay: bool = False
    key = False


@dataclass(frozen=True)
class AudioHeader:
    """The audio codec's parameters: ``header`` a Matroska file of the stream and its first
    packet (:func:`audio_header`), ``time_base`` that of the ``WireAudio`` timestamps."""

    header: bytes
    time_base: Fraction
    time: float = float("-inf")
    replay: bool = False
    key = False


def audio_header(feed: AudioFeed, first: av.Packet) -> AudioHeader | None:
    """``feed``'s codec parameters with its first packet ``first`` (None, with a warning, when
    they cannot be written: the stream then goes on without audio)."""
    if feed.template is None:
        log.warning("the audio (%s) cannot be carried to the stream's worker; the output has no audio",
                    feed.codec_name)
        return None
    buf = io.BytesIO()
    try:
        with av.open(buf, mode="w", format="matroska") as out:
            stream = out.add_stream_from_template(feed.template)
            pkt = av.Packet(bytes(first))
            pkt.pts, pkt.dts, pkt.time_base = first.pts, first.dts, feed.time_base
            pkt.stream = stream
            out.mux(pkt)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        log.warning("the audio (%s) cannot be carried to the stream's worker (%s); the output has no audio",
                    feed.codec_name, exc)
        return None
    return AudioHeader(buf.getvalue(), feed.time_base)


def wire_audio(feed: AudioFeed, packets: list[av.Packet]) -> list[WireAudio]:
    tb = feed.time_base
    out = []
    for p in packets:
        ts = p.pts if p.pts is not None else p.dts
        out.append(WireAudio(bytes(p), p.pts, p.dts, float(ts * tb) if ts is not None else float("-inf")))
    return out


def audio_feed_from_header(head: AudioHeader) -> AudioFeed | None:
    """An ``AudioFeed`` for the packets that follow ``head`` (None, with a warning, when the
    header cannot be read)."""
    try:
        with av.open(io.BytesIO(head.header), mode="r") as holder:
            feed = AudioFeed(holder.streams.audio[0])
    except (av.error.FFmpegError, ValueError, IndexError, OSError) as exc:
        log.warning("cannot read the stream's audio parameters (%s); the output has no audio", exc)
        return None
    feed.time_base = head.time_base
    return feed


def audio_packet(wa: WireAudio, time_base: Fraction) -> av.Packet:
    pkt = av.Packet(wa.data)
    pkt.pts, pkt.dts, pkt.time_base = wa.pts, wa.dts, time_base
    return pkt


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
