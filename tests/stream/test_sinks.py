"""Live sinks: HLS written atomically and finalised; one output size; routing by target."""

import os
import re
from fractions import Fraction

import av
import pytest

from anchorsr.errors import SinkError
from anchorsr.stream import EncodeSettings, FileSink, MuxSink, hls_sink, open_sink
from anchorsr.stream.encode import FrameClock
from tests.conftest import pan_frames

W, H = 160, 96


def listed_segments(folder):
    text = open(os.path.join(folder, "index.m3u8")).read()
    return text, re.findall(r"^(seg\d+\.ts)$", text, re.M)


def test_hls_segments_and_playlist_are_atomic_and_finalised(tmp_path):
    folder = str(tmp_path / "hls")
    sink = hls_sink(folder, W, H, EncodeSettings(fps=30, keyint=10, preset="ultrafast"), segment_s=10 / 30)
    checked = 0
    for i, (y, u, v) in enumerate(pan_frames(60, w=W, h=H)):
        sink.write(y, u, v)
        if os.path.exists(os.path.join(folder, "index.m3u8")):
            text, segs = listed_segments(folder)
            assert "#EXT-X-ENDLIST" not in text
            for seg in segs:  # every listed segment is complete: it decodes to its 10 frames
                with av.open(os.path.join(folder, seg)) as c:
                    assert sum(1 for _ in c.decode(video=0)) == 10
                checked += 1
    sink.close()
    text, segs = listed_segments(folder)
    assert checked > 5 and text.rstrip().endswith("#EXT-X-ENDLIST")
    assert len(segs) == 6 and not [n for n in os.listdir(folder) if n.endswith(".tmp")]
    with av.open(os.path.join(folder, "index.m3u8")) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 60 and (frames[0].width, frames[0].height) == (W, H)


def test_a_new_input_size_is_rescaled_to_the_first(tmp_path):
    path = str(tmp_path / "out.mp4")
    sink = open_sink(path, W, H, EncodeSettings(keyint=10))
    assert isinstance(sink, FileSink)
    for y, u, v in pan_frames(3, w=W, h=H):
        sink.write(y, u, v)
    for y, u, v in pan_frames(3, w=100, h=60):
        sink.write(y, u, v)
    sink.close()
    assert sink.resized_frames == 3 and sink.frames_written == 6
    with av.open(path) as c:
        sizes = {(f.width, f.height) for f in c.decode(video=0)}
    assert sizes == {(W, H)}


def test_routing_and_bad_targets(tmp_path):
    s = open_sink(str(tmp_path / "a") + "/", W, H)
    assert isinstance(s, MuxSink) and s.target.endswith("index.m3u8")
    for y, u, v in pan_frames(3, w=W, h=H):
        s.write(y, u, v)
    s.close()
    assert os.path.exists(tmp_path / "a" / "index.m3u8")
    s = open_sink(str(tmp_path / "b.m3u8"), W, H)
    assert isinstance(s, MuxSink)
    s.close()
    with pytest.raises(SinkError, match="ftp://"):
        open_sink("ftp://example.invalid/x", W, H)


def test_abort_discards_a_file_but_finalises_hls(tmp_path):
    f = open_sink(str(tmp_path / "o.mp4"), W, H)
    y, u, v = next(pan_frames(1, w=W, h=H))
    f.write(y, u, v)
    f.abort()
    assert not os.listdir(tmp_path)
    h = open_sink(str(tmp_path / "h") + "/", W, H, EncodeSettings(keyint=5))
    for y, u, v in pan_frames(7, w=W, h=H):
        h.write(y, u, v)
    h.abort()
    assert open(tmp_path / "h" / "index.m3u8").read().rstrip().endswith("#EXT-X-ENDLIST")


def playlist_lines(folder):
    text = open(os.path.join(folder, "index.m3u8")).read()
    target = int(re.search(r"^#EXT-X-TARGETDURATION:(\d+)$", text, re.M).group(1))
    return text, target, [float(d) for d in re.findall(r"^#EXTINF:([\d.]+),", text, re.M)]


