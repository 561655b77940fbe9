"""`anchorsr serve` end to end over loopback: streams pushed in, enhanced HLS read back with PyAV.

One server process (bicubic stand-in model, tiny frames) serves the whole module; every wait is
time-bounded so a failure cannot hang the suite.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from urllib.parse import urljoin

import numpy as np
import pytest

from anchorsr.pipeline import psnr
from anchorsr.reuse import upscale_bicubic
from anchorsr.stream import open_frames
from tests.pipeline.live_media import (LR_H, LR_W, corrupt, drop_packets, file_pusher, free_port, make_ts,
                                       playlist_frames, push_encoded, pusher, wait_for)
from tests.stream.av_media import make_clip, streams_of
from tests.stream.test_av import assert_in_sync
from tests.test_cli_errors import assert_one_line_error, run_cli

prometheus_parser = pytest.importorskip("prometheus_client.parser")

FPS = 30


class ServeProcess:
    def __init__(self, tmp, ports, extra=(), log_name="serve.log", start_timeout_s=90):
        self.out = str(tmp / "hls")
        debug = ["-v"] if os.environ.get("ANCHORSR_TEST_DEBUG") else []
        args = [sys.executable, "-m", "anchorsr.cli", *debug, "serve", "--out", self.out, "--port", "0",
                "--model", "bicubic", "--chunk-frames", "15", "--patch-px", "32", "--segment-seconds", "0.5",
                "--read-timeout", "1.5", *extra]
        for name, url in ports.items():
            args += ["--listen", f"{name}={url}"]
        self.log = tmp / log_name
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(self.log, "w"), text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        try:
            line = wait_for(lambda: next((ln for ln in self.lines if ln.startswith("serving")), None), start_timeout_s,
                            "the server to start")
        except AssertionError:  # never leave a server running past a failed start
            self.proc.kill()
            self.proc.wait(10)
            raise
        self.url = line.split()[1]

    def _read(self):
        for ln in self.proc.stdout:
            self.lines.append(ln)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (the server finalises its streams), then kill when it does not exit in time."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def status(self) -> dict:
        with urllib.request.urlopen(self.url + "/status", timeout=5) as r:
            assert r.headers["Content-Type"] == "application/json"
            return json.loads(r.read())

    def stream(self, name):
        return next((s for s in self.status()["streams"] if s["name"] == name), None)

    def finished(self, name):
        s = self.stream(name)
        return s if s is not None and not s["running"] else None


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    data = make_ts(str(tmp / "in.ts"), 90)
    lr = list(open_frames(str(tmp / "in.ts")))
    return tmp, data, lr


@pytest.fixture(scope="module")
def server(media):
    tmp = media[0]
    urls = {"cam": f"tcp://127.0.0.1:{free_port()}", "cam2": f"tcp://127.0.0.1:{free_port()}",
            "rtmpcam": f"rtmp://127.0.0.1:{free_port()}/live/x", "web": f"tcp://127.0.0.1:{free_port()}",
            "udpcam": f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
            "avcam": f"tcp://127.0.0.1:{free_port()}", "avrtmp": f"rtmp://127.0.0.1:{free_port()}/live/av"}
    srv = ServeProcess(tmp, urls)
    srv.urls = urls
    srv.ports = {name: int(urls[name].split(":")[2]) for name in ("cam", "cam2", "web")}
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait(10)


def check_continuity(frames, lr, first=0):
    """Output frame k is the enhanced input frame first+k: steady timestamps, and its content
    matches that input frame better than its neighbours."""
    times = np.array([t for t, _ in frames])
    assert np.allclose(np.diff(times), 1 / FPS, atol=1e-3)
    for k, (_, y) in enumerate(frames):
        i = first + k
        ref = [psnr(y, upscale_bicubic(lr[j].y, lr[j].u, lr[j].v, 2)[0]) if 0 <= j < len(lr) else 0.0
               for j in (i - 1, i, i + 1)]
        assert ref[1] > 20 and ref[1] > max(ref[0], ref[2]) + 6, (k, ref)


def test_two_streams_at_once_come_out_as_hls_over_http(server, media):
    tmp, data, lr = media
    a = pusher(server.ports["cam"], data, 3.0)
    b = pusher(server.ports["cam2"], data[: len(data) * 2 // 3], 2.0)
    wait_for(lambda: server.stream("cam-1") and server.stream("cam2-1"), 30, "both streams to appear")
    a.join(30)
    b.join(30)
    s1 = wait_for(lambda: server.finished("cam-1"), 30, "stream cam-1 to end")
    s2 = wait_for(lambda: server.finished("cam2-1"), 30, "stream cam2-1 to end")
    assert s1["frames_out"] == 90 and s1["dropped"] == 0 and s1["output_size"] == [2 * LR_W, 2 * LR_H]
    assert 0 < s1["sr_share"] <= 0.05 + 1e-9 and s1["latency_ms"]["median"] > 0
    assert set(s1["queues"]) == {"decoded", "planned", "rebuilt"}
    frames = playlist_frames(server.url + "/cam-1/index.m3u8")  # read back over HTTP
    assert len(frames) == 90 and frames[0][1].shape == (2 * LR_H, 2 * LR_W)
    check_continuity(frames, lr)
    assert 40 <= s2["frames_out"] < 90
    text = open(os.path.join(server.out, "cam2-1", "index.m3u8")).read()
    assert text.rstrip().endswith("#EXT-X-ENDLIST")


@pytest.mark.parametrize("name, fmt", [("rtmpcam", "flv"), ("udpcam", "mpegts")])
def test_rtmp_and_udp_publishers(server, name, fmt):
    push_encoded(server.urls[name], fmt, 45)
    s = wait_for(lambda: server.finished(f"{name}-1"), 30, f"the {fmt} stream to end")
    assert s["output_size"] == [2 * LR_W, 2 * LR_H] and s["error"] is None, json.dumps(s)
    assert s["frames_out"] >= (45 if fmt == "flv" else 20)  # UDP may lose what came before the probe
    playlist = os.path.join(server.out, s["name"], "index.m3u8")
    assert open(playlist).read().rstrip().endswith("#EXT-X-ENDLIST")
    assert len(playlist_frames(playlist)) == s["frames_out"] + s["repeated_frames"]  # (repeats: where frames were shed)
    lr = playlist_frames(os.path.join(server.out, s["name"], "lr", "index.m3u8"))  # the input copied into HLS
    assert len(lr) >= s["frames_out"] and lr[0][1].shape == (LR_H, LR_W)
    if fmt == "flv":  # the publisher closing its stream is a normal end, not a warning
        warnings = [ln for ln in open(server.log) if "WARNING" in ln and server.urls[name] in ln]
        assert not warnings, warnings


@pytest.mark.parametrize("name, fmt", [("avcam", "mpegts"), ("avrtmp", "flv")])
def test_a_published_stream_with_audio_is_served_with_it_in_sync(server, tmp_path, name, fmt):
    """A publisher sends H.264 with an AAC track (MPEG-TS over TCP, FLV over RTMP, remuxed at
    real-time pace like ``ffmpeg -re -c copy``): the served HLS carries the audio, starting and
    ending with the video within one frame."""
    clip = str(tmp_path / f"av.{'ts' if fmt == 'mpegts' else 'flv'}")
    make_clip(clip, 60, w=LR_W, h=LR_H, fmt=fmt)
    sent = streams_of(clip)
    assert sent["audio"]["codec"] == "aac" and sent["video"]["frames"] == 60
    file_pusher(server.urls[name], fmt, clip).join(60)
    s = wait_for(lambda: server.finished(f"{name}-1"), 30, f"the {fmt} stream with audio to end")
    assert s["error"] is None and s["frames_out"] >= 40, json.dumps(s)  # a loaded machine may drop a few
    got = streams_of(os.path.join(server.out, s["name"], "index.m3u8"))
    assert got["audio"]["codec"] == "aac" and got["audio"]["rate"] == 48000
    # a frame dropped under load leaves a gap that the sink fills by repeating the frame before it
    assert_in_sync(got, s["frames_out"] + s["repeated_frames"])
    assert got["audio"]["samples"] >= 0.9 * sent["audio"]["samples"] * s["frames_out"] / 60


def test_corrupt_and_missing_packets_then_disconnect(server, media):
    tmp, data, lr = media
    bad = drop_packets(corrupt(data, [0.3]), 0.5, 12)
    pusher(server.ports["cam"], bad, 2.4, stop_after_fraction=0.8).join(30)
    s = wait_for(lambda: server.finished("cam-2"), 30, "the disconnected stream to be finalised")
    assert s["corrupt_packets"] + s["missing_frames"] > 0 and s["error"] is None
    assert 45 <= s["frames_out"] <= 80
    folder = os.path.join(server.out, "cam-2")
    assert open(os.path.join(folder, "index.m3u8")).read().rstrip().endswith("#EXT-X-ENDLIST")
    frames = playlist_frames(os.path.join(folder, "index.m3u8"))
    # output went on past the damage (a hole across a segment time: the frame before it repeated there)
    assert len(frames) == s["frames_out"] + s["repeated_frames"] and frames[-1][0] > 1.5
    check_continuity(frames[:20], lr)  # before the damage: frame for frame
    # the server keeps accepting: a new publisher on the same port is a new stream
    pusher(server.ports["cam"], data[: len(data) // 3], 1.0).join(30)
    assert wait_for(lambda: server.finished("cam-3"), 30, "a new stream after the disconnect")["frames_out"] > 15


def fetch(url, method="GET", headers=None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, r.headers, r.read()


def metric_samples(url) -> dict:
    """/metrics parsed by Prometheus' own parser: {(name, frozenset(labels)): value}."""
    status, headers, body = fetch(url + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in prometheus_parser.text_string_to_metric_families(body.decode())}
    assert families["anchorsr_stream_frames_out"].type == "counter"
    return {(smp.name, frozenset(smp.labels.items())): smp.value for f in families.values() for smp in f.samples}


