"""Audio pass-through: the input's audio track, in sync, into every output.

The video decoder's demuxer reads the audio packets too (a live input is opened once) and hands
them to an :class:`AudioFeed`; the sink that writes the enhanced video takes them from there
through an :class:`AudioOutput`. Packets are copied (remuxed, not re-encoded) when the output
container takes the codec, otherwise decoded and encoded to AAC (Opus for WebM).

Sync: audio keeps the input's timestamps relative to the first output video frame, as the video
does. Audio before that frame is left out (copied: whole packets that start before it; encoded:
the samples before it), and so is audio after the video's end (``--max-frames``, a stopped
stream), so both tracks last as long as each other. Gaps in the input audio become silence on
the encode path, so the track does not slide against the video after a loss.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import deque
from fractions import Fraction

import av
import numpy as np

log = logging.getLogger(__name__)

# Output muxer -> audio codecs copied into it as they are. Anything else is encoded (the muxer
# may accept more, but players of that container would not, e.g. PCM in MP4 or Opus in HLS).
COPY_CODECS: dict[str, frozenset[str]] = {
    "mp4": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}),
    "mov": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s16be", "pcm_s24le",
                      "pcm_s24be", "pcm_f32le", "pcm_f32be"}),
    "matroska": frozenset({"aac", "mp3", "mp2", "ac3", "eac3", "dts", "truehd", "opus", "vorbis", "flac",
                           "alac", "pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le"}),
    "webm": frozenset({"opus", "vorbis"}),
    "mpegts": frozenset({"aac", "mp3", "mp2", "ac3", "eac3", "opus"}),
    "hls": frozenset({"aac", "mp3", "ac3", "eac3"}),
    "flv": frozenset({"aac", "mp3"}),
    "avi": frozenset({"mp3", "ac3", "aac", "pcm_s16le"}),
}
_FLV_MP3_RATES = (44100, 22050, 11025)
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
# Input packets held for a sink that is not open yet (live: about one chunk of video) or that
# lags; beyond this the oldest are dropped with a warning (a sink that never drains them).
MAX_QUEUED_PACKETS = 20000
# A jump in the input audio's timestamps larger than this is a gap (filled with silence).
GAP_S = 0.1


class AudioFeed:
    """The audio packets of an input, from its demuxer (one thread) to a sink (another).

    Holds what an output needs after the input is closed: a copy of the stream's codec
    parameters (``template``, for remuxing) and its decoder (for re-encoding).
    """

    def __init__(self, stream: av.audio.stream.AudioStream) -> None:
        ctx = stream.codec_context
        self.codec_name = ctx.name
        self.sample_rate = int(ctx.sample_rate or 0)
        self.layout = ctx.layout.name if ctx.layout else "stereo"
        self.channels = int(ctx.channels or 0)
        self.time_base = stream.time_base
        self.decoder = ctx  # the decoder outlives the input container; only the sink uses it
        # A copy of the stream's parameters, owned by a container that is never written: the
        # input stream itself is freed when the input closes, which may be before a sink opens.
        self._holder = av.open(io.BytesIO(), mode="w", format="matroska")
        try:
            self.template = self._holder.add_stream_from_template(stream)
        except (ValueError, av.error.FFmpegError):
            self.template = None
        self._packets: deque[av.Packet] = deque()
        self._lock = threading.Lock()
        self.ended = False
        self.dropped = 0
        self.video_start: float | None = None  # input time of the first video frame decoded
        self.last_end_s: float | None = None  # input time where the latest packet pushed ends

    def push(self, packet: av.Packet) -> None:
        with self._lock:
            if len(self._packets) >= MAX_QUEUED_PACKETS:
                self._packets.popleft()
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("audio is not being written out fast enough; dropping the oldest")
            self._packets.append(packet)
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is not None:
                end = float((ts + (packet.duration or 0)) * self.time_base)
                self.last_end_s = end if self.last_end_s is None else max(self.last_end_s, end)

    def end(self) -> None:
        self.ended = True

    def take(self, until_s: float | None) -> list[av.Packet]:
        """Packets (in input time) that start before ``until_s`` seconds (None: all)."""
        out = []
        with self._lock:
            while self._packets:
                pkt = self._packets[0]
                if until_s is not None and _start_s(pkt, self.time_base) >= until_s:
                    break
                out.append(self._packets.popleft())
        return out

    def __repr__(self) -> str:
        return f"AudioFeed({self.codec_name}, {self.sample_rate} Hz, {self.layout})"


def _start_s(pkt: av.Packet, time_base: Fraction) -> float:
    ts = pkt.pts if pkt.pts is not None else pkt.dts
    return float(ts * time_base) if ts is not None else float("-inf")


def can_copy(feed: AudioFeed, fmt: str) -> bool:
    """Whether ``feed``'s codec goes into the ``fmt`` muxer as it is."""
    if feed.template is None or feed.codec_name not in COPY_CODECS.get(fmt, frozenset()):
        return False
    return not (fmt == "flv" and feed.codec_name == "mp3" and feed.sample_rate not in _FLV_MP3_RATES)


