"""Test media with sound and with irregular timing, made here with PyAV: H.264 in the live profile
(zerolatency, ref=1, no B-frames) plus a sine audio track, variable-frame-rate clips and raw
Annex B streams."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from tests.conftest import pan_frames

LIVE_X264 = {"tune": "zerolatency", "preset": "ultrafast", "crf": "20",
             "x264-params": "ref=1:bframes=0:scenecut=0:keyint=15:min-keyint=15"}


def _audio_frame(signal: np.ndarray, fmt: str, layout: str, rate: int, start: int) -> av.AudioFrame:
    channels = 2 if layout == "stereo" else 1
    if fmt == "fltp":
        arr = np.repeat(signal[None].astype(np.float32), channels, axis=0)
    elif fmt == "s16":
        arr = np.repeat((signal * 32767).astype(np.int16)[:, None], channels, axis=1).reshape(1, -1)
    else:
        raise ValueError(fmt)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt, layout=layout)
    frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
    return frame


def make_clip(path: str, n_frames: int = 30, fps: int = 30, audio: str | None = "aac", *,
              times: list[float] | None = None, rate: int = 48000, w: int = 96, h: int = 64,
              fmt: str | None = None, time_base: Fraction | None = None) -> list[float]:
    """Write an H.264 clip with a 440 Hz sine track (``audio``: an encoder name, or None) lasting
    as long as the video; ``times``: each frame's timestamp in seconds (default i / fps). The
    audio is interleaved by time as a muxer expects. Returns the frame times."""
    times = [i / fps for i in range(n_frames)] if times is None else list(times)
    end = times[-1] + 1 / fps
    c = av.open(path, "w", format=fmt)
    v = c.add_stream("libx264", rate=fps)
    v.width, v.height, v.pix_fmt = w, h, "yuv420p"
    v.options = dict(LIVE_X264)
    tb = time_base or Fraction(1, fps)
    v.codec_context.time_base = tb
    a = None
    if audio:
        a = c.add_stream(audio, rate=rate)
        a.layout = "stereo"
        a_fmt = "fltp" if audio == "aac" else "s16"
        a.codec_context.format = a_fmt
        total = int(round(end * rate))
        signal = 0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / rate)
        block = 1024 if audio == "aac" else 960
    frames = pan_frames(n_frames, w=w, h=h)
    from anchorsr.stream import yuv_to_frame

    vi, ai = 0, 0
    while vi < n_frames or (a is not None and ai < total):
        if a is not None and ai < total and (vi >= n_frames or ai / rate <= times[vi]):
            k = min(block, total - ai)
            c.mux(a.encode(_audio_frame(signal[ai:ai + k], a_fmt, "stereo", rate, ai)))
            ai += k
        else:
            frame = yuv_to_frame(*next(frames))
            frame.pts, frame.time_base = int(round(times[vi] / tb)), tb
            c.mux(v.encode(frame))
            vi += 1
    if a is not None:
        c.mux(a.encode(None))
    c.mux(v.encode(None))
    c.close()
    return times


def streams_of(path: str) -> dict:
    """Per kind: decoded frame count and start/end in seconds (end = last frame's end)."""
    out = {}
    with av.open(path) as c:
        if c.streams.video:
            vs = c.streams.video[0]
            times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
            rate = float(vs.average_rate or vs.guessed_rate or 30)
            out["video"] = {"frames": len(times), "times": times, "start": times[0],
                            "end": times[-1] + (times[-1] - times[-2] if len(times) > 1 else 1 / rate),
                            "rate": rate}
    with av.open(path) as c:
        if c.streams.audio:
            s = c.streams.audio[0]
            frames = list(c.decode(audio=0))
            first = frames[0]
            start = float(first.pts * first.time_base)
            last = frames[-1]
            out["audio"] = {"codec": s.codec_context.name, "start": start,
                            "end": float(last.pts * last.time_base) + last.samples / last.sample_rate,
                            "samples": sum(f.samples for f in frames), "rate": first.sample_rate}
    return out
