"""Encode YUV 4:2:0 planes to a video file (the file sink, and test/benchmark media).

The file is written under a temporary name and renamed into place only when it is complete, so
an interrupted run never leaves a file that looks finished.
"""

from __future__ import annotations

import logging
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
    if os.path.isdir(path):
        raise SinkError(f"cannot write {path!r}: it is a folder, expected a video file name")
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

    def codec_options(self) -> dict[str, str]:
        if self.codec != "libx264":
            opts = {"g": str(self.keyint)}
            if self.bitrate_bps is None and self.qp is not None:
                opts["qscale"] = str(max(self.qp, 1))
            return opts
        params = [f"keyint={self.keyint}", f"min-keyint={self.keyint}", f"bframes={self.bframes}",
                  f"ref={self.refs}", "scenecut=0"]
        opts = {"preset": self.preset, "x264-params": ":".join(params)}
        if self.threads is not None:
            opts["threads"] = str(self.threads)
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


class VideoWriter:
    """Write frames (Y, U, V planes) to ``path``; ``close()`` finalises and renames into place.

    Odd sizes are padded to even (4:2:0 encoders need even sizes) by edge replication.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int,
                 settings: EncodeSettings = EncodeSettings()) -> None:
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
        rate = Fraction(settings.fps).limit_denominator(1001)
        try:
            self._stream = self._container.add_stream(settings.codec, rate=rate)
        except (av.error.FFmpegError, ValueError) as exc:
            self._container.close()
            os.unlink(self._tmp)
            raise ConfigError(f"encoder {settings.codec!r} unavailable: {exc}") from None
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        if settings.bitrate_bps and settings.codec != "libx264":
            self._stream.bit_rate = settings.bitrate_bps
        self._stream.options = settings.codec_options()
        self._count = 0
        self._closed = False

    def write(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, index: int | None = None) -> None:
        """Encode one frame; ``index`` is its frame number in output time (default: the next),
        so a live stream that dropped frames keeps its timing."""
        if y.shape[0] > self.height or y.shape[1] > self.width:
            raise SinkError(f"frame size changed: expected at most {self.width}x{self.height}, "
                            f"got {y.shape[1]}x{y.shape[0]}")
        if y.shape != (self.height, self.width):
            y = np.pad(y, ((0, self.height - y.shape[0]), (0, self.width - y.shape[1])), mode="edge")
        frame = yuv_to_frame(y, u, v)
        frame.pts = self._count if index is None else index
        frame.time_base = self._stream.codec_context.time_base or Fraction(1, 30)
        self._count += 1
        try:
            for pkt in self._stream.encode(frame):
                self._container.mux(pkt)
        except (av.error.FFmpegError, OSError) as exc:  # disk full, file size limit, I/O error
            raise SinkError(f"cannot write {self.path!r}: {_reason(exc)}") from None

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
