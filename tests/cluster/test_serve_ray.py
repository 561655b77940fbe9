"""`anchorsr serve --ray`: streams run in Ray actors, the ingest front in the serve process.

Ray starts slowly on a small machine: the cluster tests are few, marked slow, and every wait is
bounded. Without ``--ray`` serve never imports Ray.
"""

import json
import subprocess
import sys
import textwrap

import pytest

from tests.cluster.serve_proc import Serve
from tests.pipeline.live_media import (LR_H, LR_W, file_pusher, free_port, make_ts, playlist_frames, pusher,
                                       wait_for)
from tests.stream.av_media import make_clip, streams_of
from tests.stream.test_av import assert_in_sync
from tests.test_cli_errors import assert_one_line_error, closed_port, run_cli

# Real-time timing on a shared 2-core machine inside a full suite run (a frame dropped or
# counted late, a worker round missed) fails these now and then; each passes alone. One rerun
# is allowed: a test that fails twice fails.
pytestmark = pytest.mark.flaky(reruns=1)


def test_serve_without_ray_never_imports_ray(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from anchorsr.pipeline.serve import Server, ServeOptions
        from anchorsr.pipeline.options import PipelineOptions
        s = Server(ServeOptions(listen=("tcp://127.0.0.1:{free_port()}",), out_dir={str(tmp_path)!r}, http_port=0,
                                model="bicubic", live=PipelineOptions(patch_px=32, model="bicubic"))).start()
        s.stop()
        print("ray" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_ray_address_errors_are_one_line(tmp_path):
    listen = ["--listen", f"tcp://127.0.0.1:{free_port()}", "--out", str(tmp_path / "hls"), "--port", "0",
              "--model", "bicubic"]
    assert_one_line_error(run_cli("serve", *listen, "--ray", f"127.0.0.1:{closed_port()}"),
                          "cannot reach the Ray cluster")
    assert_one_line_error(run_cli("serve", *listen, "--ray", "no-port-here"), "HOST:PORT")
    assert_one_line_error(run_cli("serve", *listen, "--ray", "local", "--ray-cpus-per-stream", "0"),
                          "--ray-cpus-per-stream")
    # Ray missing: an import of it fails as on a machine without the extra
    code = ("import sys; sys.modules['ray'] = None; from anchorsr.cli import main; "
            f"sys.exit(main(['serve', *{listen!r}, '--ray', 'local']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert_one_line_error(out, "--ray needs Ray", "anchorsr[cluster]")


@pytest.mark.slow
def test_a_stream_runs_in_a_ray_actor_and_comes_out_as_hls(tmp_path):
    data = make_ts(str(tmp_path / "in.ts"), 90)
    port = free_port()
    srv = Serve(tmp_path, {"cam": f"tcp://127.0.0.1:{port}"}, extra=["--ray", "local"])
    try:
        pusher(port, data, 3.0).join(60)
        s = wait_for(lambda: srv.finished("cam-1"), 240, "the stream to end")
        status = srv.status()
    finally:
        srv.close()
    assert s["error"] is None and s["frames_in"] == 90 and s["frames_out"] == 90, json.dumps(s)
    assert s["output_size"] == [2 * LR_W, 2 * LR_H] and s["actor_restarts"] == 0 and s["node_id"]
    assert s["pid"] != srv.proc.pid  # enhanced in another process: the actor's
    assert status["cluster"]["nodes"] == 1 and status["cluster"]["cpus_per_stream"] == 1.0
    frames = playlist_frames(f"{srv.out}/cam-1/index.m3u8")
    assert len(frames) == 90 and frames[0][1].shape == (2 * LR_H, 2 * LR_W)
    assert any(ln.startswith("stopped; 1 stream(s) finalised") for ln in srv.lines), srv.lines


@pytest.mark.slow
@pytest.mark.parametrize("audio", [True, False], ids=["audio", "no-audio"])
def test_the_audio_of_a_stream_goes_through_its_actor_in_sync(tmp_path, audio):
    """H.264 with an AAC track published as MPEG-TS over TCP at real-time pace: with --ray the
    served HLS has the audio, copied, starting and ending with the video within a frame;
    --no-audio leaves it out."""
    clip = str(tmp_path / "av.ts")
    make_clip(clip, 60, w=LR_W, h=LR_H, fmt="mpegts")
    sent = streams_of(clip)
    port = free_port()
    srv = Serve(tmp_path, {"avcam": f"tcp://127.0.0.1:{port}"},
                extra=["--ray", "local", *([] if audio else ["--no-audio"])])
    try:
        file_pusher(f"tcp://127.0.0.1:{port}", "mpegts", clip).join(60)
        s = wait_for(lambda: srv.finished("avcam-1"), 240, "the stream with audio to end")
    finally:
        srv.close()
    assert s["error"] is None and s["frames_out"] == 60 and s["actor_restarts"] == 0, json.dumps(s)
    got = streams_of(f"{srv.out}/avcam-1/index.m3u8")
    if not audio:
        assert "audio" not in got and got["video"]["frames"] == 60 and s["audio_packets"] == 0
        return
    assert got["audio"]["codec"] == "aac" and got["audio"]["rate"] == 48000 and s["audio_packets"] > 0
    assert_in_sync(got, 60)
    assert got["audio"]["samples"] >= 0.95 * sent["audio"]["samples"]


@pytest.mark.slow
def test_a_publisher_back_within_the_grace_period_continues_its_ray_session(tmp_path):
    """As in plain serve (tests/pipeline/test_reconnect.py): the same actor stream goes on with
    the second publisher's packets and audio; after the grace period a new session starts."""
    from tests.pipeline.test_reconnect import GRACE, N, check_reconnect

    clip = str(tmp_path / "av.ts")
    make_clip(clip, N, w=LR_W, h=LR_H, fmt="mpegts")
    port = free_port()
    srv = Serve(tmp_path, {"cam": f"tcp://127.0.0.1:{port}"},
                extra=["--ray", "local", "--reconnect-grace", str(GRACE)])
    try:
        check_reconnect(srv, f"tcp://127.0.0.1:{port}", clip)
        assert srv.stream("cam-1")["actor_restarts"] == 0
    finally:
        srv.close()


def publish(port: int, seconds: int, fps: int = 30, audio: bool = False) -> subprocess.Popen:
    """The ffmpeg CLI publishing a test pattern in the live profile (a key frame every half
    second) as MPEG-TS over TCP, at real-time pace; ``audio``: with a 48 kHz AAC tone."""
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"] if audio else []
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
         f"testsrc2=size={LR_W}x{LR_H}:rate={fps}", *tone, "-t", str(seconds), "-c:v", "libx264",
         "-preset", "veryfast", "-tune", "zerolatency", "-g", str(fps // 2), "-bf", "0", "-refs", "1",
         "-pix_fmt", "yuv420p", *(["-c:a", "aac", "-b:a", "64k"] if audio else []),
         "-f", "mpegts", f"tcp://127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def segments(playlist: str) -> list[str]:
    with open(playlist) as fh:
        return [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]


@pytest.fixture()
def three_nodes():
    """A head that runs nothing (0 CPUs) and two one-CPU worker nodes, on this machine, with a
    node's death noticed within seconds."""
    cluster_utils = pytest.importorskip("ray.cluster_utils")
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4,
                           "health_check_initial_delay_ms": 0}})
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes(timeout=180)
        yield cluster, workers
    finally:
        cluster.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("ffmpeg") is None, reason="needs the ffmpeg CLI")
