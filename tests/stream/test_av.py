"""Nothing a user sends is lost: audio comes through in sync (copied or encoded to AAC), frames
keep the input's timestamps (variable frame rate too), raw .h264 runs at its SPS rate, --fps
overrides it, and HLS segments are cut by time."""

import json
import os
import re
from dataclasses import replace
from fractions import Fraction

import av
import pytest

from anchorsr import cli
from anchorsr.pipeline import PipelineOptions, enhance_file, enhance_stream
from anchorsr.stream import EncodeSettings, VideoSource, hls_sink
from anchorsr.stream.h264 import find_sps
from tests.conftest import pan_frames
from tests.stream.av_media import make_clip, streams_of

FPS = 30
OPTS = PipelineOptions(model="bicubic", chunk_frames=15, patch_px=32)
# irregular frame times (seconds): steps of 1, 2 and 3 frame periods, and an odd one
VFR_TIMES = [0.0, 0.033, 0.1, 0.133, 0.2, 0.3, 0.333, 0.4, 0.5, 0.55, 0.6, 0.7, 0.733, 0.8, 0.9, 0.95,
             1.0, 1.1, 1.133, 1.2]


def assert_in_sync(info, n_frames, fps=FPS):
    video, audio = info["video"], info["audio"]
    assert video["frames"] == n_frames
    assert abs(audio["start"] - video["start"]) <= 1 / fps
    assert abs(audio["end"] - video["end"]) <= 1 / fps, (audio, video["end"])


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("av")
    make_clip(str(d / "aac.mp4"), 30)
    make_clip(str(d / "pcm.mov"), 30, audio="pcm_s16le")
    make_clip(str(d / "vfr.mp4"), len(VFR_TIMES), times=VFR_TIMES, time_base=Fraction(1, 90000))
    make_clip(str(d / "raw30.h264"), 45, audio=None, fmt="h264")
    return d


def test_audio_is_copied_in_sync_into_a_file(media, tmp_path):
    out = str(tmp_path / "out.mp4")
    enhance_file(str(media / "aac.mp4"), out, OPTS)
    info = streams_of(out)
    assert info["audio"]["codec"] == "aac" and info["audio"]["rate"] == 48000
    assert_in_sync(info, 30)


def test_audio_the_output_cannot_take_is_encoded_to_aac(media, tmp_path):
    src = VideoSource(str(media / "pcm.mov"), audio=True)
    assert src.audio is not None and src.audio.codec_name == "pcm_s16le"
    src.close()
    assert VideoSource(str(media / "pcm.mov")).audio is None  # read only when asked for
    out = str(tmp_path / "out.mp4")
    enhance_file(str(media / "pcm.mov"), out, OPTS)
    info = streams_of(out)
    assert info["audio"]["codec"] == "aac"
    assert_in_sync(info, 30)
    # stopping early cuts the audio at the video's end
    short = str(tmp_path / "short.mp4")
    enhance_file(str(media / "pcm.mov"), short, replace(OPTS, max_frames=10))
    assert_in_sync(streams_of(short), 10)


@pytest.mark.parametrize("target", ["out.mp4", "hls/"], ids=["file", "hls"])
def test_no_audio_drops_it(media, tmp_path, target):
    """--no-audio reaches both runners: the sequential one (a file) and the real-time one (HLS)."""
    out = str(tmp_path / target)
    assert cli.main(["enhance", str(media / "aac.mp4"), "-o", out, "--model", "bicubic", "--chunk-frames", "15",
                     "--patch-px", "32", "--no-audio"]) == 0
    with av.open(os.path.join(out, "index.m3u8") if out.endswith("/") else out) as c:
        assert not c.streams.audio and len(c.streams.video) == 1


def test_vfr_timestamps_survive_a_file(media, tmp_path):
    out = str(tmp_path / "out.mp4")
    enhance_file(str(media / "vfr.mp4"), out, OPTS)
    got = streams_of(out)["video"]["times"]
    assert got == pytest.approx(VFR_TIMES, abs=1e-4)


