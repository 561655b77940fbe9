"""Live test media: a tiny H.264 MPEG-TS stream sent over loopback at real-time pace, optionally
with corrupted or missing TS packets and an abrupt disconnect."""

from __future__ import annotations

import os
import socket
import threading
import time

import numpy as np

from anchorsr.stream import EncodeSettings, write_clip
from tests.conftest import pan_frames

LR_W, LR_H = 160, 96
TS_PACKET = 188


def make_ts(path: str, n_frames: int, keyint: int = 15, w: int = LR_W, h: int = LR_H) -> bytes:
    write_clip(path, pan_frames(n_frames, w=w, h=h), EncodeSettings(keyint=keyint, crf=20))
    with open(path, "rb") as fh:
        return fh.read()


def corrupt(data: bytes, at_fractions, n_packets: int = 3, seed: int = 0) -> bytes:
    """Scramble ``n_packets`` TS packets (all but the sync byte) at each fraction of the stream."""
    buf = bytearray(data)
    rng = np.random.default_rng(seed)
    total = len(buf) // TS_PACKET
    for frac in at_fractions:
        first = int(total * frac)
        for k in range(first, min(first + n_packets, total)):
            off = k * TS_PACKET
            buf[off + 1:off + TS_PACKET] = rng.integers(0, 256, TS_PACKET - 1, np.uint8).tobytes()
    return bytes(buf)


def drop_packets(data: bytes, at_fraction: float, n_packets: int) -> bytes:
    """Remove ``n_packets`` whole TS packets (a hole in the stream, as a lossy link makes)."""
    total = len(data) // TS_PACKET
    first = int(total * at_fraction)
    return data[:first * TS_PACKET] + data[(first + n_packets) * TS_PACKET:]


def send_tcp(port: int, data: bytes, duration_s: float, stop_after_fraction: float = 1.0,
             connect_timeout_s: float = 30.0) -> None:
    """Connect to 127.0.0.1:port (retrying until it listens) and send ``data`` evenly over
    ``duration_s``; stop abruptly (mid TS packet) after ``stop_after_fraction`` of it."""
    deadline = time.monotonic() + connect_timeout_s
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    end = int(len(data) * stop_after_fraction) + (7 if stop_after_fraction < 1 else 0)
    step = 4 * TS_PACKET
    t0 = time.monotonic()
    with sock:
        for off in range(0, min(end, len(data)), step):
            time.sleep(max(0.0, t0 + duration_s * off / len(data) - time.monotonic()))
            try:
                sock.sendall(data[off:min(off + step, end)])
            except (BrokenPipeError, ConnectionResetError):  # the server ended the stream (shutdown)
                return


def pusher(port: int, data: bytes, duration_s: float, **kw) -> threading.Thread:
    t = threading.Thread(target=send_tcp, args=(port, data, duration_s), kwargs=kw, daemon=True)
    t.start()
    return t


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.1):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def playlist_frames(playlist: str):
    """Decode an HLS playlist: list of (pts_seconds, Y plane) and the output size."""
    import av

    with av.open(playlist) as c:
        out = [(float(f.pts * f.time_base), f.to_ndarray(format="gray")) for f in c.decode(video=0)]
    return out


def exists(path: str) -> bool:
    return os.path.exists(path)


def _open_output(url: str, fmt: str, connect_timeout_s: float):
    """``url`` opened for writing as ``fmt``, retried until the server listens (or the time is up)."""
    import av

    deadline = time.monotonic() + connect_timeout_s
    while True:
        try:
            return av.open(url, "w", format=fmt)
        except (OSError, av.error.FFmpegError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def push_encoded(url: str, fmt: str, n_frames: int, fps: float = 30.0, connect_timeout_s: float = 30.0) -> None:
    """Encode a pan with libx264 and publish it to ``url`` with PyAV (``flv`` for RTMP,
    ``mpegts`` for UDP), one frame per 1/fps."""
    import av

    from anchorsr.stream.frames import yuv_to_frame

    out = _open_output(url, fmt, connect_timeout_s)
    stream = out.add_stream("libx264", rate=int(fps))
    stream.width, stream.height, stream.pix_fmt = LR_W, LR_H, "yuv420p"
    stream.options = EncodeSettings(keyint=15).codec_options()
    t0 = time.monotonic()
    with out:
        for i, (y, u, v) in enumerate(pan_frames(n_frames, w=LR_W, h=LR_H)):
            frame = yuv_to_frame(y, u, v)
            frame.pts = i
            out.mux(stream.encode(frame))
            time.sleep(max(0.0, t0 + (i + 1) / fps - time.monotonic()))
        out.mux(stream.encode(None))


def push_file(url: str, fmt: str, path: str, connect_timeout_s: float = 30.0) -> None:
    """Publish every stream of the file ``path`` (video and audio) to ``url`` as ``fmt`` (``flv``
    for RTMP), remuxed, each packet at its real-time instant (by its timestamp), as
    ``ffmpeg -re -i FILE -c copy -f FMT URL`` would."""
    import av

    with av.open(path) as src:
        templates = [s for s in src.streams if s.type in ("video", "audio")]
        deadline = time.monotonic() + connect_timeout_s
        while True:  # a TCP output connects when its header is written: retry until the server listens
            out = _open_output(url, fmt, max(0.0, deadline - time.monotonic()))
            streams = {s.index: out.add_stream_from_template(s) for s in templates}
            try:
                out.start_encoding()
                break
            except (OSError, av.error.FFmpegError):
                out.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        t0 = time.monotonic()
        with out:
            for pkt in src.demux(*[s for s in src.streams if s.index in streams]):
                if pkt.dts is None:
                    continue
                time.sleep(max(0.0, t0 + float(pkt.dts * pkt.time_base) - time.monotonic()))
                pkt.stream = streams[pkt.stream.index]
                out.mux(pkt)


def file_pusher(url: str, fmt: str, path: str) -> threading.Thread:
    t = threading.Thread(target=push_file, args=(url, fmt, path), daemon=True)
    t.start()
    return t
