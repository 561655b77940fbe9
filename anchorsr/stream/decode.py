"""Open any source FFmpeg reads and decode H.264 with its motion vectors into CodedFrames.

Reuse-based SR needs the live-streaming coding structure: H.264, one reference frame, no
B-frames. Anything else (another codec, B-frames, several references) is re-encoded on the fly
with libx264 in the live profile, in-process: decoded input frames go to an x264 encoder whose
packets go straight to an H.264 decoder that exports motion vectors. ``transcode=False`` turns
that into an :class:`UnsupportedStreamError` instead.

Time: each frame keeps the input's timestamp (``CodedFrame.time``, seconds, also through the
transcoder), so a variable frame rate survives. A raw Annex B stream (.h264) has no timestamps:
its rate comes from the SPS's VUI timing info (FFmpeg's raw demuxer would assume 25 fps), and
its frames are timed at that rate. ``fps`` overrides the rate and re-times every frame at it.

Audio: the first audio stream is demuxed with the video (one read of the input, which a live
source needs) and its packets go to ``VideoSource.audio``, an :class:`AudioFeed` a sink takes
them from (with ``audio=True``; by default it is not read).
"""

from __future__ import annotations

import errno
import logging
import os
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

import av

from ..errors import ConfigError, InvalidMediaError, SourceError, UnsupportedStreamError
from ..types import CodedFrame, MotionField
from .audio import AudioFeed
from .frames import frame_to_yuv
from .h264 import SpsInfo, find_sps
from .motion import motion_field_from_vectors

log = logging.getLogger(__name__)

_URL_SCHEMES = ("rtmp://", "rtmps://", "udp://", "tcp://", "srt://", "http://", "https://", "rtsp://")
# FFmpeg renders text files as "video" through these codecs; a user never means that.
TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})
LIVE_X264_PARAMS = "ref=1:bframes=0:scenecut=0:keyint=60:min-keyint=60"
# Demuxers of raw elementary streams: no timestamps of their own (FFmpeg invents 25 fps ones).
RAW_FORMATS = frozenset({"h264", "hevc", "m4v", "mpegvideo", "rawvideo"})


@dataclass
class DecodeStats:
    """Counters a long-running consumer can watch (mutable, updated while decoding).

    ``packets``: video packets read from the input, corrupt ones included. ``lost_frames``: input
    frames that produced no output frame: corrupt packets skipped, frames the decoder concealed
    (skipped) or dropped without a word (e.g. every frame after a damaged one until the next key
    frame, which a raw ``.h264`` stream reports nowhere else). With no frame reordering each
    packet holds one frame, so it is packets read minus frames decoded; it is exact while a
    stream in the live profile is read, and for transcoded input once the input ended.
    """

    frames: int = 0
    corrupt_packets: int = 0
    packets: int = 0
    lost_frames: int = 0
    transcoded: bool = False
    transcode_reason: str = ""
    notes: list[str] = field(default_factory=list)


def _open_container(source: str, timeout_s: float | tuple[float, float],
                    options: dict[str, str] | None = None) -> av.container.InputContainer:
    is_url = source.startswith(_URL_SCHEMES) or "://" in source or source.startswith("pipe:")
    if not is_url and not os.path.exists(source):
        raise SourceError(f"input not found: expected an existing video file or a URL, got {source!r}")
    if not is_url and os.path.isdir(source):
        raise SourceError(f"input is a directory, expected a video file or a URL: {source!r}")
    if not is_url and os.path.getsize(source) == 0:
        raise InvalidMediaError(f"input is an empty file (0 bytes), expected a video: {source!r}")
    try:
        timeout = tuple(timeout_s) if isinstance(timeout_s, tuple) else (timeout_s, timeout_s)
        return av.open(source, mode="r", timeout=timeout, options=dict(options or {}))
    except av.error.FileNotFoundError:
        raise SourceError(f"input not found: {source!r}") from None
    except (av.error.InvalidDataError, av.error.PatchWelcomeError) as exc:
        raise InvalidMediaError(f"not a readable video: {source!r} ({exc.strerror})") from None
    except av.error.FFmpegError as exc:
        raise SourceError(f"cannot open {source!r}: {exc.strerror or exc}") from None
    except OSError as exc:  # connection refused, timeouts from the network layer
        raise SourceError(f"cannot open {source!r}: {exc.strerror or exc}") from None


