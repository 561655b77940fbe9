"""`anchorsr serve` ingest published with the ffmpeg CLI: RTMP with stream keys (right, wrong,
not allowed from this address, two publishers on one port at once, an idle connection beside
them) and SRT through the ffmpeg relay. Small frames (320x180 -> 640x360), bicubic stand-in
model; every wait is bounded."""

import os
import shutil
import signal
import socket
import struct
import subprocess

import pytest

from anchorsr.pipeline.rtmp import ChunkReader, amf0_values, command
from tests.pipeline.live_media import free_port, playlist_frames, wait_for
from tests.pipeline.test_serve import ServeProcess
from tests.test_cli_errors import assert_one_line_error, run_cli

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="needs the ffmpeg program (Debian: apt-get install ffmpeg)")
W, H, N = 320, 180, 90


def srt_support() -> bool:
    if FFMPEG is None:
        return False
    out = subprocess.run([FFMPEG, "-hide_banner", "-protocols"], capture_output=True, text=True, timeout=30).stdout
    return "srt" in out.split("Output:")[0].split()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """3 s of 320x180 H.264 in the live profile (key frame every 15, no B-frames), as MPEG-TS."""
    path = tmp_path_factory.mktemp("ingest") / "clip.ts"
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size={W}x{H}:rate=30", "-frames:v", str(N), "-c:v", "libx264", "-g", "15", "-bf", "0",
                    "-refs", "1", "-pix_fmt", "yuv420p", "-f", "mpegts", "-y", str(path)], check=True, timeout=120)
    return path


