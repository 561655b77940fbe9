"""The watch page of `anchorsr serve`: the server-rendered list, and its script run in node
against a /status document (skipped where node is missing)."""

import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from anchorsr.pipeline.http import watch_page

HERE = Path(__file__).parent


def session(name, running, frames, renditions):
    return {"name": name, "stream": "cam", "running": running, "frames_in": frames, "frames_out": frames,
            "fps": 30.0, "dropped": 0, "late": 0, "sr_share": 0.05, "error": None,
            "latency_ms": {"median": 500.0, "p95": 600.0} if frames else {"median": None, "p95": None},
            "playlist": f"/{name}/index.m3u8", "master": f"/{name}/master.m3u8", "renditions": renditions}


STATUS = {"streams": [
    session("cam-1", False, 90, {"uhd": {"playlist": "/cam-1/index.m3u8", "size": [320, 192]},
                                 "lr": {"playlist": "/cam-1/lr/index.m3u8", "size": [160, 96]}}),
    session("cam-2", True, 0, {})],
    "earlier_sessions": [{"name": "cam-0", "stream": "cam", "session": "cam-0", "master": "/cam-0/master.m3u8",
                          "renditions": {"uhd": {"playlist": "/cam-0/index.m3u8", "size": None}}}]}


def test_server_rendered_list():
    page = watch_page(STATUS).decode()
    assert "<!--SESSIONS-->" not in page
    assert '<li class="live">cam-2 (live, 0 frames): <a href="/cam-2/master.m3u8">' in page
    assert '<a href="/cam-1/lr/index.m3u8">LR 160x96</a>' in page
    assert 'cam-0 (earlier run): <a href="/cam-0/master.m3u8">' in page
    assert "No sessions yet" in watch_page({"streams": []}).decode()


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_script_renders_sessions_with_a_rendition_switch(tmp_path):
    (tmp_path / "status.json").write_text(json.dumps(STATUS))
    page = resources.files("anchorsr.pipeline").joinpath("watch.html")
    proc = subprocess.run(["node", str(HERE / "watch_page_run.js"), str(page), str(tmp_path / "status.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert not out["index"]  # the script's list replaces the server's
    live, done, earlier = out["sessions"]  # newest of this run first, earlier runs last
    assert live["id"] == "s-cam-2" and "live" in live["cls"] and live["title"].startswith("cam-2")
    assert live["buttons"] == [] and "median -" in live["fig"]  # no output yet: nothing to play
    assert done["buttons"] == ["UHD (enhanced) 320x192", "LR (input) 160x96"]
    assert done["src"] == "/cam-1/index.m3u8" and "90 frames out of 90" in done["fig"]
    assert earlier["buttons"] == ["UHD (enhanced)"] and earlier["src"] is None
    assert "earlier run" in earlier["fig"]


def test_hls_js_is_served_when_installed(monkeypatch, tmp_path):
    from anchorsr.pipeline import http

    monkeypatch.setattr(http, "HLS_JS_PATHS", (str(tmp_path / "none.js"),))
    assert http.hls_js() is None  # the route then answers 404
    (tmp_path / "hls.min.js").write_text("var Hls = 1;")
    monkeypatch.setattr(http, "HLS_JS_PATHS", (str(tmp_path / "none.js"), str(tmp_path / "hls.min.js")))
    assert http.hls_js() == b"var Hls = 1;"