def variants(master_text):
    """[(attributes, uri)] of a master playlist."""
    lines = [ln.strip() for ln in master_text.splitlines() if ln.strip()]
    assert lines[0] == "#EXTM3U"
    out = []
    for i, ln in enumerate(lines):
        if ln.startswith("#EXT-X-STREAM-INF:"):
            attrs = dict(kv.split("=", 1) for kv in ln.split(":", 1)[1].split(","))
            out.append((attrs, lines[i + 1]))
    return out


def test_http_cors_metrics_watch_page_and_renditions(server, media):
    tmp, data, lr = media
    sender = pusher(server.ports["web"], data, 3.0)
    s = wait_for(lambda: (server.stream("web-1") or {}).get("frames_out", 0) > 20 and server.stream("web-1"), 30,
                 "the web stream to run")
    assert s["running"] and s["stream"] == "web" and s["master"] == "/web-1/master.m3u8"
    # metrics while it runs, read by Prometheus' parser
    m = metric_samples(server.url)
    labels = frozenset({"stream": "web", "session": "web-1"}.items())
    assert m[("anchorsr_stream_running", labels)] == 1
    assert m[("anchorsr_stream_frames_out_total", labels)] >= 20
    assert m[("anchorsr_stream_frames_in_total", labels)] >= m[("anchorsr_stream_frames_out_total", labels)]
    assert ("anchorsr_stream_dropped_frames_total", labels) in m and ("anchorsr_stream_late_frames_total", labels) in m
    assert ("anchorsr_stream_repeated_frames_total", labels) in m and ("anchorsr_stream_idle_flushes_total", labels) in m
    # a running share: a chunk's anchors come early (its key frame first), so part way through
    # a chunk it may lie above the budget; the finished stream's share is checked below
    assert 0 < m[("anchorsr_stream_sr_share", labels)] <= 1
    assert m[("anchorsr_stream_fps", labels)] > 5
    lat = {q: m[("anchorsr_stream_latency_seconds", labels | {("quantile", q)})] for q in ("0.5", "0.95")}
    assert 0 < lat["0.5"] <= lat["0.95"] < 30
    for q in ("decoded", "planned", "rebuilt"):
        assert m[("anchorsr_stream_queue_depth", labels | {("queue", q)})] >= 0
    assert m[("process_cpu_seconds_total", frozenset())] > 0.5
    assert m[("process_resident_memory_bytes", frozenset())] > 20e6
    # the watch page lists the running session and links its master playlist
    status, headers, body = fetch(server.url + "/")
    page = body.decode()
    assert headers["Content-Type"].startswith("text/html") and 'createElement("video")' in page
    assert 'href="/web-1/master.m3u8"' in page and "web-1 (live" in page
    # CORS and content types on /status, playlists and segments, and the preflight
    for path, ctype in (("/status", "application/json"), ("/web-1/index.m3u8", "application/vnd.apple.mpegurl"),
                        ("/web-1/master.m3u8", "application/vnd.apple.mpegurl"),
                        ("/web-1/lr/index.m3u8", "application/vnd.apple.mpegurl"),
                        ("/web-1/seg00000.ts", "video/mp2t"), ("/web-1/lr/seg00000.ts", "video/mp2t")):
        status, headers, _ = fetch(server.url + path, headers={"Origin": "http://example.com"})
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "*", path
        assert headers["Content-Type"] == ctype, (path, headers["Content-Type"])
    status, headers, body = fetch(server.url + "/web-1/index.m3u8", "OPTIONS",
                                  {"Origin": "http://example.com", "Access-Control-Request-Method": "GET",
                                   "Access-Control-Request-Headers": "range"})
    assert status == 204 and body == b"" and headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in headers["Access-Control-Allow-Methods"]
    assert "range" in headers["Access-Control-Allow-Headers"].lower()
    sender.join(30)
    done = wait_for(lambda: server.finished("web-1"), 30, "the web stream to end")
    m = metric_samples(server.url)
    assert m[("anchorsr_stream_running", labels)] == 0
    assert m[("anchorsr_stream_frames_out_total", labels)] == done["frames_out"] == 90
    assert 0 < m[("anchorsr_stream_sr_share", labels)] <= 0.05 + 1e-9  # every chunk within the budget
    # the master playlist: the enhanced rendition and the input copied, both decodable
    master_url = server.url + "/web-1/master.m3u8"
    found = {attrs["RESOLUTION"]: (int(attrs["BANDWIDTH"]), uri)
             for attrs, uri in variants(fetch(master_url)[2].decode())}
    assert set(found) == {f"{2 * LR_W}x{2 * LR_H}", f"{LR_W}x{LR_H}"}
    assert all(bw > 1000 for bw, _ in found.values())
    lr_frames = playlist_frames(urljoin(master_url, found[f"{LR_W}x{LR_H}"][1]))
    assert len(lr_frames) == len(lr) == 90 and lr_frames[0][1].shape == (LR_H, LR_W)
    source = playlist_frames(str(tmp / "in.ts"))  # decoded the same way
    assert all(np.array_equal(y, y0) for (_, y), (_, y0) in zip(lr_frames, source))  # copied, not re-encoded
    uhd = playlist_frames(urljoin(master_url, found[f"{2 * LR_W}x{2 * LR_H}"][1]))
    assert len(uhd) == 90 and uhd[0][1].shape == (2 * LR_H, 2 * LR_W)


