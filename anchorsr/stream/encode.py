"""Encode YUV 4:2:0 planes to a video file (the file sink, and test/benchmark media).

The file is written under a temporary name and renamed into place only when it is complete, so
an interrupted run never leaves a file that looks finished.

Timestamps: a frame written with its input ``time`` (seconds) keeps it, relative to the first
frame, in ``EncodeSettings.time_base`` (the input's, so variable frame rate survives exactly);
a frame written with only an ``index`` is placed at ``index / fps``. With ``key_interval_s``
key frames are forced by output time, on a grid of that step (an HLS segment is cut at the first
key frame after each ``hls_time`` seconds), not by a frame count.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable

import av
import numpy as np

from ..errors import ConfigError, SinkError
from .frames import yuv_to_frame

log = logging.getLogger(__name__)

# File outputs: containers that take libx264's H.264 (no extension: MP4). Anything else, e.g.
# .webm (VP8/VP9/AV1 only), is refused before any work starts.
OUTPUT_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".flv", ".ts", ".h264", ".264")


def partial_path(path: str | os.PathLike) -> str:
    """The temporary name a file output is written under until it is complete."""
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}.partial{ext or '.mp4'}"


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def check_output_file(path: str | os.PathLike) -> None:
    """Fail with a one-line :class:`SinkError` on a file output that cannot be written (unknown
    container, missing, non-folder or read-only folder), before any work is done.

    Writability is probed by creating and removing a file in the folder, so a read-only file
    system is caught for every user, root included.
    """
    import tempfile

    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext and ext not in OUTPUT_EXTENSIONS:
        raise SinkError(f"cannot write {path!r}: expected a file ending in {', '.join(OUTPUT_EXTENSIONS)} "
                        f"(H.264 video), got {ext!r}")
    check_output_folder(path, "a video file name")


def check_output_folder(path: str, expected: str) -> None:
    """One-line :class:`SinkError` unless ``path`` names a file (``expected`` says which kind)
    in an existing, writable folder."""
    import tempfile

    if os.path.isdir(path):
        raise SinkError(f"cannot write {path!r}: it is a folder, expected {expected}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(parent):
        raise SinkError(f"output folder does not exist: {parent!r}")
    if not os.path.isdir(parent):
        raise SinkError(f"cannot write {path!r}: {parent!r} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".anchorsr-", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise SinkError(f"cannot write to the output folder {parent!r}: {_reason(exc)}") from None


@dataclass(frozen=True)
class EncodeSettings:
    """libx264 settings; the defaults are the live profile anchorsr reuses directly."""

    codec: str = "libx264"
    fps: float = 30.0
    keyint: int = 60
    bframes: int = 0
    refs: int = 1
    crf: float | None = 18.0
    qp: int | None = None  # qp=0 is lossless
    bitrate_bps: int | None = None
    preset: str = "veryfast"
    zerolatency: bool = True
    threads: int | None = None  # encoder threads (None: FFmpeg's choice)
    time_base: Fraction | None = None  # of the output timestamps (None: 1/fps)
    key_interval_s: float | None = None  # key frames forced every this many seconds of output time

    @property
    def rate(self) -> Fraction:
        return Fraction(self.fps).limit_denominator(1001)

    def codec_options(self) -> dict[str, str]:
        keyint = self.keyint
        if self.key_interval_s is not None:
            # key frames come by time; x264's own interval is only a ceiling (a rate far above fps)
            keyint = max(keyint, 4 * int(round(self.fps * self.key_interval_s)), 1)
        if self.codec != "libx264":
            opts = {"g": str(keyint)}
            if self.bitrate_bps is None and self.qp is not None:
                opts["qscale"] = str(max(self.qp, 1))
            return opts
        params = [f"keyint={keyint}", f"min-keyint={keyint}", f"bframes={self.bframes}",
                  f"ref={self.refs}", "scenecut=0"]
        opts = {"preset": self.preset, "x264-params": ":".join(params)}
        if self.threads is not None:
            opts["threads"] = str(self.threads)
        if self.key_interval_s is not None:
            opts["forced-idr"] = "1"
        if self.zerolatency:
            opts["tune"] = "zerolatency"
        if self.bitrate_bps is not None:
            kbps = max(self.bitrate_bps // 1000, 1)
            params += [f"bitrate={kbps}", f"vbv-maxrate={kbps}", f"vbv-bufsize={kbps}"]
            opts["x264-params"] = ":".join(params)
        elif self.qp is not None:
            opts["qp"] = str(self.qp)
        elif self.crf is not None:
            opts["crf"] = str(self.crf)
        return opts


class FrameClock:
    """Output timestamps of one video stream, from input times or from frame numbers.

    With ``key_interval_s`` the key frames lie on a grid of that step from the first frame: a
    frame at or past the next grid time is a key frame. ``gap_fill`` tells where a gap in the
    timestamps (frames dropped) skips a grid time or leaves a segment nearly empty, so that a
    sink can repeat the last frame there.
    """

    # a gap longer than this is a jump in the input's clock, not dropped frames: left as it is
    MAX_FILL_S = 30.0
    # Fewest frames a segment may hold where frames were dropped. Chromium's native HLS player
    # (version 156), joining a live playlist at a segment of 7 or fewer frames, however they are
    # spaced, stops with DEMUXER_ERROR_COULD_NOT_PARSE, and plays one of 8 (replayed on a live
    # stream's own segments; played through from the start, such segments pass); 10 leaves a
    # margin. A segment with fewer frame slots than this is filled completely.
    MIN_SEGMENT_FRAMES = 10

    def __init__(self, settings: EncodeSettings) -> None:
        self.fps = settings.fps
        self._settings = settings
        # frames numbered at a nominal rate: 1/rate; frames that come with their times and no
        # time base of their own: a 90 kHz clock (MPEG's), fine enough for any frame rate
        self.time_base: Fraction = settings.time_base or 1 / settings.rate
        self.key_interval_s = settings.key_interval_s
        # the grid in whole microseconds, as FFmpeg's HLS muxer reads its hls_time
        self.key_step: Fraction | None = (Fraction(max(round(settings.key_interval_s * 1e6), 1), 10**6)
                                          if settings.key_interval_s is not None else None)
        self.origin_s: float | None = None  # input time of the first frame
        self.last_pts: int | None = None
        self.count = 0
        self._next_key = Fraction(0)
        self._segment_frames = 0  # frames stamped since the last key frame (with it)
        fps = Fraction(settings.fps).limit_denominator(1001)
        self._half_frame = Fraction(1, 2) / fps
        # the frames a segment that drops left short is topped up to: all its slots when fewer
        self._least_frames = (min(self.MIN_SEGMENT_FRAMES, max(int(round(self.key_step * fps)), 1))
                              if self.key_step is not None else 0)
        self.frame_ticks = max(int(round(1 / (settings.fps * self.time_base))), 1)

    def _choose_time_base(self, timed: bool) -> None:
        if timed and self._settings.time_base is None:
            self.time_base = Fraction(1, 90000)
            self.frame_ticks = max(int(round(1 / (self.fps * self.time_base))), 1)

    def _pts(self, index: int | None, time: float | None) -> int:
        """The pts a frame at input ``time`` (or number ``index``) gets; settles the origin."""
        if self.last_pts is None:
            self._choose_time_base(time is not None)
        if time is not None:
            if self.origin_s is None:
                self.origin_s = time
            rel = time - self.origin_s
        else:
            rel = (self.count if index is None else index) / self.fps
        pts = int(round(rel / self.time_base))
        if self.last_pts is not None and pts <= self.last_pts:
            pts = self.last_pts + 1  # timestamps must increase (duplicates, rounding)
        return pts

    def stamp(self, frame: av.VideoFrame, index: int | None = None, time: float | None = None) -> float:
        """Set ``frame``'s pts, time base, duration and (by time) key-frame request; returns its
        output time in seconds. ``time``: input time in seconds; else ``index`` (default: the
        next frame number) at the nominal rate. The first call settles ``time_base``."""
        out_s = self.stamp_at(frame, self._pts(index, time))
        self.count += 1
        return out_s

    def stamp_at(self, frame: av.VideoFrame, pts: int) -> float:
        """Stamp ``frame`` at ``pts`` (a key frame when it is on or past the next grid time)."""
        self.last_pts = pts
        frame.pts, frame.time_base = pts, self.time_base
        frame.duration = self.frame_ticks
        out = pts * self.time_base
        self._segment_frames += 1
        if self.key_step is not None and out >= self._next_key:
            frame.pict_type = av.video.frame.PictureType.I
            self._next_key = (math.floor(out / self.key_step) + 1) * self.key_step
            self._segment_frames = 1
        else:  # the encoder's choice (a frame stamped again as a repeat may carry an earlier I)
            frame.pict_type = av.video.frame.PictureType.NONE
        return float(out)

    def gap_fill(self, index: int | None = None, time: float | None = None) -> list[int]:
        """The pts of the repeats (of the last frame) that must come before the frame to come (at
        ``time`` or ``index``) where frames were dropped, so that every segment holds at least
        ``MIN_SEGMENT_FRAMES`` frames (or all of its frame slots, when it has fewer) and starts
        with a key frame on its grid time:

        * each segment that the frame to come closes (it lies on or past the segment's end) is
          topped up with repeats spread evenly between its last frame and its end;
        * each grid time that the frame to come would skip (more than half a frame before it,
          no frame since) gets a repeat of its own, the key frame of the segment starting there.

        Empty without a grid, before the first frame, and across a jump of more than
        ``MAX_FILL_S``."""
        if self.key_step is None or self.last_pts is None:
            return []
        out = self._pts(index, time) * self.time_base
        if out - self._next_key > self.MAX_FILL_S:
            return []
        fills: list[int] = []
        last, held, key = self.last_pts, self._segment_frames, self._next_key
        while out >= key:  # the segment ending at ``key`` is closed by the frame to come
            key_pts = max(math.ceil(key / self.time_base), last + 1)
            room = key_pts - last - 1  # ticks free between the segment's last frame and its end
            add = min(self._least_frames - held, room)
            start = last
            for j in range(1, add + 1):  # evenly spread over the gap, on distinct ticks
                pts = max(last + 1, start + round(j * (key_pts - start) / (add + 1)))
                fills.append(pts)
                last = pts
            if out - key <= self._half_frame:
                break  # the frame to come is this grid time's key frame
            fills.append(key_pts)
            last, held, key = key_pts, 1, key + self.key_step
        return fills

    @property
    def end_s(self) -> float | None:
        """Output time where the last frame ends (None before the first)."""
        if self.last_pts is None:
            return None
        return float((self.last_pts + self.frame_ticks) * self.time_base)


class VideoWriter:
    """Write frames (Y, U, V planes) to ``path``; ``close()`` finalises and renames into place.

    Odd sizes are padded to even (4:2:0 encoders need even sizes) by edge replication.
    ``audio`` (an :class:`~anchorsr.stream.audio.AudioFeed`) adds the input's audio track.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int,
                 settings: EncodeSettings = EncodeSettings(), audio=None) -> None:
        if width < 2 or height < 2:
            raise ConfigError(f"output size must be at least 2x2, got {width}x{height}")
        self.path = os.fspath(path)
        self.width, self.height = width + (width & 1), height + (height & 1)
        self._tmp = partial_path(self.path)
        check_output_file(self.path)
        try:
            self._container = av.open(self._tmp, mode="w")
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise SinkError(f"cannot write {self.path!r}: {_reason(exc)}") from None
        try:
            self._stream = self._container.add_stream(settings.codec, rate=settings.rate)
        except (av.error.FFmpegError, ValueError) as exc:
            self._container.close()
            os.unlink(self._tmp)
            raise ConfigError(f"encoder {settings.codec!r} unavailable: {exc}") from None
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        if settings.bitrate_bps and settings.codec != "libx264":
            self._stream.bit_rate = settings.bitrate_bps
        self._stream.options = settings.codec_options()
        self._clock = FrameClock(settings)
        from .audio import attach_audio

        self.audio = attach_audio(self._container, audio, self._container.format.name.split(",")[0])
        self._count = 0
        self._closed = False

    def write(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, index: int | None = None,
              time: float | None = None) -> None:
        """Encode one frame at its input ``time`` (seconds), or else at frame number ``index``
        (default: the next), so a stream that dropped frames or has a variable rate keeps its
        timing."""
        if y.shape[0] > self.height or y.shape[1] > self.width:
            raise SinkError(f"frame size changed: expected at most {self.width}x{self.height}, "
                            f"got {y.shape[1]}x{y.shape[0]}")
        if y.shape != (self.height, self.width):
            y = np.pad(y, ((0, self.height - y.shape[0]), (0, self.width - y.shape[1])), mode="edge")
        frame = yuv_to_frame(y, u, v)
        out_s = self._clock.stamp(frame, index, time)
        if not self._count:
            self._stream.codec_context.time_base = self._clock.time_base
        if self.audio is not None and self.audio.origin_s is None:
            self.audio.origin_s = time if time is not None else (self.audio.feed.video_start or 0.0)
        self._count += 1
        try:
            for pkt in self._stream.encode(frame):
                self._container.mux(pkt)
        except (av.error.FFmpegError, OSError) as exc:  # disk full, file size limit, I/O error
            raise SinkError(f"cannot write {self.path!r}: {_reason(exc)}") from None
        if self.audio is not None:
            self.audio.write_until(out_s + 1 / self._clock.fps)

    @property
    def frames_written(self) -> int:
        return self._count

    def close(self) -> None:
        """Flush the encoder, finalise the file and move it to its final name.

        If that fails (disk full, I/O error), the partial file is removed and a SinkError raised.
        """
        if self._closed:
            return
        try:
            for pkt in self._stream.encode(None):
                self._container.mux(pkt)
            if self.audio is not None:
                self.audio.finish(self._clock.end_s)
            self._closed = True
            self._container.close()
            os.replace(self._tmp, self.path)
        except (av.error.FFmpegError, OSError) as exc:
            self._closed = False
            self.abort()
            raise SinkError(f"cannot write {self.path!r}: {_reason(exc)}") from None

    def abort(self) -> None:
        """Discard the partial file."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError) as exc:  # e.g. the disk is full: nothing to keep
            log.debug("closing %s failed: %s", self._tmp, exc)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif exc_type is KeyboardInterrupt:
            self.close()  # SIGINT finalises what was produced
        else:
            self.abort()


def write_clip(path: str | os.PathLike, frames: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
               settings: EncodeSettings = EncodeSettings()) -> int:
    """Encode an iterable of (Y, U, V) planes to ``path``; returns the frame count."""
    writer = None
    try:
        for y, u, v in frames:
            if writer is None:
                writer = VideoWriter(path, y.shape[1], y.shape[0], settings)
            writer.write(y, u, v)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        raise ConfigError("write_clip got no frames")
    writer.close()
    return writer.frames_written
