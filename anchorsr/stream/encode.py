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
        root, ext = os.path.splitext(self.path)
        self._tmp = f"{root}.partial{ext or '.mp4'}"
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise SinkError(f"output folder does not exist: {parent!r}")
        try:
            self._container = av.open(self._tmp, mode="w")
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise SinkError(f"cannot write {self.path!r}: {exc}") from None
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
        for pkt in self._stream.encode(frame):
            self._container.mux(pkt)

    @property
    def frames_written(self) -> int:
        return self._count

    def close(self) -> None:
        """Flush the encoder, finalise the file and move it to its final name."""
        if self._closed:
            return
        self._closed = True
        for pkt in self._stream.encode(None):
            self._container.mux(pkt)
        self._container.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Discard the partial file."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
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
