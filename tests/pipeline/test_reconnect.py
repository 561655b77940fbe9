"""`anchorsr serve`: a publisher that comes back within --reconnect-grace continues its session
(one folder, one playlist going on, the timeline monotonic, the audio with it); one that comes
back later starts a new session."""

import json
import os

import numpy as np
import pytest

from tests.pipeline.live_media import LR_H, LR_W, file_pusher, free_port, playlist_frames, wait_for
from tests.pipeline.test_serve import ServeProcess
from tests.stream.av_media import make_clip, streams_of

N, FPS, GRACE = 45, 30, 4.0


@pytest.fixture(scope="module")
def av_clip(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("reconnect") / "av.ts")
    make_clip(path, N, w=LR_W, h=LR_H, fmt="mpegts")
    return path


def check_reconnect(srv, url: str, clip: str, name: str = "cam") -> None:
    """Publish, leave, come back within the grace period: one session of two parts; come back
    after it: a new session."""
    file_pusher(url, "mpegts", clip).join(60)
    wait_for(lambda: (s := srv.stream(f"{name}-1")) and s.get("waiting_for_publisher"), 60,
             "the session to wait for its publisher")
    file_pusher(url, "mpegts", clip).join(60)
    s = wait_for(lambda: srv.finished(f"{name}-1"), 90, "the continued session to end")
    assert s["error"] is None and s["parts"] == 2 and s["frames_in"] == 2 * N, json.dumps(s)
    assert s["frames_out"] == 2 * N - s["dropped"] and s["dropped"] <= 3, json.dumps(s)
    folder = os.path.join(srv.out, f"{name}-1")
    text = open(os.path.join(folder, "index.m3u8")).read()
    assert text.count("#EXT-X-ENDLIST") == 1 and text.rstrip().endswith("#EXT-X-ENDLIST")
    frames = playlist_frames(os.path.join(folder, "index.m3u8"))
    times = np.array([t for t, _ in frames])
    assert len(frames) == s["frames_out"] + s["repeated_frames"]
    assert np.all(np.diff(times) > 0) and times[-1] - times[0] == pytest.approx((2 * N - 1) / FPS, abs=1.5 / FPS)
    # the second part's frames follow the first's one frame period later, in the same playlist
    assert np.max(np.diff(times)) <= 1.5 / FPS + 1e-6 or s["dropped"] > 0
    got = streams_of(os.path.join(folder, "index.m3u8"))
    assert got["audio"]["codec"] == "aac"
    assert abs(got["audio"]["end"] - got["video"]["end"]) <= 2 / FPS, got["audio"]
    assert abs(got["audio"]["start"] - got["video"]["start"]) <= 1 / FPS, got["audio"]
    lr = playlist_frames(os.path.join(folder, "lr", "index.m3u8"))  # the input copy goes on too
    assert len(lr) == 2 * N and np.all(np.diff([t for t, _ in lr]) > 0)
    # after the grace period: a new session
    file_pusher(url, "mpegts", clip).join(60)
    s2 = wait_for(lambda: srv.finished(f"{name}-2"), 90, "a new session after the grace period")
    assert s2["parts"] == 1 and s2["frames_in"] == N, json.dumps(s2)


@pytest.mark.slow
def test_a_publisher_back_within_the_grace_period_continues_its_session(tmp_path, av_clip):
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    srv = ServeProcess(tmp_path, {"cam": url}, extra=["--reconnect-grace", str(GRACE)])
    try:
        check_reconnect(srv, url, av_clip)
    finally:
        srv.stop()


def test_reconnect_grace_zero_gives_every_publisher_a_new_session(tmp_path, av_clip):
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    srv = ServeProcess(tmp_path, {"cam": url}, extra=["--reconnect-grace", "0"])
    try:
        file_pusher(url, "mpegts", av_clip).join(60)
        file_pusher(url, "mpegts", av_clip).join(60)
        a = wait_for(lambda: srv.finished("cam-1"), 60, "the first session to end")
        b = wait_for(lambda: srv.finished("cam-2"), 60, "the second session to end")
    finally:
        srv.stop()
    assert a["parts"] == 1 and b["parts"] == 1 and a["frames_in"] == N and b["frames_in"] == N