def test_sigterm_finalises_a_running_stream(server, media):
    tmp, data, lr = media
    long = data * 1  # 3 s stream sent over 6 s: half speed keeps it running when the signal comes
    pusher(server.ports["cam2"], long, 6.0)
    wait_for(lambda: (server.stream("cam2-2") or {}).get("frames_out", 0) > 15, 30, "output to start")
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    playlist = os.path.join(server.out, "cam2-2", "index.m3u8")
    assert open(playlist).read().rstrip().endswith("#EXT-X-ENDLIST")
    assert len(playlist_frames(playlist)) > 15
    assert any(ln.startswith("stopped;") for ln in server.lines)


def test_bad_listen_url_and_busy_port(tmp_path):
    proc = run_cli("serve", "--listen", "ftp://127.0.0.1:21", "--out", str(tmp_path))
    assert_one_line_error(proc, "expected a listen URL", "ftp://")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_cli("serve", "--listen", f"tcp://127.0.0.1:{port}", "--out", str(tmp_path))
    assert_one_line_error(proc, "cannot listen", str(port))


def test_enhance_live_errors(tmp_path, media):
    proc = run_cli("enhance", f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}", "-o", str(tmp_path / "h/"),
                   "--timeout", "1", "--model", "bicubic")
    assert_one_line_error(proc, "cannot open", "udp://")
    proc = run_cli("enhance", str(media[0] / "in.ts"), "-o", "ftp://example.invalid/x", "--model", "bicubic")
    assert_one_line_error(proc, "ftp://example.invalid/x")
    proc = run_cli("enhance", str(media[0] / "in.ts"), "-o", str(tmp_path / "h/"), "--max-latency", "0")
    assert proc.returncode == 2 and "expected a positive number" in proc.stderr


