"""Bad input ends with a one-line error naming the problem, a non-zero exit, no traceback."""

import socket
import subprocess
import sys

import pytest

from anchorsr.stream import EncodeSettings, write_clip
from tests.conftest import pan_frames


def run_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "anchorsr.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def assert_one_line_error(proc, *needles):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("anchorsr: error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture()
def inputs(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not a video\n" * 50)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    good = tmp_path / "good.mp4"
    write_clip(good, pan_frames(8), EncodeSettings())
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return {"text": text, "empty": empty, "truncated": truncated, "tmp": tmp_path}


@pytest.mark.parametrize("case, needles", [
    ("text", ["not a readable video", "notes.txt"]),
    ("empty", ["empty file"]),
    ("truncated", ["truncated.mp4"]),
    ("missing", ["not found", "nope.mp4"]),
])
def test_bad_files(inputs, case, needles):
    path = inputs["tmp"] / "nope.mp4" if case == "missing" else inputs[case]
    proc = run_cli("enhance", str(path), "-o", str(inputs["tmp"] / "out.mp4"))
    assert_one_line_error(proc, *needles)
    assert proc.stdout == ""  # off a terminal no progress bar, not even a blank line before the error
    assert not (inputs["tmp"] / "out.mp4").exists()


def test_url_nobody_serves(tmp_path):
    url = f"tcp://127.0.0.1:{closed_port()}"
    proc = run_cli("enhance", url, "-o", str(tmp_path / "out.mp4"), "--timeout", "3")
    assert_one_line_error(proc, "cannot open", url)


def test_no_transcode_refuses_b_frames(tmp_path):
    path = tmp_path / "b.mp4"
    write_clip(path, pan_frames(8), EncodeSettings(bframes=2, refs=2))
    proc = run_cli("enhance", str(path), "-o", str(tmp_path / "out.mp4"), "--no-transcode")
    assert_one_line_error(proc, "B-frames", "--no-transcode")


def test_impossible_scale_is_refused(tmp_path):
    proc = run_cli("enhance", "x.mp4", "-o", str(tmp_path / "o.mp4"), "--scale", "5")
    assert proc.returncode == 2 and "expected 2, 3 or 4" in proc.stderr and "Traceback" not in proc.stderr


def test_plan_then_client_enhance_round_trip(tmp_path):
    clip = tmp_path / "in.mp4"
    write_clip(clip, pan_frames(20), EncodeSettings(keyint=10))
    plan = tmp_path / "in.plan"
    proc = run_cli("plan", str(clip), "-o", str(plan), "--budget", "10%", "--chunk-frames", "10", "--patch-px", "32")
    assert proc.returncode == 0, proc.stderr
    from anchorsr.schedule import read_plans

    plans = read_plans(plan)
    assert [p.chunk_start for p in plans] == [0, 10]
    assert all(0 < p.anchor_fraction() <= 0.10 + 1e-9 for p in plans)
    out = tmp_path / "out.mp4"
    proc = run_cli("enhance", str(clip), "-o", str(out), "--plan", str(plan), "--model", "bicubic")
    assert proc.returncode == 0, proc.stderr
    assert "SR share 10.0%" in proc.stdout or "SR share 9." in proc.stdout, proc.stdout
    import av

    with av.open(str(out)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 20 and (frames[0].width, frames[0].height) == (400, 240)


def test_plan_across_a_resolution_change(tmp_path):
    a, b = tmp_path / "a.h264", tmp_path / "b.h264"
    write_clip(a, pan_frames(14), EncodeSettings(keyint=14))
    write_clip(b, pan_frames(6, w=120, h=72), EncodeSettings(keyint=6))
    clip = tmp_path / "both.h264"  # one Annex B stream whose size changes at frame 14
    clip.write_bytes(a.read_bytes() + b.read_bytes())
    plan = tmp_path / "both.plan"
    proc = run_cli("plan", str(clip), "-o", str(plan), "--chunk-frames", "10", "--patch-px", "32")
    assert proc.returncode == 0, proc.stderr
    from anchorsr.schedule import read_plans

    plans = read_plans(plan)
    assert [(p.chunk_start, p.n_frames, p.grid.width, p.grid.height) for p in plans] == [
        (0, 10, 200, 120), (10, 4, 200, 120), (14, 6, 120, 72)]
    assert all(len(p) > 0 for p in plans)


def test_bad_budget_and_missing_model(tmp_path):
    clip = tmp_path / "in.mp4"
    write_clip(clip, pan_frames(4), EncodeSettings())
    proc = run_cli("enhance", str(clip), "-o", str(tmp_path / "o.mp4"), "--budget", "150%")
    assert_one_line_error(proc, "budget", "150%")
    proc = run_cli("enhance", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", str(tmp_path / "none.safetensors"))
    assert_one_line_error(proc, "none.safetensors")
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", ["enhance", "bench"])
def test_cuda_is_never_picked_silently(tmp_path, command):
    """--device cuda where torch sees no CUDA device is one error line, before any work."""
    clip = tmp_path / "in.mp4"
    write_clip(str(clip), pan_frames(4, w=64, h=48), EncodeSettings())
    args = (["enhance", str(clip), "-o", str(tmp_path / "out.mp4")] if command == "enhance"
            else ["bench", "sr", "--quick"])
    proc = run_cli(*args, "--device", "cuda")
    assert_one_line_error(proc, "cuda", "no CUDA device")
    assert not (tmp_path / "out.mp4").exists()


def test_lr_model_reaches_the_reconstruction_and_bad_values_are_one_line(tmp_path):
    from anchorsr.errors import ConfigError
    from anchorsr.pipeline import PipelineOptions
    from anchorsr.pipeline.config import load_serve_config

    assert PipelineOptions().reuse_config().down_filter == "bicubic"
    assert PipelineOptions(lr_model="box").reuse_config().down_filter == "box"
    with pytest.raises(ConfigError, match="down filter"):
        PipelineOptions(lr_model="lanczos")
    config = tmp_path / "serve.toml"
    config.write_text('lr-model = "box"\n')
    assert load_serve_config(str(config))["lr_model"] == "box"
    config.write_text('lr-model = "lanczos"\n')
    assert_one_line_error(run_cli("serve", "--config", str(config)), "lr-model", "lanczos")
    assert_one_line_error(run_cli("enhance", "in.mp4", "-o", str(tmp_path / "o.mp4"), "--lr-model", "lanczos"),
                          "--lr-model", "lanczos")


def test_anchor_weight_reaches_the_reconstruction_and_bad_values_are_one_line(tmp_path):
    from anchorsr.errors import ConfigError
    from anchorsr.pipeline import PipelineOptions
    from anchorsr.pipeline.config import load_serve_config
    from anchorsr.reuse.reconstruct import ANCHOR_WEIGHTS

    # by default the fitted weight of the scale's shipped network
    for scale in (2, 3, 4):
        assert PipelineOptions(scale=scale).reuse_config().anchor_weight == ANCHOR_WEIGHTS[scale]
    assert PipelineOptions(scale=3, anchor_weight=0.5).reuse_config().anchor_weight == 0.5
    assert PipelineOptions(anchor_weight=1.0).reuse_config().anchor_weight == 1.0
    with pytest.raises(ConfigError, match="anchor weight"):
        PipelineOptions(anchor_weight=0.0)
    config = tmp_path / "serve.toml"
    config.write_text("anchor-weight = 1\n")
    assert load_serve_config(str(config))["anchor_weight"] == 1
    config.write_text("anchor-weight = 1.5\n")
    assert_one_line_error(run_cli("serve", "--config", str(config)), "anchor-weight", "1.5")
    assert_one_line_error(run_cli("enhance", "in.mp4", "-o", str(tmp_path / "o.mp4"), "--anchor-weight", "0"),
                          "--anchor-weight", "got 0.0")


def test_patch_size_in_the_serve_config_is_auto_or_an_even_count(tmp_path):
    from anchorsr.pipeline.config import load_serve_config

    config = tmp_path / "serve.toml"
    config.write_text('patch-px = "auto"\n')
    assert load_serve_config(str(config))["patch_px"] is None
    config.write_text("patch-px = 48\n")
    assert load_serve_config(str(config))["patch_px"] == 48
    for bad in ("33", "0", '"big"'):
        config.write_text(f"patch-px = {bad}\n")
        assert_one_line_error(run_cli("serve", "--config", str(config)), "patch-px", "auto")


def test_the_light_reconstruction_can_be_turned_off_from_the_command_line_or_the_serve_config(tmp_path):
    from anchorsr.cli import _build_parser, _live_options
    from anchorsr.pipeline.config import load_serve_config

    args = _build_parser().parse_args(["serve", "--listen", "tcp://127.0.0.1:9000"])
    assert _live_options(args, True).light
    args = _build_parser().parse_args(["serve", "--listen", "tcp://127.0.0.1:9000", "--no-light"])
    assert not _live_options(args, True).light
    config = tmp_path / "serve.toml"
    config.write_text("no-light = true\n")
    assert load_serve_config(str(config))["no_light"] is True
    config.write_text('no-light = "yes"\n')
    assert_one_line_error(run_cli("serve", "--config", str(config)), "no-light", "true or false")


def test_a_long_run_without_a_terminal_writes_a_line_every_5_percent():
    from anchorsr.cli import _PercentLines

    out = []
    lines = _PercentLines("quality", out.append)
    lines(0, None, "assembling")  # total unknown: nothing
    for done in range(0, 101, 1):
        lines(done * 2, 200, f"step {done}")
    assert out[0] == "quality: 0% step 0" and out[-1] == "quality: 100% step 100"
    assert len(out) == 21  # 0, 5, ..., 100


@pytest.mark.parametrize("value", ["7", "0", "big"])
def test_an_impossible_patch_size_is_named(inputs, value):
    proc = run_cli("plan", str(inputs["text"]), "-o", str(inputs["tmp"] / "p.plan"), "--patch-px", value)
    assert_one_line_error(proc, "--patch-px", "'auto' or an even number", value)
    assert not (inputs["tmp"] / "p.plan").exists()


def test_plan_with_the_default_patch_size_writes_32_px_grids_below_1080p(tmp_path):
    from anchorsr.schedule import read_plans

    clip, plan = tmp_path / "c.mp4", tmp_path / "c.plan"
    write_clip(clip, pan_frames(12), EncodeSettings())
    proc = run_cli("plan", str(clip), "-o", str(plan), "--chunk-frames", "6", "--patch-px", "auto", timeout=120)
    assert proc.returncode == 0, proc.stderr
    plans = read_plans(plan)
    assert len(plans) == 2 and all(p.grid.patch_px == 32 for p in plans)
