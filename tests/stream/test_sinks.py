"""Live sinks: HLS written atomically and finalised; one output size; routing by target."""

import os
import re

import av
import pytest

from anchorsr.errors import SinkError
from anchorsr.stream import EncodeSettings, FileSink, MuxSink, hls_sink, open_sink
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