def _stream_sps(stream: av.video.stream.VideoStream, first_packet: av.Packet | None) -> SpsInfo | None:
    ctx = stream.codec_context
    if ctx.name != "h264":
        return None
    return find_sps(ctx.extradata) or (find_sps(bytes(first_packet)) if first_packet else None)


def _incompatibility(stream: av.video.stream.VideoStream, first_packet: av.Packet | None) -> str:
    """Why the stream cannot be reused as it is ("" when it can)."""
    ctx = stream.codec_context
    if ctx.name != "h264":
        return f"codec is {ctx.name}, expected h264"
    if ctx.has_b_frames:
        return "stream uses B-frames (frame reordering)"
    sps = _stream_sps(stream, first_packet)
    if sps is None:
        return "no H.264 sequence parameter set found to verify the reference structure"
    if sps.max_num_ref_frames > 1:
        return f"stream allows {sps.max_num_ref_frames} reference frames, expected 1"
    return ""


def _new_mv_decoder() -> av.CodecContext:
    ctx = av.CodecContext.create("h264", "r")
    ctx.options = {"flags2": "+export_mvs"}
    return ctx


class VideoSource:
    """An opened input. Iterate it for CodedFrames in decode (= display) order.

    Opening fails fast with a one-line error; while iterating, a corrupt packet is logged,
    counted in ``stats.corrupt_packets`` and skipped. ``timeout_s`` is one limit for opening and
    for each read, or an (open, read) pair; ``options`` are FFmpeg format/protocol options (e.g.
    ``{"listen": "1"}`` to wait for an RTMP publisher). ``fps`` overrides the input's frame rate
    (frames re-timed at it); ``audio=True`` routes the input's audio to ``self.audio`` (for a
    sink to take; left unread, up to ``MAX_QUEUED_PACKETS`` are held). ``on_packet``, when set, is
    called with every sound video packet as demuxed (before decoding), e.g. to remux the input.
    """

    on_packet = None

    def __init__(self, source: str | os.PathLike, *, transcode: bool = True,
                 timeout_s: float | tuple[float, float] = 10.0, transcode_crf: int = 16,
                 options: dict[str, str] | None = None, fps: float | None = None,
                 audio: bool = False) -> None:
        self.source = os.fspath(source)
        self.stats = DecodeStats()
        self._crf = transcode_crf
        if fps is not None and not fps > 0:
            raise ConfigError(f"frame rate must be > 0, got {fps}")
        self._container = _open_container(self.source, timeout_s, options)
        if not self._container.streams.video:
            kinds = ", ".join(s.type for s in self._container.streams) or "none"
            self._container.close()
            raise InvalidMediaError(f"expected a video stream in {self.source!r}, found: {kinds}")
        self.stream = self._container.streams.video[0]
        self._time_base = self.stream.time_base
        self.codec_name = self.stream.codec_context.name
        if self.stream.codec_context.name in TEXT_CODECS:
            self._container.close()
            raise InvalidMediaError(f"not a readable video: {self.source!r} holds text "
                                    f"({self.stream.codec_context.name}), expected a video stream")
        self.audio: AudioFeed | None = None
        self._audio_index = -1
        if audio and self._container.streams.audio:
            self._open_audio(self._container.streams.audio[0])
        self._packets = self._container.demux(self.stream, *([self._audio_stream] if self.audio else []))
        self._pending: list[av.Packet] = []
        first = self._first_packet()
        self._raw = self._container.format.name.split(",")[0] in RAW_FORMATS
        self._fps, self.fps_source = self._frame_rate(fps, _stream_sps(self.stream, first))
        # frames are re-timed at the rate (no timestamps, or an override): from the first one's time
        self._retime = fps is not None or self._raw
        self._first_time: float | None = None
        self._transcode_times: dict[int, tuple[int | None, float | None]] = {}
        reason = _incompatibility(self.stream, first)
        if reason:
            if not transcode:
                self._container.close()
                raise UnsupportedStreamError(
                    f"{self.source!r} cannot be reused as it is: {reason}; expected H.264 with one "
                    "reference frame and no B-frames (drop --no-transcode to re-encode it)")
            log.warning("transcoding %s to H.264 live profile: %s", self.source, reason)
            self.stats.transcoded, self.stats.transcode_reason = True, reason

    def _open_audio(self, stream) -> None:
        try:
            self.audio = AudioFeed(stream)
        except (av.error.FFmpegError, ValueError, AttributeError) as exc:
            log.warning("leaving out the audio of %s: %s", self.source, exc)
            return
        self._audio_stream, self._audio_index = stream, stream.index

    def _frame_rate(self, override: float | None, sps: SpsInfo | None) -> tuple[float, str]:
        """(frame rate, where it came from): the override, the SPS timing of a raw stream, the
        container's average rate, FFmpeg's guess, the SPS timing, else 30."""
        if override is not None:
            return float(override), "override"
        sps_rate = sps.frame_rate if sps is not None else None
        if self._raw and sps_rate:
            return float(sps_rate), "sps"
        if self._raw and self.stream.guessed_rate:
            return float(self.stream.guessed_rate), "guessed"
        if self.stream.average_rate:
            return float(self.stream.average_rate), "container"
        if self.stream.guessed_rate:
            return float(self.stream.guessed_rate), "guessed"
        if sps_rate:
            return float(sps_rate), "sps"
        return 30.0, "default"

    @property
    def time_base(self) -> Fraction:
        """Time base of the frames' timestamps (``CodedFrame.pts``); output keeps it."""
        return 1 / Fraction(self._fps).limit_denominator(1001) if self._retime else self._time_base

    def _route(self, pkt: av.Packet) -> bool:
        """Hand an audio packet to the audio feed; True when ``pkt`` was one."""
        if pkt.stream_index != self._audio_index:
            return False
        if pkt.size and not pkt.is_corrupt:
            self.audio.push(pkt)
        return True

    def _first_packet(self) -> av.Packet | None:
        try:
            for pkt in self._packets:
                if self._route(pkt):
                    continue
                if pkt.size:
                    self._pending.append(pkt)
                    return pkt
        except av.error.FFmpegError as exc:
            raise InvalidMediaError(f"cannot read {self.source!r}: {exc.strerror or exc}") from None
        raise InvalidMediaError(f"no video packets in {self.source!r} (empty or truncated)")

    @property
    def fps(self) -> float:
        """Frame rate, read at open time (the stream object dies with the container)."""
        return self._fps

    def _demux(self) -> Iterator[av.Packet]:
        self.stats.packets += len(self._pending)
        for pkt in self._pending:
            if self.on_packet is not None:
                self.on_packet(pkt)
            yield pkt
        self._pending = []
        while True:
            try:
                pkt = next(self._packets)
            except StopIteration:
                return
            except av.error.EOFError:
                return
            except av.error.FFmpegError as exc:
                if self.source.startswith(("rtmp://", "rtmps://")) and getattr(exc, "errno", None) == errno.EIO:
                    # how FFmpeg's RTMP reader reports a publisher that closed its stream: a normal end
                    log.info("input %s ended (the publisher closed the stream)", self.source)
                    return
                if self.source.startswith("udp://") and isinstance(exc, (av.error.ExitError, TimeoutError)):
                    # UDP has no end of stream: a silence of the read timeout is how one ends
                    log.info("input %s ended (no data within the read timeout)", self.source)
                    return
                self.stats.notes.append(f"input ended early: {exc.strerror or exc}")
                log.warning("input %s ended early: %s", self.source, exc)
                return
            if self._route(pkt):
                continue
            if pkt.size:
                self.stats.packets += 1
            if pkt.is_corrupt:  # the demuxer saw lost or damaged data (e.g. a TS continuity gap)
                self.stats.corrupt_packets += 1
                log.warning("skipping corrupt packet in %s (pts %s)", self.source, pkt.pts)
                continue
            if pkt.size:  # demux ends with an empty flush packet; callers flush themselves
                if self.on_packet is not None:
                    self.on_packet(pkt)
                yield pkt

    def _decode(self, ctx: av.CodecContext, packets: Iterator[av.Packet | None]) -> Iterator[av.VideoFrame]:
        for pkt in packets:
            try:
                for frame in ctx.decode(pkt):
                    if frame.is_corrupt:  # concealed by the decoder: no base for reuse
                        self.stats.corrupt_packets += 1
                        log.warning("skipping a corrupt frame in %s (pts %s)", self.source, frame.pts)
                        continue
                    yield frame
            except av.error.EOFError:
                return
            except av.error.FFmpegError as exc:
                self.stats.corrupt_packets += 1
                log.warning("skipping corrupt packet in %s: %s", self.source, exc)

    def _direct_packets(self) -> Iterator[tuple[av.Packet | None, av.CodecContext]]:
        ctx = self.stream.codec_context
        ctx.options = {"flags2": "+export_mvs"}
        ctx.thread_type = "SLICE"
        for pkt in self._demux():
            yield pkt, ctx
        yield None, ctx

    def _transcoded_packets(self) -> Iterator[tuple[av.Packet | None, av.CodecContext]]:
        in_ctx = self.stream.codec_context
        dec = _new_mv_decoder()
        enc = None
        n_in = 0
        rate = Fraction(self._fps).limit_denominator(1001)
        for frame in self._decode(in_ctx, (p for p in [*self._demux(), None])):
            w, h = frame.width & ~1, frame.height & ~1  # x264's 4:2:0 needs even sizes
            if enc is None or (enc.width, enc.height) != (w, h):
                if enc is not None:
                    for out in enc.encode(None):
                        yield out, dec
                enc = _live_encoder(w, h, rate, self._crf)
            img = frame.reformat(width=w, height=h, format="yuv420p") if (w, h) != (frame.width, frame.height) \
                else frame.reformat(format="yuv420p")
            self._transcode_times[n_in] = (frame.pts, self._input_time(frame.pts, n_in))
            img.pts, img.time_base = n_in, enc.time_base
            n_in += 1
            for out in enc.encode(img):
                yield out, dec
        if enc is not None:
            for out in enc.encode(None):
                yield out, dec
        self.stats.lost_frames = max(0, self.stats.packets - n_in)  # the input has ended
        yield None, dec

    def live_packets(self) -> Iterator[tuple[av.Packet, float]]:
        """The stream's H.264 packets in the live profile, undecoded, each with its input time in
        seconds (as ``CodedFrame.time`` would have it), in decode order: the input's own packets,
        or the re-encoder's for input that needs transcoding. For a decoder in another process
        (``stream.packets.PacketSource``); iterate this or the frames, not both."""
        n = 0
        feed = self._transcoded_packets() if self.stats.transcoded else self._direct_packets()
        for pkt, _ctx in feed:
            if pkt is None or not pkt.size:
                continue
            if self.stats.transcoded:
                time = self._transcode_times.pop(pkt.pts, (None, None))[1] if pkt.pts is not None else None
                time = time if time is not None else self._input_time(None, n)
            else:
                time = self._input_time(pkt.pts, n)
            n += 1
            yield pkt, time

    def start_time(self) -> float | None:
        """Input time (seconds) of the first video packet, before any is read (None: unknown)."""
        first = self._pending[0] if self._pending else None
        if first is None or first.pts is None or not self._time_base or self._raw:
            return 0.0 if first is not None and self._raw else None
        return float(first.pts * self._time_base)

    def extradata(self) -> bytes | None:
        """The codec's out-of-band parameter sets of ``live_packets`` (None: they are in-band)."""
        if self.stats.transcoded:
            return None  # the re-encoder repeats SPS/PPS before each key frame
        data = self.stream.codec_context.extradata
        return bytes(data) if data else None

    def __iter__(self) -> Iterator[CodedFrame]:
        feed = self._transcoded_packets() if self.stats.transcoded else self._direct_packets()
        sizes: deque[tuple[int | None, int]] = deque()
        time_base = self._time_base
        try:
            for pkt, ctx in feed:
                if pkt is not None and pkt.size:
                    sizes.append((pkt.pts, pkt.size))
                for frame in self._decode(ctx, [pkt]):
                    yield self._coded_frame(frame, sizes, time_base)
                if not self.stats.transcoded:  # one packet, one frame, no decoder delay
                    self.stats.lost_frames = max(0, self.stats.packets - self.stats.frames)
        finally:
            self.close()
        if self.stats.frames == 0:
            raise InvalidMediaError(f"no decodable video frames in {self.source!r} (corrupt or truncated)")

    def _coded_frame(self, frame: av.VideoFrame, sizes: deque, time_base) -> CodedFrame:
        # No reordering, so packets and frames come in the same order; packets that produced no
        # frame (corrupt) are dropped from the front until the frame's own pts.
        if frame.pts is not None and any(p == frame.pts for p, _ in sizes):
            while sizes[0][0] != frame.pts:
                sizes.popleft()
        size = sizes.popleft()[1] if sizes else 0
        kind = "I" if (frame.key_frame or int(frame.pict_type) == 1) else "P"
        if int(frame.pict_type) == 3:
            raise UnsupportedStreamError(f"B-frame found in {self.source!r} at frame {self.stats.frames}; "
                                         "expected no B-frames")
        y, u, v = frame_to_yuv(frame)
        motion = MotionField.all_intra(*y.shape)
        if kind == "P":
            sd = frame.side_data.get("MOTION_VECTORS")
            vectors = sd.to_ndarray() if sd is not None else None
            motion = motion_field_from_vectors(vectors, *y.shape)
        idx = self.stats.frames
        self.stats.frames += 1
        if self.stats.transcoded:  # the re-encoder numbers frames; their input times were kept
            pts, time = self._transcode_times.pop(frame.pts, (None, None)) if frame.pts is not None else (None, None)
            time = time if time is not None else self._input_time(None, idx)
        else:
            pts, time = frame.pts, self._input_time(frame.pts, idx)
        if self._retime:
            pts = idx
        if self.audio is not None and self.audio.video_start is None:
            self.audio.video_start = time
        return CodedFrame(idx, pts, time, kind, int(size), y, u, v, motion)

    def _input_time(self, pts: int | None, idx: int) -> float:
        """Seconds: the input's timestamp, or (re-timed, or none) the first one + idx / fps."""
        if not self._retime and pts is not None and self._time_base:
            return float(pts * self._time_base)
        if self._first_time is None:
            self._first_time = float(pts * self._time_base) if (
                pts is not None and self._time_base and not self._raw) else 0.0
        return self._first_time + idx / self._fps

    def close(self) -> None:
        if self.audio is not None:
            self.audio.end()
        try:
            self._container.close()
        except Exception:  # closing twice or after a network error is harmless
            pass

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _live_encoder(width: int, height: int, rate: Fraction, crf: int) -> av.CodecContext:
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = 1 / rate
    enc.framerate = rate
    enc.options = {"preset": "veryfast", "tune": "zerolatency", "crf": str(crf),
                   "x264-params": LIVE_X264_PARAMS}
    return enc


def open_frames(source: str | os.PathLike, *, transcode: bool = True, timeout_s: float = 10.0,
                fps: float | None = None) -> Iterator[CodedFrame]:
    """Decode ``source`` into CodedFrames (video only); see :class:`VideoSource`."""
    yield from VideoSource(source, transcode=transcode, timeout_s=timeout_s, fps=fps, audio=False)