def test_a_lost_node_restarts_the_stream_elsewhere_and_its_hls_goes_on(tmp_path, three_nodes):
    cluster, workers = three_nodes
    port, seconds, fps = free_port(), 24, 30
    srv = Serve(tmp_path, {"cam": f"tcp://127.0.0.1:{port}"}, extra=["--ray", cluster.address])
    pub = publish(port, seconds, fps)
    try:
        s = wait_for(lambda: (s := srv.stream("cam-1")) and s["frames_out"] >= 2 * fps and s, 180,
                     "the stream's first segments")
        node = next(n for n in workers if n.node_id == s["node_id"])
        playlist = f"{srv.out}/cam-1/index.m3u8"
        before = segments(playlist)
        assert before and pub.poll() is None, "the publisher ended before the node could be lost"
        cluster.remove_node(node, allow_graceful=False)
        pub.wait(seconds + 120)
        s = wait_for(lambda: srv.finished("cam-1"), 240, "the stream to end")
        status = srv.status()
    finally:
        if pub.poll() is None:
            pub.kill()
        srv.close()
    assert s["error"] is None and s["actor_restarts"] == 1 and s["restarts"] >= 1, json.dumps(s)
    assert s["node_id"] != node.node_id and status["cluster"]["nodes"] == 2
    text = open(playlist).read()
    after = segments(playlist)
    assert after[:len(before)] == before and len(after) > len(before)  # nothing written is lost
    assert text.count("#EXT-X-DISCONTINUITY") == 1 and text.rstrip().endswith("#EXT-X-ENDLIST")
    frames = playlist_frames(playlist)
    # every published frame at most once (the restart wrote only what the lost segment held and
    # after), none lost but those the real-time policy dropped (a replayed frame dropped by the
    # lost actor counts there too, so this is a lower bound)
    assert seconds * fps - s["dropped"] <= len(frames) <= seconds * fps, (len(frames), json.dumps(s))
    assert s["dropped"] <= fps, json.dumps(s)


