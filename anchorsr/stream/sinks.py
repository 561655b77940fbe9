"""Live outputs: an HLS folder, an MPEG-TS/FLV URL, or a video file, behind one small interface.

Every sink takes YUV 4:2:0 planes of one fixed size (the first frame's); a later frame of
another size (the input changed resolution) is rescaled to it, so a player never sees the
output size change. ``close()`` finalises (HLS: ``#EXT-X-ENDLIST``), ``abort()`` discards
what a file sink wrote.

HLS is written by FFmpeg's ``hls`` muxer with ``temp_file``: each segment and each rewrite of
the playlist goes to a ``.tmp`` name first and is renamed into place, so a player polling the
folder never reads half a segment or half a playlist. Segments are cut by time: the encoder makes
a key frame at every ``hls_time`` seconds of output time (``EncodeSettings.key_interval_s``), and
where frames were dropped across such a time, the last frame is repeated there as that key frame
(what a viewer sees in a gap anyway), so every segment but the last lasts ``hls_time`` exactly,
under overload too. A segment that drops left with fewer than ``FrameClock.MIN_SEGMENT_FRAMES``
frames is topped up with repeats of its last frame spread over the gap: Chromium's native HLS
player, joining a live stream at a segment of a few frames, cannot parse it and stops. The
muxer's playlist (``.index.m3u8``) is republished as ``index.m3u8`` with
``#EXT-X-TARGETDURATION`` set to ``hls_time`` rounded up (at least 1): FFmpeg writes the longest
segment rounded to the nearest second, 0 for half-second segments, which browsers refuse.

Frames written with their input ``time`` keep the input's timestamps (see ``encode.py``); an
``audio`` feed adds the input's audio track, copied or encoded to AAC (see ``audio.py``).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import replace

import av
import numpy as np

from ..errors import ConfigError, SinkError
from .audio import AudioFeed, attach_audio
from .encode import EncodeSettings, FrameClock, VideoWriter
from .frames import resize_yuv, yuv_to_frame

log = logging.getLogger(__name__)

HLS_PLAYLIST = "index.m3u8"
# Output URL scheme -> FFmpeg muxer.
_URL_FORMATS = {"rtmp://": "flv", "rtmps://": "flv", "udp://": "mpegts", "tcp://": "mpegts",
                "srt://": "mpegts"}


class Sink:
    """Base of the live outputs: ``write(y, u, v)`` planes, then ``close()`` or ``abort()``."""

    def __init__(self, width: int, height: int) -> None:
        if width < 2 or height < 2:
            raise ConfigError(f"output size must be at least 2x2, got {width}x{height}")
        self.width, self.height = width, height
        self.frames_written = 0
        self.resized_frames = 0
        self.repeated_frames = 0  # written again to fill a gap (an HLS sink's key frames and top-ups)

    def write(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, index: int | None = None,
              time: float | None = None) -> None:
        """Write one frame at its input ``time`` in seconds (the output keeps the input's
        timestamps, relative to the first frame), or else at ``index``, its frame number in
        output time (default: the next one). A live stream that dropped frames passes its own,
        leaving a gap in the timestamps."""
        if y.shape != (self.height, self.width):
            if not self.resized_frames:
                log.warning("input resolution changed; output frames rescaled to %dx%d", self.width, self.height)
            self.resized_frames += 1
            y, u, v = resize_yuv(y, u, v, self.width, self.height)
        index = self.frames_written if index is None else index
        if time is None:
            self._write(y, u, v, index)
        else:  # positional: a subclass names it as it likes
            self._write(y, u, v, index, time)
        self.frames_written += 1

    def _write(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, index: int, time: float | None = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        self.close()


class HlsPlaylist:
    """The playlist FFmpeg's ``hls`` muxer writes (``muxer_path``), republished at ``path`` with
    ``#EXT-X-TARGETDURATION`` = ``segment_s`` rounded up, at least 1, and never below a segment's
    duration rounded to the nearest second (the rule of RFC 8216).

    ``refresh()`` after each packet muxed (cheap: a ``stat`` unless the muxer rewrote its playlist)
    and ``finish()`` after the muxer closed: republishes, then removes the muxer's copy.
    """

    def __init__(self, path: str, segment_s: float) -> None:
        self.path = path
        self.muxer_path = os.path.join(os.path.dirname(path), "." + os.path.basename(path))  # hidden
        self.target = max(1, math.ceil(round(segment_s, 6)))
        self._seen: tuple[int, int] | None = None

    @staticmethod
    def target_duration(text: str, at_least: int) -> int:
        durations = [float(ln[len("#EXTINF:"):].split(",")[0]) for ln in text.splitlines()
                     if ln.startswith("#EXTINF:")]
        return max([at_least] + [math.floor(d + 0.5) for d in durations])

    def refresh(self) -> None:
        try:
            st = os.stat(self.muxer_path)
        except FileNotFoundError:  # no segment complete yet
            return
        if (st.st_mtime_ns, st.st_size) == self._seen:
            return
        self._seen = (st.st_mtime_ns, st.st_size)
        with open(self.muxer_path) as fh:
            text = fh.read()
        target = self.target_duration(text, self.target)
        lines = [f"#EXT-X-TARGETDURATION:{target}" if ln.startswith("#EXT-X-TARGETDURATION:") else ln
                 for ln in text.split("\n")]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as fh:
            fh.write("\n".join(lines))
        os.replace(tmp, self.path)

    def finish(self) -> None:
        self.refresh()
        if os.path.exists(self.path) and os.path.exists(self.muxer_path):
            os.unlink(self.muxer_path)


class MuxSink(Sink):
    """libx264 into one FFmpeg muxer: an HLS folder (``hls``) or a live URL (``mpegts``/``flv``).

    ``playlist``: the HLS playlist to republish (``target`` is then the muxer's own); with it,
    a drop across a key-frame time is filled by a repeat of the last frame, and a segment that
    drops left nearly empty is topped up with repeats (``repeated_frames``; ``FrameClock.gap_fill``).
    """

    def __init__(self, target: str, fmt: str, width: int, height: int, settings: EncodeSettings,
                 options: dict[str, str] | None = None, audio: AudioFeed | None = None,
                 playlist: HlsPlaylist | None = None) -> None:
        super().__init__(width, height)
        self.target = playlist.path if playlist is not None else target
        self.playlist = playlist
        self._last_frame: av.VideoFrame | None = None
        try:
            self._container = av.open(target, mode="w", format=fmt, options=options or {})
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise SinkError(f"cannot write {target!r}: {exc}") from None
        self._stream = self._container.add_stream(settings.codec, rate=settings.rate)
        # 4:2:0 needs even sizes: odd ones are padded by edge replication.
        self._stream.width, self._stream.height = width + (width & 1), height + (height & 1)
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = settings.codec_options()
        self._clock = FrameClock(settings)
        self.audio = attach_audio(self._container, audio, fmt)
        self._closed = False

    def _write(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, index: int, time: float | None = None) -> None:
        h, w = self._stream.height, self._stream.width
        if y.shape != (h, w):
            y = np.pad(y, ((0, h - y.shape[0]), (0, w - y.shape[1])), mode="edge")
        frame = yuv_to_frame(y, u, v)
        first = self._clock.last_pts is None
        if self.playlist is not None and self._last_frame is not None:
            for pts in self._clock.gap_fill(index, time):
                self._encode(self._last_frame, self._clock.stamp_at(self._last_frame, pts))
                self.repeated_frames += 1
        out_s = self._clock.stamp(frame, index, time)
        if first:
            self._stream.codec_context.time_base = self._clock.time_base
        if self.audio is not None and self.audio.origin_s is None:
            self.audio.origin_s = time if time is not None else (self.audio.feed.video_start or 0.0)
        self._encode(frame, out_s)
        self._last_frame = frame

    def _encode(self, frame: av.VideoFrame, out_s: float) -> None:
        try:
            self._container.mux(self._stream.encode(frame))
            if self.audio is not None:
                self.audio.write_until(out_s + 1 / self._clock.fps)
            if self.playlist is not None:
                self.playlist.refresh()
        except (av.error.FFmpegError, OSError) as exc:
            raise SinkError(f"cannot write to {self.target!r}: {exc}") from None

    def close(self) -> None:
        """Flush the encoder and write the trailer (HLS: the last segment and ``#EXT-X-ENDLIST``)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.mux(self._stream.encode(None))
            if self.audio is not None:
                self.audio.finish(self._clock.end_s)
        except (av.error.FFmpegError, OSError) as exc:
            log.warning("flushing %s failed: %s", self.target, exc)
        finally:
            try:
                self._container.close()
                if self.playlist is not None:
                    self.playlist.finish()
            except (av.error.FFmpegError, OSError) as exc:
                log.warning("closing %s failed: %s", self.target, exc)


class FileSink(Sink):
    """A video file, written under a temporary name and renamed into place by ``close()``."""

    def __init__(self, path: str, width: int, height: int, settings: EncodeSettings,
                 audio: AudioFeed | None = None) -> None:
        super().__init__(width, height)
        self._writer = VideoWriter(path, width, height, settings, audio)

    def _write(self, y, u, v, index, time=None) -> None:
        self._writer.write(y, u, v, index, time)

    def close(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        self._writer.abort()


def is_hls_target(target: str) -> bool:
    """An HLS output is named by its playlist (``.m3u8``) or by a folder (existing, or ending in /)."""
    return target.endswith((".m3u8", "/", os.sep)) or os.path.isdir(target)


def hls_sink(folder: str, width: int, height: int, settings: EncodeSettings,
             segment_s: float = 2.0, audio: AudioFeed | None = None, *,
             segment_prefix: str = "seg", append: bool = False) -> MuxSink:
    """An HLS event playlist ``folder/index.m3u8`` with ``seg00000.ts``... (the folder is created),
    cut into segments of ``segment_s`` seconds of output time (a key frame starts each).

    append: continue the playlist already there (a stream restarted elsewhere): its segments are
    kept, ``#EXT-X-ENDLIST`` is removed and ``#EXT-X-DISCONTINUITY`` marks where the new segments
    (named ``segment_prefix``..., numbered on from the old ones) begin."""
    playlist = folder if folder.endswith(".m3u8") else os.path.join(folder, HLS_PLAYLIST)
    parent = os.path.dirname(os.path.abspath(playlist))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise SinkError(f"cannot create the HLS folder {parent!r}: {exc.strerror}") from None
    published = HlsPlaylist(playlist, segment_s)
    if append and os.path.exists(playlist):  # the muxer continues the playlist viewers already have
        shutil.copyfile(playlist, published.muxer_path)
    settings = replace(settings, key_interval_s=segment_s)
    return MuxSink(published.muxer_path, "hls", width, height, settings,
                   hls_options(parent, segment_s, segment_prefix, append), audio,
                   playlist=published)


def hls_options(folder: str, segment_s: float, segment_prefix: str = "seg", append: bool = False) -> dict[str, str]:
    """FFmpeg ``hls`` muxer options: an event playlist of ``folder/PREFIX%05d.ts`` cut every
    ``segment_s`` seconds (in whole microseconds, as the key-frame grid of ``FrameClock``);
    append: continue the playlist there (the muxer marks the new segments with a discontinuity)."""
    return {"hls_time": f"{round(segment_s * 1e6) / 1e6:.6f}", "hls_list_size": "0", "hls_playlist_type": "event",
            "hls_flags": "temp_file+independent_segments" + ("+append_list" if append else ""),
            "hls_segment_filename": os.path.join(folder, segment_prefix + "%05d.ts")}


def check_target(target: str) -> None:
    """Fail at start-up on an output that cannot be written (unknown scheme, missing folder)."""
    if "://" in target:
        if not target.startswith(tuple(_URL_FORMATS)):
            raise SinkError(f"expected an output file, an HLS folder or an rtmp/udp/tcp/srt URL, got {target!r}")
    elif not is_hls_target(target) and not os.path.isdir(os.path.dirname(os.path.abspath(target))):
        raise SinkError(f"output folder does not exist: {os.path.dirname(os.path.abspath(target))!r}")


def open_sink(target: str, width: int, height: int, settings: EncodeSettings = EncodeSettings(),
              segment_s: float = 2.0, audio: AudioFeed | None = None) -> Sink:
    """The sink ``target`` names: an HLS folder/playlist, an rtmp/udp/tcp/srt URL, or a file;
    ``audio``: the input's audio feed (None: no audio track)."""
    check_target(target)
    for scheme, fmt in _URL_FORMATS.items():
        if target.startswith(scheme):
            return MuxSink(target, fmt, width, height, settings, audio=audio)
    if is_hls_target(target):
        return hls_sink(target, width, height, settings, segment_s, audio)
    return FileSink(target, width, height, settings, audio)
