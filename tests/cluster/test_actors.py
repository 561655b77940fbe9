"""The stream actor's work, run in process (no Ray): a restarted worker continues the playlist
after a discontinuity with exactly the frames the lost one had not finished."""

import os

import numpy as np

from anchorsr.cluster.actors import StreamWorker
from anchorsr.cluster.runner import end_playlist, finished_seconds
from anchorsr.pipeline import psnr
from anchorsr.pipeline.metrics_text import render_metrics
from anchorsr.pipeline.options import PipelineOptions
from anchorsr.reuse import upscale_bicubic
from anchorsr.stream import VideoSource, open_frames
from anchorsr.stream.packets import StreamParams, wire_packets
from tests.pipeline.live_media import make_ts, playlist_frames, wait_for

OPTIONS = PipelineOptions(model="bicubic", chunk_frames=15, patch_px=32, segment_s=0.5, realtime=False)


def test_a_restarted_worker_writes_each_frame_once_after_a_discontinuity(tmp_path):
    clip = str(tmp_path / "in.ts")
    make_ts(clip, 60, keyint=12)  # key frames off the 0.5 s segment grid
    lr = list(open_frames(clip))
    src = VideoSource(clip)
    params, packets = StreamParams.of(src, "cam"), list(wire_packets(src))
    folder = str(tmp_path / "cam-1")
    os.makedirs(folder)
    playlist = os.path.join(folder, "index.m3u8")

    lost = StreamWorker(params, folder, OPTIONS)  # fed 45 frames, then its node is "lost": never ended
    lost.feed(packets[:45])
    wait_for(lambda: lost.snapshot()["frames_out"] == 45, 60, "the first worker's frames")
    wait_for(lambda: finished_seconds(playlist, "seg") > 0, 30, "a finished segment")
    before = open(playlist).read()
    first = lost.snapshot()["first_time"]
    resume = first + finished_seconds(playlist, "seg")
    assert lr[0].time <= resume < lr[44].time
    key = max(i for i, p in enumerate(packets) if p.key and p.time <= resume + 1e-3)
    assert key > 0

    again = StreamWorker(params, folder, OPTIONS, segment_prefix="seg-r1-", append=True, write_from=resume - 1 / 60)
    again.feed(packets[key:])
    snap = again.end(60)
    assert snap["error"] is None and snap["frames_skipped_as_written"] > 0 and snap["node_id"] is None
    assert snap["sr"]["workers"] == 1 and "remote" not in snap["sr"]  # SR in the worker itself
    text = open(playlist).read()
    kept = [ln for ln in before.splitlines() if ln.endswith(".ts")]
    assert all(ln in text for ln in kept) and text.count("#EXT-X-DISCONTINUITY") == 1
    assert text.rstrip().endswith("#EXT-X-ENDLIST")
    frames = playlist_frames(playlist)
    assert len(frames) == 60
    for k, (_, y) in enumerate(frames):  # output frame k is input frame k: none lost, none twice
        ref = [psnr(y, upscale_bicubic(lr[j].y, lr[j].u, lr[j].v, 2)[0]) if 0 <= j < 60 else 0.0
               for j in (k - 1, k, k + 1)]
        assert ref[1] > max(ref[0], ref[2]) + 3, (k, ref)


def test_playlist_helpers_and_the_restart_metric(tmp_path):
    playlist = str(tmp_path / "index.m3u8")
    assert finished_seconds(playlist, "seg") == 0.0
    with open(playlist, "w") as fh:
        fh.write("#EXTM3U\n#EXTINF:0.5,\nseg00000.ts\n#EXTINF:0.25,\nseg00001.ts\n#EXT-X-DISCONTINUITY\n"
                 "#EXTINF:0.5,\nseg-r1-00002.ts\n")
    assert np.isclose(finished_seconds(playlist, "seg0"), 0.75)
    assert np.isclose(finished_seconds(playlist, "seg-r1-"), 0.5)
    end_playlist(playlist)
    end_playlist(playlist)
    assert open(playlist).read().count("#EXT-X-ENDLIST") == 1
    text = render_metrics({"streams": [{"name": "cam-1", "restarts": 2, "latency_ms": {"median": None, "p95": None},
                                        "latency_target_ms": 1.0, "queues": {}}]})
    assert 'anchorsr_stream_restarts_total{stream="cam-1",session="cam-1"} 2' in text


def test_the_worker_passes_the_audio_it_is_sent_through_in_sync(tmp_path):
    """Audio packets sent beside the video (after their header, as the serve front sends them)
    come out as the HLS audio track, copied, starting and ending with the video."""
    from anchorsr.stream.packets import audio_header, wire_audio
    from tests.stream.av_media import make_clip, streams_of
    from tests.stream.test_av import assert_in_sync

    clip = str(tmp_path / "av.ts")
    make_clip(clip, 45, w=160, h=96, fmt="mpegts")
    src = VideoSource(clip, audio=True)
    params, batch = StreamParams.of(src, "cam"), []
    for wp in wire_packets(src):  # interleaved as demuxed: each video packet after the audio read before it
        audio = src.audio.take(None)
        if audio:
            if not batch:
                batch.append(audio_header(src.audio, audio[0]))
            batch += wire_audio(src.audio, audio)
        batch.append(wp)
    batch += wire_audio(src.audio, src.audio.take(None))
    assert batch[0].header and sum(type(p).__name__ == "WireAudio" for p in batch) > 40
    folder = str(tmp_path / "cam-1")
    worker = StreamWorker(params, folder, OPTIONS)
    for i in range(0, len(batch), 10):
        worker.feed(batch[i:i + 10])
    snap = worker.end(60)
    assert snap["error"] is None and snap["frames_out"] == 45 and snap["audio_packets"] > 40
    got = streams_of(os.path.join(folder, "index.m3u8"))
    assert got["audio"]["codec"] == "aac" and got["audio"]["rate"] == 48000
    assert_in_sync(got, 45)


class _FakeRay:
    """``ray.nodes()`` that lists the node as alive for its first ``alive_calls`` calls."""

    def __init__(self, alive_calls):
        self.calls, self.alive_calls = 0, alive_calls

    def nodes(self):
        self.calls += 1
        return [{"NodeID": "lost", "Alive": self.calls <= self.alive_calls}, {"NodeID": "other", "Alive": True}]


def test_a_restart_waits_until_the_lost_node_is_marked_dead():
    """The replacement actor is asked for only once Ray no longer lists the lost actor's node as
    alive (else it may be placed there and die again); a node that lives on is waited for only
    up to the limit."""
    from anchorsr.cluster.runner import RayCluster

    cluster = object.__new__(RayCluster)  # only its ``ray`` handle is used here
    cluster.ray = _FakeRay(alive_calls=3)
    assert cluster.wait_node_dead("lost", timeout_s=10.0) and cluster.ray.calls == 4
    cluster.ray = _FakeRay(alive_calls=10**6)
    assert not cluster.wait_node_dead("lost", timeout_s=0.5) and cluster.ray.calls >= 2
    cluster.ray = _FakeRay(alive_calls=0)
    assert cluster.wait_node_dead(None) and cluster.ray.calls == 0