class AudioOutput:
    """The audio track of one output container, fed from an :class:`AudioFeed`.

    Made before the container's header is written. ``origin_s`` (input time of the first output
    video frame) is set by the sink; ``write_until(t)`` muxes the audio up to ``t`` seconds of
    output time, ``finish(end)`` the rest up to the video's end, and flushes the encoder.
    """

    def __init__(self, container: av.container.OutputContainer, feed: AudioFeed, fmt: str) -> None:
        self.feed, self.container = feed, container
        self.origin_s: float | None = None
        self.copied = can_copy(feed, fmt)
        self.failed = False
        if self.copied:
            try:
                self.stream = container.add_stream_from_template(feed.template)
            except (ValueError, av.error.FFmpegError) as exc:
                log.info("audio %s cannot be copied into %s (%s); encoding it", feed.codec_name, fmt, exc)
                self.copied = False
        if not self.copied:
            self._open_encoder(fmt)
        log.info("audio: %s %s into %s", feed.codec_name, "copied" if self.copied else
                 f"encoded to {self.stream.codec_context.name}", fmt)

    @property
    def codec_name(self) -> str:
        return self.stream.codec_context.name if self.stream.codec_context else self.feed.codec_name

    def _open_encoder(self, fmt: str) -> None:
        feed = self.feed
        name, rates = ("libopus", (48000,)) if fmt == "webm" else ("aac", _AAC_RATES)
        self.rate = feed.sample_rate if feed.sample_rate in rates else 48000
        channels = feed.channels or 2
        layout = feed.layout if 0 < channels <= (8 if name == "aac" else 2) else "stereo"
        self.stream = self.container.add_stream(name, rate=self.rate, layout=layout)
        ctx = self.stream.codec_context
        ctx.format = "fltp" if name == "aac" else "s16"
        self.stream.time_base = Fraction(1, self.rate)
        self._frame_size = 1024 if name == "aac" else 960
        self._resampler = av.AudioResampler(format=ctx.format, layout=layout, rate=self.rate)
        self._fifo = av.AudioFifo()
        self._in_next: int | None = None  # next input sample (input rate, output time) expected
        self._out_start: int | None = None  # output sample of the first one encoded

    # -- feeding -------------------------------------------------------------------------------
    def write_until(self, until_s: float) -> None:
        """Mux the audio that starts before ``until_s`` seconds of output time."""
        if self.origin_s is None or self.failed:
            return
        self._write(self.feed.take(self.origin_s + until_s), None)

    def finish(self, end_s: float | None) -> None:
        """Mux what is left up to ``end_s`` seconds of output time (the video's end), flush."""
        if self.failed:
            return
        if self.origin_s is None:  # no video frame written: no time line to put the audio on
            return
        end_abs = None if end_s is None else self.origin_s + end_s
        self._write(self.feed.take(end_abs), end_abs)
        if not self.copied:
            self._guard(self._flush)

    def _write(self, packets: list[av.Packet], end_abs: float | None) -> None:
        for pkt in packets:
            if not self._guard(self._copy if self.copied else self._encode, pkt, end_abs):
                return

    def _guard(self, fn, *args) -> bool:
        try:
            fn(*args)
            return True
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            # a broken audio packet or encoder must not end the video: the track stops here
            log.warning("audio stopped: %s", exc)
            self.failed = True
            return False

    def _copy(self, pkt: av.Packet, end_abs: float | None) -> None:
        tb = self.feed.time_base
        start = _start_s(pkt, tb)
        if start < self.origin_s - 1e-6 or (end_abs is not None and start >= end_abs):
            # before the first video frame (e.g. AAC priming, which only MP4 could mark as such:
            # kept, it would be heard 1024 samples early), or past the video's end
            return
        shift = int(round(self.origin_s / tb))
        if pkt.pts is not None:
            pkt.pts -= shift
        if pkt.dts is not None:
            pkt.dts -= shift
        pkt.stream = self.stream
        self.container.mux(pkt)

    def _encode(self, pkt: av.Packet, end_abs: float | None) -> None:
        for frame in self.feed.decoder.decode(pkt):
            self._encode_frame(frame, end_abs)

    def _encode_frame(self, frame: av.AudioFrame, end_abs: float | None) -> None:
        rate = frame.sample_rate
        if frame.pts is not None and frame.time_base:
            first = int(round((float(frame.pts * frame.time_base) - self.origin_s) * rate))
        else:  # no timestamp: it follows the previous frame
            first = self._in_next or 0
        if self._in_next is not None:
            if first > self._in_next + GAP_S * rate:
                self._push(_silence(frame, first - self._in_next))  # a gap in the input: silence keeps sync
            else:
                first = self._in_next  # jitter or a small overlap: the frame follows on directly
        skip = max(0, -first)  # samples before the first video frame
        hi = first + frame.samples
        if end_abs is not None:
            hi = min(hi, int(round((end_abs - self.origin_s) * rate)))
        if hi <= first + skip:
            return  # wholly before the first video frame, or past the video's end
        if self._out_start is None:
            self._out_start = int(round((first + skip) / rate * self.rate))
        self._push(_trim(frame, skip, hi - first - skip))
        self._in_next = hi

    def _push(self, frame: av.AudioFrame) -> None:
        frame.pts = None
        for out in self._resampler.resample(frame):
            out.pts = None
            self._fifo.write(out)
        self._drain(partial=False)

    def _drain(self, partial: bool) -> None:
        while self._fifo.samples >= self._frame_size or (partial and self._fifo.samples):
            read = self._fifo.samples_read
            frame = self._fifo.read(min(self._frame_size, self._fifo.samples), partial=partial)
            if frame is None:
                return
            frame.pts = self._out_start + read
            frame.time_base = Fraction(1, self.rate)
            self.container.mux(self.stream.encode(frame))

    def _flush(self) -> None:
        if self._out_start is not None:
            for out in self._resampler.resample(None):
                out.pts = None
                self._fifo.write(out)
            self._drain(partial=True)
        self.container.mux(self.stream.encode(None))