@pytest.mark.parametrize("segment_s, time_base", [(0.5, None), (1.0, None), (2.5, None), (1.0, Fraction(1, 1000))])
def test_dropped_frames_leave_hls_segments_of_the_set_duration(tmp_path, segment_s, time_base):
    """Frames missing across segment times (a live pipeline shedding load: runs of 2 to 50
    frames) still give segments of segment_s each: the last frame is repeated as the key frame
    at each such time, and every segment but the last holds at least MIN_SEGMENT_FRAMES frames
    (all its slots when it has fewer), as Chromium's native HLS player needs. TARGETDURATION is
    segment_s rounded up (FFmpeg writes 0 for 0.5 s)."""
    folder = str(tmp_path / "hls")
    sink = hls_sink(folder, W, H, EncodeSettings(fps=30, preset="ultrafast", time_base=time_base),
                    segment_s=segment_s)
    kept, i, frames = [], 0, list(pan_frames(12, w=W, h=H))
    for run, gap in [(7, 2), (20, 17), (3, 50), (9, 4), (30, 30), (40, 0)]:  # frames kept, then dropped
        for _ in range(run):
            y, u, v = frames[i % 12]
            sink.write(y, u, v, i, time=50.0 + i / 30)
            kept.append(i)
            i += 1
        i += gap
    sink.close()
    text, target, durations = playlist_lines(folder)
    assert target == {0.5: 1, 1.0: 1, 2.5: 3}[segment_s]
    span = (kept[-1] - kept[0]) / 30
    assert len(durations) == int(span / segment_s) + 1
    assert durations[:-1] == pytest.approx([segment_s] * (len(durations) - 1), abs=1e-3)
    assert sink.repeated_frames > 0 and sink.frames_written == len(kept) == 109
    with av.open(os.path.join(folder, "index.m3u8")) as c:
        decoded = [(round(float(f.pts * f.time_base), 4), f.key_frame) for f in c.decode(video=0)]
    assert len(decoded) == len(kept) + sink.repeated_frames
    keys = [t - decoded[0][0] for t, key in decoded if key]
    assert keys == pytest.approx([k * segment_s for k in range(len(keys))], abs=1e-3)
    assert sorted(n for n in os.listdir(folder) if not n.startswith("seg")) == ["index.m3u8"]  # the muxer's: gone
    segments = sorted(n for n in os.listdir(folder) if n.startswith("seg"))
    t0 = decoded[0][0]
    counts = []
    for name in segments:
        with av.open(os.path.join(folder, name)) as c:
            times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
        counts.append(len(times))
        assert times == sorted(set(times))  # repeats never share a time
        real = [t for t in times if any(abs(t - t0 - (k - kept[0]) / 30) < 1e-3 for k in kept)]
        top_ups = [t for t in times[1:] if t not in real]  # repeats other than the key frame
        if top_ups:  # spread evenly from the segment's last frame before them
            before = max(t for t in times if t < top_ups[0])
            steps = [b - a for a, b in zip([before, *top_ups], top_ups)]
            assert max(steps) - min(steps) < 2e-3, (name, times)
    # expected: a segment's kept frames, plus a repeat as its key frame when none lies on its
    # start, topped up to `least` unless it is the last (open) one
    slots = round(segment_s * 30)
    least = min(FrameClock.MIN_SEGMENT_FRAMES, slots)
    expected = []
    for k in range(len(counts)):
        real = [i for i in kept if i // slots == k]
        n = len(real) + (0 if k * slots in real else 1)
        expected.append(n if k == len(counts) - 1 else max(n, least))
    assert counts == expected
    assert min(counts[:-1]) >= min(8, slots)  # Chromium 156 plays 8 frames, stops on 7


def test_a_jump_in_the_input_clock_is_not_filled(tmp_path):
    folder = str(tmp_path / "hls")
    sink = hls_sink(folder, W, H, EncodeSettings(fps=30, preset="ultrafast"), segment_s=1.0)
    for k, (y, u, v) in enumerate(pan_frames(40, w=W, h=H)):
        sink.write(y, u, v, k, time=k / 30 + (3600.0 if k >= 20 else 0.0))  # the clock jumps by an hour
    sink.close()
    assert sink.repeated_frames == 0 and sink.frames_written == 40