def publish(clip, url, fmt, timeout_s=90) -> subprocess.Popen:
    """The ffmpeg CLI publishing ``clip`` at its own pace (-re)."""
    return subprocess.Popen([FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-i", str(clip), "-c", "copy",
                             "-f", fmt, url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def udp_bound(port) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ingest-serve")
    rtmp_port = free_port()
    listen = {"rtmp": f"rtmp://127.0.0.1:{rtmp_port}/live"}
    srt_port = None
    if srt_support():
        srt_port = free_port(socket.SOCK_DGRAM)
        listen["srtcam"] = f"srt://127.0.0.1:{srt_port}?latency=0"
    config = tmp / "serve.toml"
    config.write_text('[keys]\ncam = "g00d-key"\ncam2 = { key = "second-key", allow = ["127.0.0.0/8"] }\n'
                      'stage = { key = "stage-key", allow = ["10.0.0.0/8"] }\n')
    srv = ServeProcess(tmp, listen, ["--config", str(config), "--patch-px", "20"], start_timeout_s=240)
    srv.rtmp = f"rtmp://127.0.0.1:{rtmp_port}/live"
    srv.srt_port = srt_port
    yield srv
    if srv.proc.poll() is None:
        srv.proc.send_signal(signal.SIGTERM)
        try:
            srv.proc.wait(30)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
            srv.proc.wait(10)


def log_lines(server, text):
    return [ln for ln in open(server.log) if text in ln]


def check_session(server, name, out_dir):
    s = wait_for(lambda: server.finished(name), 60, f"session {name} to end")
    assert s["error"] is None and s["output_size"] == [2 * W, 2 * H], s
    assert s["frames_in"] == N  # the ingest lost nothing
    assert s["frames_out"] + s["dropped"] == N and s["frames_out"] >= N // 2  # (an overloaded machine may shed)
    folder = os.path.join(out_dir, name)
    assert open(os.path.join(folder, "index.m3u8")).read().rstrip().endswith("#EXT-X-ENDLIST")
    assert len(playlist_frames(os.path.join(folder, "index.m3u8"))) == s["frames_out"]
    lr = playlist_frames(os.path.join(folder, "lr", "index.m3u8"))
    assert len(lr) == N and lr[0][1].shape == (H, W)
    return s


def test_rtmp_keys_many_publishers_refusals_and_an_idle_connection(server, clip):
    idle = socket.create_connection(("127.0.0.1", int(server.rtmp.split(":")[2].split("/")[0])), timeout=5)
    try:  # an idle client first: it must not hold the port for the publishers after it
        wrong = publish(clip, server.rtmp + "/not-a-key", "flv")
        elsewhere = publish(clip, server.rtmp + "/stage-key", "flv")  # a right key, from an address not allowed
        a = publish(clip, server.rtmp + "/g00d-key", "flv")
        b = publish(clip, server.rtmp + "/second-key", "flv")
        both = wait_for(lambda: len([s for s in server.status()["streams"] if s["running"]]) == 2
                        and server.status()["streams"], 60, "two RTMP publishers to run at once")
        assert {s["stream"] for s in both} == {"cam", "cam2"}
        for p in (a, b):
            assert p.wait(90) == 0, p.stderr.read()
        assert wrong.wait(60) != 0 and elsewhere.wait(60) != 0  # disconnected: ffmpeg fails
    finally:
        idle.close()
    assert log_lines(server, "refused a publisher from 127.0.0.1: unknown stream key no... (9 characters)")
    assert log_lines(server, "refused a publisher from 127.0.0.1: address not allowed to publish 'stage'")
    assert not any("not-a-key" in ln or "stage-key" in ln for ln in open(server.log))  # keys are not logged
    check_session(server, "cam-1", server.out)
    check_session(server, "cam2-1", server.out)
    assert not os.path.exists(os.path.join(server.out, "stage-1"))
    assert {s["stream"] for s in server.status()["streams"]} == {"cam", "cam2"}  # refused: no session
    # the same key again later: a new session of the same stream
    assert publish(clip, server.rtmp + "/g00d-key", "flv").wait(90) == 0
    check_session(server, "cam-2", server.out)


def test_srt_publisher(server, clip):
    if server.srt_port is None:
        pytest.skip("this ffmpeg has no SRT support (Debian's ffmpeg has)")
    wait_for(lambda: udp_bound(server.srt_port), 60, "the SRT relay to listen")
    p = publish(clip, f"srt://127.0.0.1:{server.srt_port}?mode=caller&latency=0", "mpegts")
    assert p.wait(90) == 0, p.stderr.read()
    check_session(server, "srtcam-1", server.out)
    wait_for(lambda: udp_bound(server.srt_port), 60, "a new relay for the next publisher")


def test_srt_without_an_srt_capable_ffmpeg(tmp_path):
    proc = run_cli("serve", "--listen", f"srt://127.0.0.1:{free_port(socket.SOCK_DGRAM)}", "--out", str(tmp_path),
                   "--ffmpeg", str(tmp_path / "no-ffmpeg"))
    assert_one_line_error(proc, "SRT ingest needs the ffmpeg program", "no-ffmpeg")


def test_listen_and_key_errors(tmp_path):
    assert_one_line_error(run_cli("serve", "--listen", "rtmp://127.0.0.1:1935", "--out", str(tmp_path)),
                          "expected an application name")
    bad = tmp_path / "keys.toml"
    for text, expected in (('[keys]\ncam = "a/b"\n', "without spaces, '/' or '?'"),
                           ('[keys]\ncam = "k"\ncam2 = "k"\n', "same key"),
                           ('[keys]\n"../x" = "k"\n', "expected a stream name"),
                           ('[keys]\ncam = { key = "k", allow = ["not-an-address"] }\n', "not-an-address"),
                           ('[keys]\ncam = { secret = "k" }\n', "expected \"KEY\"")):
        bad.write_text(text)
        assert_one_line_error(run_cli("serve", "--config", str(bad), "--out", str(tmp_path)), "keys.", expected)


# -- the RTMP reader on hand-made bytes -----------------------------------------------------------

def amf_string(s):
    b = s.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b


def chunks(csid, type_id, payload, chunk_size, timestamp=0):
    """A message as chunks: a type 0 header (extended timestamp when it needs one), then type 3."""
    ext = timestamp >= 0xFFFFFF
    head = bytes([csid]) + (0xFFFFFF if ext else timestamp).to_bytes(3, "big") + len(payload).to_bytes(3, "big")
    head += bytes([type_id]) + (1).to_bytes(4, "little") + (timestamp.to_bytes(4, "big") if ext else b"")
    out = bytearray()
    for off in range(0, len(payload), chunk_size):
        out += (head if off == 0 else bytes([0xC0 | csid]) + (timestamp.to_bytes(4, "big") if ext else b""))
        out += payload[off:off + chunk_size]
    return bytes(out)


def test_chunk_reader_finds_connect_and_publish_across_chunks_and_reads():
    connect = (amf_string("connect") + b"\x00" + struct.pack(">d", 1) + b"\x03" + b"\x00\x03app" + amf_string("live")
               + b"\x00\x05tcUrl" + amf_string("rtmp://h/live") + b"\x00\x00\x09")
    publish = (amf_string("publish") + b"\x00" + struct.pack(">d", 5) + b"\x05" + amf_string("k" * 300)
               + amf_string("live"))
    stream = (b"\x03" + bytes(3072) + chunks(3, 20, connect, 128)
              + chunks(2, 1, struct.pack(">I", 4096), 128)  # Set Chunk Size: 4096 from here on
              + chunks(4, 20, publish, 4096, timestamp=0x1000000) + chunks(5, 17, b"\x00" + publish, 4096))
    reader, found, pos = ChunkReader(), [], 0
    for step in (1, 2000, 7, 100, 5000):  # arbitrary reads: partial chunks wait for the rest
        used, messages = reader.parse(stream[pos:pos + step])
        pos += used
        found += [command(t, p) for t, p in messages if command(t, p)]
    used, messages = reader.parse(stream[pos:])
    found += [command(t, p) for t, p in messages if command(t, p)]
    assert pos + used == len(stream)
    assert found[0][0] == "connect" and found[0][2] == {"app": "live", "tcUrl": "rtmp://h/live"}
    assert found[1][:4] == ["publish", 5.0, None, "k" * 300] and found[2] == found[1]
    assert amf0_values(b"\x01\x01\x0a\x00\x00\x00\x01\x06") == [True, [None]]
    with pytest.raises(ValueError):
        ChunkReader().parse(b"GET / HTTP/1.1\r\n")