def attach_audio(container: av.container.OutputContainer, feed: AudioFeed | None, fmt: str) -> AudioOutput | None:
    """An audio track for ``container`` fed from ``feed`` (None without one, or when no track
    can be made: the video goes on without it, with a warning)."""
    if feed is None:
        return None
    try:
        return AudioOutput(container, feed, fmt)
    except (av.error.FFmpegError, ValueError, TypeError, AttributeError) as exc:
        log.warning("the output gets no audio: %s %s could neither be copied into %s nor encoded (%s)",
                    feed.codec_name, feed.layout, fmt, exc)
        return None


def _trim(frame: av.AudioFrame, skip: int, count: int) -> av.AudioFrame:
    """Samples ``skip`` .. ``skip + count`` of ``frame`` (the frame itself when that is all)."""
    if skip == 0 and count >= frame.samples:
        return frame
    arr = frame.to_ndarray()
    ch = 1 if frame.format.is_planar else len(frame.layout.channels)
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr[:, skip * ch:(skip + count) * ch]),
                                     format=frame.format.name, layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    return out


def _silence(like: av.AudioFrame, samples: int) -> av.AudioFrame:
    ch = len(like.layout.channels)
    planar = like.format.is_planar
    shape = (ch, samples) if planar else (1, samples * ch)
    dtype = like.to_ndarray().dtype
    out = av.AudioFrame.from_ndarray(np.zeros(shape, dtype), format=like.format.name, layout=like.layout.name)
    out.sample_rate = like.sample_rate
    return out
