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
from tests.pipeline.live_media import LR_H, LR_W, free_port, make_ts, playlist_frames, pusher, wait_for
from tests.test_cli_errors import assert_one_line_error, closed_port, run_cli


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