def test_enhance_a_file_into_hls(tmp_path, media):
    out = tmp_path / "hls"
    proc = run_cli("enhance", str(media[0] / "in.ts"), "-o", str(out) + "/", "--model", "bicubic",
                   "--chunk-frames", "15", "--patch-px", "32", "--segment-seconds", "1", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "90 frames at 320x192" in proc.stdout and "added latency" in proc.stdout
    frames = playlist_frames(str(out / "index.m3u8"))
    assert len(frames) == 90
    check_continuity(frames, media[2])


def test_sessions_never_overwrite_and_retention_from_a_config_file(tmp_path, media):
    """Two server runs on one output folder: the second run's session gets a new folder and the
    first one's playlist and segments stay as they were; retention (from the config file) then
    removes the oldest session only."""
    data = media[1]
    out = tmp_path / "hls"
    (out / "cam-1").mkdir(parents=True)  # an earlier run's session
    (out / "cam-1" / "index.m3u8").write_text("#EXTM3U\n")

    def run(extra, log_name, ports):
        srv = ServeProcess(tmp_path, ports, extra, log_name, start_timeout_s=240)  # starts on a busy machine
        try:
            pusher(int(url.split(":")[2]), data[: len(data) // 3], 1.0).join(30)
            s = wait_for(lambda: srv.status()["streams"] and srv.status()["streams"][0]["running"] is False
                         and srv.status()["streams"][0], 30, "the session to end")
        finally:
            srv.proc.send_signal(signal.SIGTERM)
            assert srv.proc.wait(30) == 0
        return s

    url = f"tcp://127.0.0.1:{free_port()}"
    first = run([], "serve1.log", {"cam": url})
    assert first["name"] == "cam-2"
    folder = out / "cam-2"
    before = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert "index.m3u8" in before and "master.m3u8" in before and len(before) > 4
    # second run: listeners, retention and a wrong --out from the config file; the flag overrides --out
    config = tmp_path / "serve.toml"
    config.write_text(f'out = "{tmp_path / "elsewhere"}"\nretention = 2\nread-timeout = 1.5\n\n'
                      f'[listen]\ncam = "{url}"\n')
    second = run(["--config", str(config)], "serve2.log", {})
    assert second["name"] == "cam-3"
    assert {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before  # untouched
    assert len(playlist_frames(str(folder / "index.m3u8"))) == first["frames_out"] + first["repeated_frames"]
    assert len(playlist_frames(str(out / "cam-3" / "index.m3u8"))) == second["frames_out"] + second["repeated_frames"]
    assert sorted(p.name for p in out.iterdir()) == ["cam-2", "cam-3"]  # cam-1 beyond the last 2: removed
    assert not (tmp_path / "elsewhere").exists()


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('out = "x"\nlistn = ["tcp://127.0.0.1:9000"]\n')
    assert_one_line_error(run_cli("serve", "--config", str(bad)), "unknown key 'listn'", "bad.toml")
    bad.write_text("retention = -1\n")
    assert_one_line_error(run_cli("serve", "--config", str(bad)), "retention", "-1")
    bad.write_text("reconnect-grace = -2\n")
    assert_one_line_error(run_cli("serve", "--config", str(bad)), "reconnect-grace", "-2")
    assert_one_line_error(run_cli("serve", "--reconnect-grace", "soon"), "--reconnect-grace", "soon")
    bad.write_text("port = \"eighty\"\n")
    assert_one_line_error(run_cli("serve", "--config", str(bad)), "port", "eighty")
    bad.write_text("out = [\n")
    assert_one_line_error(run_cli("serve", "--config", str(bad)), "not valid TOML")
    assert_one_line_error(run_cli("serve", "--config", str(tmp_path / "none.toml")), "config file not found")
