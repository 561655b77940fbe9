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

import numpy as np
import pytest

from anchorsr.pipeline import psnr
from anchorsr.reuse import upscale_bicubic
from anchorsr.stream import open_frames
from tests.pipeline.live_media import (LR_H, LR_W, corrupt, drop_packets, free_port, make_ts, playlist_frames,
                                       push_encoded, pusher, wait_for)
from tests.test_cli_errors import assert_one_line_error, run_cli

FPS = 30


class ServeProcess:
    def __init__(self, tmp, ports):
        self.out = str(tmp / "hls")
        debug = ["-v"] if os.environ.get("ANCHORSR_TEST_DEBUG") else []
        args = [sys.executable, "-m", "anchorsr.cli", *debug, "serve", "--out", self.out, "--port", "0",
                "--model", "bicubic", "--chunk-frames", "15", "--patch-px", "32", "--segment-seconds", "0.5",
                "--read-timeout", "1.5"]
        for name, url in ports.items():
            args += ["--listen", f"{name}={url}"]
        self.log = tmp / "serve.log"
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(self.log, "w"), text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        try:
            line = wait_for(lambda: next((ln for ln in self.lines if ln.startswith("serving")), None), 90,
                            "the server to start")
        except AssertionError:  # never leave a server running past a failed start
            self.proc.kill()
            self.proc.wait(10)
            raise
        self.url = line.split()[1]

    def _read(self):
        for ln in self.proc.stdout:
            self.lines.append(ln)

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
            "rtmpcam": f"rtmp://127.0.0.1:{free_port()}/live/x",
            "udpcam": f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"}
    srv = ServeProcess(tmp, urls)
    srv.urls = urls
    srv.ports = {name: int(urls[name].split(":")[2]) for name in ("cam", "cam2")}
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
    assert len(playlist_frames(playlist)) == s["frames_out"]


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
    assert len(frames) == s["frames_out"] and frames[-1][0] > 1.5  # output went on past the damage
    check_continuity(frames[:20], lr)  # before the damage: frame for frame
    # the server keeps accepting: a new publisher on the same port is a new stream
    pusher(server.ports["cam"], data[: len(data) // 3], 1.0).join(30)
    assert wait_for(lambda: server.finished("cam-3"), 30, "a new stream after the disconnect")["frames_out"] > 15


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
