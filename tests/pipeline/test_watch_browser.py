"""The watch page in a real browser: a stream published with the ffmpeg CLI plays in headless
Chromium (Debian's, driven over the DevTools protocol on a pipe: no extra package), at the
enhanced size, its time advancing; the LR switch plays the input's size; the figures show. And
a live HLS stream whose frames were dropped across several segment times plays on (the sink
tops nearly empty segments up: Chromium stops on a segment of a few frames).

Skipped, saying why, where chromium or ffmpeg is missing (`make tools` installs both)."""

import fcntl
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from anchorsr.stream import EncodeSettings, hls_sink
from tests.conftest import pan_frames
from tests.pipeline.live_media import free_port, wait_for
from tests.pipeline.test_serve import ServeProcess

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
FFMPEG = shutil.which("ffmpeg")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make tools, as root)"),
              pytest.mark.skipif(FFMPEG is None, reason="needs the ffmpeg program (make tools, as root)")]
W, H = 320, 180


class Browser:
    """Headless Chromium with the DevTools protocol on fds 3 (commands in) and 4 (replies out),
    messages separated by NUL bytes."""

    def __init__(self, profile: str) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # copies above 4, so that placing them at 3 and 4 in the child never overwrites one of them
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w)]

        def child_fds():  # the protocol's fixed descriptors in the child (kept open by pass_fds)
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
             "--no-first-run", "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=child_fds, pass_fds=(3, 4))
        for fd in (to_browser_r, from_browser_w, *high):
            os.close(fd)
        self._buf = b""
        self._id = 0
        self._replies: dict[int, dict] = {}
        self._cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def _read(self) -> None:
        while chunk := os.read(self._from_browser, 65536):
            self._buf += chunk
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cv:
                        self._replies[msg["id"]] = msg
                        self._cv.notify_all()

    def send(self, method: str, session: str | None = None, timeout_s: float = 60, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        with self._cv:
            if not self._cv.wait_for(lambda: self._id in self._replies, timeout_s):
                raise AssertionError(f"no reply from chromium to {method} in {timeout_s} s")
            reply = self._replies.pop(self._id)
        assert "error" not in reply, reply
        return reply["result"]

    def eval(self, expression: str):
        result = self.send("Runtime.evaluate", self.session, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout_s=10)
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self._to_browser)


VIDEO = "document.querySelector('#s-{name} video')"


def playing(browser, name, width):
    """The video's width once it is ``width`` and its currentTime has moved on since the last
    look (None before)."""
    state = browser.eval(f"(v => v ? [v.videoWidth, v.currentTime, v.error && v.error.message] : null)"
                         f"({VIDEO.format(name=name)})")
    if not state or state[2]:
        assert not state or not state[2], f"the video failed: {state[2]}"
        return None
    w, t, _ = state
    last = playing.times.get(name)
    playing.times[name] = t
    return w if w == width and last is not None and t > last else None


playing.times = {}


def test_a_published_stream_plays_in_chromium(tmp_path):
    port = free_port()
    clip = tmp_path / "clip.ts"  # 12 s, so that the page finds it live
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size={W}x{H}:rate=30", "-frames:v", "360", "-c:v", "libx264", "-g", "15", "-bf", "0",
                    "-refs", "1", "-pix_fmt", "yuv420p", "-f", "mpegts", "-y", str(clip)], check=True, timeout=120)
    srv = ServeProcess(tmp_path, {"cam": f"rtmp://127.0.0.1:{port}/live/cam"},
                       ["--patch-px", "20", "--segment-seconds", "1"],  # 0.5 s plays, but not always: README
                       start_timeout_s=240)
    publisher = browser = None
    try:
        publisher = subprocess.Popen([FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-i", str(clip),
                                      "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{port}/live/cam"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(os.path.join(srv.out, "cam-1", "seg00001.ts")), 90, "two UHD segments")
        browser = Browser(str(tmp_path / "profile"))
        browser.send("Page.navigate", browser.session, url=srv.url + "/")
        wait_for(lambda: playing(browser, "cam-1", 2 * W), 120, "the UHD rendition to play in chromium", poll_s=0.5)
        figures = browser.eval("document.querySelector('#s-cam-1 .figures').textContent")
        assert "frames out of" in figures and "SR share" in figures, figures
        assert browser.eval("document.querySelector('#s-cam-1 h2').textContent").startswith("cam-1")
        # the switch to the input as it came (LR)
        assert browser.eval("(b => (b.click(), b.getAttribute('aria-pressed')))"
                            "(document.querySelector('#s-cam-1 button[data-rendition=lr]'))") == "true"
        playing.times.pop("cam-1", None)
        wait_for(lambda: playing(browser, "cam-1", W), 120, "the LR rendition to play in chromium", poll_s=0.5)
    finally:
        if browser is not None:
            browser.close()
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait(10)
        srv.stop()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_hls_segments_that_dropped_frames_left_nearly_empty_play_in_chromium(tmp_path):
    """A stall of 3.5 s (frames dropped across three segment times) leaves segments of one
    repeated key frame unless the sink tops them up; Chromium's native player, joining the live
    playlist three segments from its end, lands on them and stops with
    DEMUXER_ERROR_COULD_NOT_PARSE. With the top-ups it plays on."""
    folder = tmp_path / "hls"
    sink = hls_sink(str(folder), W, H, EncodeSettings(fps=30, preset="ultrafast"), segment_s=1.0)
    frames = list(pan_frames(12, w=W, h=H))
    for i in [*range(0, 75), *range(180, 255)]:  # frames 75 to 179 (2.5 s to 6 s) dropped
        y, u, v = frames[i % 12]
        sink.write(y, u, v, i, time=i / 30)
    # the stream is live: no #EXT-X-ENDLIST, so the player starts near the playlist's end
    (folder / "page.html").write_text('<video muted autoplay src="index.m3u8"></video>')
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = None
    try:
        browser = Browser(str(tmp_path / "profile"))
        browser.send("Page.navigate", browser.session, url=f"http://127.0.0.1:{server.server_address[1]}/page.html")
        state, first = None, None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = browser.eval("(v => v ? [v.currentTime, v.error && v.error.message, v.readyState] : null)"
                                 "(document.querySelector('video'))")
            assert not state or not state[1], f"the video failed: {state[1]}"
            if state and state[2] >= 2:
                first = state[0] if first is None else first
                if state[0] > first + 1.0:
                    break
            time.sleep(0.3)
        else:
            raise AssertionError(f"the video did not play on for 1 s in 90 s: {state}")
    finally:
        if browser is not None:
            browser.close()
        server.shutdown()
        sink.close()