def test_hls_output_carries_audio_and_the_input_timestamps(media, tmp_path):
    out = str(tmp_path / "hls") + "/"
    options = PipelineOptions(realtime=False, chunk_frames=10, patch_px=32, segment_s=0.4)
    enhance_stream(str(media / "vfr.mp4"), out, options, model="bicubic")
    info = streams_of(os.path.join(out, "index.m3u8"))
    times = info["video"]["times"]
    assert [t - times[0] for t in times] == pytest.approx(VFR_TIMES, abs=1e-4)
    assert info["audio"]["codec"] == "aac"
    assert_in_sync(info, len(VFR_TIMES))


def test_hls_segments_are_cut_by_time_not_by_frame_count(tmp_path):
    folder = str(tmp_path / "hls")
    # the nominal rate is wrong (10 fps) and frames come at 30 fps: segments still last 0.5 s
    sink = hls_sink(folder, 96, 64, EncodeSettings(fps=10, keyint=5, preset="ultrafast"), segment_s=0.5)
    for i, (y, u, v) in enumerate(pan_frames(60, w=96, h=64)):
        sink.write(y, u, v, time=10.0 + i / 30)
    sink.close()
    text = open(os.path.join(folder, "index.m3u8")).read()
    durations = [float(d) for d in re.findall(r"#EXTINF:([\d.]+),", text)]
    # (FFmpeg states the last segment's duration from the nominal rate: its frames are checked)
    assert len(durations) == 4 and durations[:3] == pytest.approx([0.5] * 3, abs=0.02)
    for seg in re.findall(r"^(seg\d+\.ts)$", text, re.M):
        with av.open(os.path.join(folder, seg)) as c:
            frames = list(c.decode(video=0))
        assert len(frames) == 15 and frames[0].key_frame


def test_raw_h264_runs_at_its_sps_rate_and_fps_overrides_it(media, tmp_path, capsys):
    raw = str(media / "raw30.h264")
    with av.open(raw) as c:
        pkt = next(p for p in c.demux(video=0) if p.size)
        assert find_sps(bytes(pkt)).frame_rate == 30
    assert cli.main(["inspect", raw, "--json", "--max-frames", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["fps"] == 30
    assert cli.main(["inspect", raw, "--json", "--max-frames", "5", "--fps", "24"]) == 0
    assert json.loads(capsys.readouterr().out)["fps"] == 24
    for fps, name in ((None, "30.mp4"), (24, "24.mp4")):
        out = str(tmp_path / name)
        enhance_file(raw, out, replace(OPTS, fps=fps))
        video = streams_of(out)["video"]
        rate = fps or 30
        assert video["frames"] == 45 and video["rate"] == pytest.approx(rate, rel=1e-3)
        assert video["end"] - video["start"] == pytest.approx(45 / rate, abs=1e-3)


def test_a_live_tcp_stream_brings_its_audio_from_the_one_demuxer(tmp_path):
    import socket
    import threading

    from tests.pipeline.live_media import send_tcp

    ts = str(tmp_path / "live.ts")
    make_clip(ts, 60, w=160, h=96)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sender = threading.Thread(target=send_tcp, args=(port, open(ts, "rb").read(), 2.0), daemon=True)
    sender.start()
    out = str(tmp_path / "hls") + "/"
    info = enhance_stream(f"tcp://127.0.0.1:{port}?listen=1", out,
                          PipelineOptions(chunk_frames=15, patch_px=32, segment_s=1), model="bicubic", timeout_s=30)
    sender.join(30)
    got = streams_of(os.path.join(out, "index.m3u8"))
    assert got["audio"]["codec"] == "aac"
    # (a loaded machine may drop frames in real time: the audio still ends with the video)
    assert info["frames_out"] > 30
    assert_in_sync(got, info["frames_out"])