@pytest.fixture()
def two_big_nodes():
    """A head that runs nothing and two worker nodes of three logical CPUs each: three streams
    fit on one node, so the streams of a lost node have somewhere to go."""
    cluster_utils = pytest.importorskip("ray.cluster_utils")
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4,
                           "health_check_initial_delay_ms": 0}})
    try:
        workers = [cluster.add_node(num_cpus=3) for _ in range(2)]
        cluster.wait_for_nodes(timeout=180)
        yield cluster, workers
    finally:
        cluster.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("ffmpeg") is None, reason="needs the ffmpeg CLI")
def test_three_streams_lose_a_node_and_every_stream_s_hls_is_complete(tmp_path, two_big_nodes):
    """Three publishers (the ffmpeg CLI) on a head and two worker nodes; the node running the
    most streams is removed mid-stream. Every stream's playlist ends, holds every published
    frame but those the real-time policy dropped, and is marked with one discontinuity exactly
    where its actor was restarted; its audio (AAC) lasts as long as the published stream, the
    restarted actors' part included."""
    cluster, workers = two_big_nodes
    names, seconds, fps = ("a", "b", "c"), 16, 30
    ports = {n: free_port() for n in names}
    srv = Serve(tmp_path, {n: f"tcp://127.0.0.1:{p}" for n, p in ports.items()}, extra=["--ray", cluster.address])
    pubs = {n: publish(ports[n], seconds, fps, audio=True) for n in names}
    try:
        live = wait_for(lambda: (ss := [srv.stream(f"{n}-1") for n in names]) and all(
            s and s["frames_out"] >= 2 * fps for s in ss) and ss, 180, "every stream's first segments")
        on = {w.node_id: [s["name"] for s in live if s["node_id"] == w.node_id] for w in workers}
        node = max(workers, key=lambda w: len(on[w.node_id]))
        lost = set(on[node.node_id])
        assert lost and all(p.poll() is None for p in pubs.values()), "a publisher ended before the node was lost"
        before = {s["name"]: segments(f"{srv.out}/{s['name']}/index.m3u8") for s in live}
        cluster.remove_node(node, allow_graceful=False)
        for p in pubs.values():
            p.wait(seconds + 120)
        done = {n: wait_for(lambda n=n: srv.finished(f"{n}-1"), 240, f"stream {n} to end") for n in names}
        status = srv.status()
    finally:
        for p in pubs.values():
            if p.poll() is None:
                p.kill()
        srv.close()
    assert status["cluster"]["nodes"] == 2 and status["active_streams"] == 0
    for n, s in done.items():
        name = f"{n}-1"
        restarted = name in lost
        assert s["error"] is None and s["actor_restarts"] == int(restarted), json.dumps(s)
        if restarted:
            assert s["node_id"] != node.node_id, json.dumps(s)
        playlist = f"{srv.out}/{name}/index.m3u8"
        text = open(playlist).read()
        assert text.rstrip().endswith("#EXT-X-ENDLIST")
        assert text.count("#EXT-X-DISCONTINUITY") == int(restarted), (name, text)
        after = segments(playlist)
        assert after[:len(before[name])] == before[name] and len(after) > len(before[name])
        if restarted:  # the new segments follow the discontinuity and are the new actor's
            tail = text.split("#EXT-X-DISCONTINUITY", 1)[1]
            assert all(ln.startswith("seg-r1-") for ln in tail.splitlines() if ln.endswith(".ts")), tail
        frames = playlist_frames(playlist)
        # every published frame at most once; none lost but those the real-time policy dropped
        assert seconds * fps - s["dropped"] <= len(frames) <= seconds * fps, (name, len(frames), json.dumps(s))
        sound = streams_of(playlist)["audio"]
        assert sound["codec"] == "aac" and abs(sound["samples"] / sound["rate"] - seconds) < 0.15, (name, sound)
