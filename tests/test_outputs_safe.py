"""Nothing a user sends is lost: the input is never overwritten, a stop signal finalises the
output, every output problem and impossible option is one line before any work, lost frames
are counted."""

import os
import resource
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import av
import numpy as np
import pytest

from anchorsr.stream import EncodeSettings, VideoSource, write_clip
from tests.conftest import pan_frames
from tests.test_cli_errors import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("safe") / "in.mp4"
    write_clip(path, pan_frames(8), EncodeSettings())
    return path


def digest(path) -> bytes:
    return open(path, "rb").read()


# -- the input is never the output ------------------------------------------------------------

@pytest.mark.parametrize("command", ["enhance", "plan"])
def test_output_that_is_the_input_is_refused(tmp_path, clip, command):
    src = tmp_path / "v.mp4"
    src.write_bytes(clip.read_bytes())
    before = digest(src)
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    hard = tmp_path / "hard.mp4"
    os.link(src, hard)
    for out in (src, tmp_path / "." / "v.mp4", link, hard):
        proc = run_cli(command, str(src), "-o", str(out))
        assert_one_line_error(proc, "is the input", "overwritten")
        assert digest(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.mp4", "link.mp4", "v.mp4"]


def test_output_whose_partial_name_is_the_input_is_refused(tmp_path, clip):
    src = tmp_path / "v.partial.mp4"  # enhance writes v.mp4 under the name v.partial.mp4
    src.write_bytes(clip.read_bytes())
    proc = run_cli("enhance", str(src), "-o", str(tmp_path / "v.mp4"))
    assert_one_line_error(proc, "is the input")
    assert digest(src) == clip.read_bytes()


def test_output_that_is_the_plan_file_is_refused(tmp_path, clip):
    plan = tmp_path / "in.plan"
    assert run_cli("plan", str(clip), "-o", str(plan)).returncode == 0
    before = digest(plan)
    proc = run_cli("enhance", str(clip), "-o", str(plan), "--plan", str(plan))
    assert_one_line_error(proc, "is the plan file")
    assert digest(plan) == before


# -- output errors and impossible options: one line, before any work -------------------------

def file_under_a_file(tmp_path):
    blocker = tmp_path / "regular-file"
    blocker.write_text("x")
    return blocker / "out.mp4"  # its folder is a file: no one, root included, can create it


@pytest.mark.parametrize("case, args, needles", [
    ("webm", ["-o", "{tmp}/x.webm"], ["x.webm", ".mp4", ".webm"]),
    ("crf", ["-o", "{tmp}/o.mp4", "--crf", "-5"], ["--crf", "-5"]),
    ("crf-text", ["-o", "{tmp}/o.mp4", "--crf", "high"], ["--crf", "high"]),
    ("plan", ["-o", "{tmp}/o.mp4", "--plan", "{tmp}/nosuch.plan"], ["plan file", "nosuch.plan"]),
    ("bad-plan", ["-o", "{tmp}/o.mp4", "--plan", "{tmp}/garbage.plan"], ["garbage.plan"]),
    ("empty-plan", ["-o", "{tmp}/o.mp4", "--plan", "{tmp}/empty.plan"], ["empty.plan"]),
    ("missing-folder", ["-o", "{tmp}/no/such/dir/o.mp4"], ["does not exist"]),
    ("under-a-file", ["-o", "{tmp}/regular-file/out.mp4"], ["not a folder"]),
    ("proc", ["-o", "/proc/out.mp4"], ["cannot write", "/proc"]),
    ("preset", ["-o", "{tmp}/o.mp4", "--preset", "warp"], ["--preset", "warp"]),
    ("budget", ["-o", "{tmp}/o.mp4", "--budget", "-3%"], ["budget"]),
    ("patch", ["-o", "{tmp}/o.mp4", "--chunk-frames", "0"], ["--chunk-frames"]),
    ("scheduler", ["-o", "{tmp}/o.mp4", "--scheduler", "nosuch"], ["--scheduler", "nosuch"]),
])
def test_output_errors_and_bad_options_are_one_line(tmp_path, clip, case, args, needles):
    file_under_a_file(tmp_path)
    (tmp_path / "garbage.plan").write_bytes(b"not a plan at all" * 10)
    (tmp_path / "empty.plan").write_bytes(b"")
    before = set(os.listdir(tmp_path))
    proc = run_cli("enhance", str(clip), *[a.format(tmp=tmp_path) for a in args], timeout=120)
    assert_one_line_error(proc, *needles)
    assert set(os.listdir(tmp_path)) == before  # nothing written, no .partial left
    # checked before any work: nothing was decoded or compiled, so no progress line either
    assert "frames" not in proc.stdout


def test_bad_serve_options_are_one_line():
    for args, needle in ((["--port", "70000"], "--port"), (["--crf", "99"], "--crf")):
        proc = run_cli("serve", *args)
        assert_one_line_error(proc, needle)
        assert proc.returncode == 2


def test_plan_output_errors_are_one_line(tmp_path, clip):
    out = file_under_a_file(tmp_path)
    proc = run_cli("plan", str(clip), "-o", str(out.with_suffix(".plan")))
    assert_one_line_error(proc, "not a folder")
    proc = run_cli("plan", str(clip), "-o", str(tmp_path / "missing" / "x.plan"))
    assert_one_line_error(proc, "does not exist")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder; the case under a "
                                              "regular file and /proc cover it")
def test_read_only_folder_is_one_line(tmp_path, clip):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        proc = run_cli("enhance", str(clip), "-o", str(ro / "o.mp4"))
        assert_one_line_error(proc, "cannot write", "ro")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_disk_full_while_writing_is_one_line(tmp_path):
    """The output hits a file size limit (as a full disk would) after the first frames."""
    src = tmp_path / "long.mp4"
    write_clip(src, pan_frames(90), EncodeSettings(keyint=30))
    out = tmp_path / "o.mp4"
    mark = tmp_path / "first-frame"
    env = dict(os.environ, ANCHORSR_FIRST_FRAME_MARK=str(mark))
    proc = subprocess.Popen([sys.executable, "-m", "anchorsr.cli", "enhance", str(src), "-o", str(out),
                             "--model", "bicubic", "--crf", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mark.exists(), proc.communicate()[1]
        # from now on no file of the process may grow past 64 kB: the lossless output does at once
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    assert_one_line_error(SimpleNamespace(returncode=proc.returncode, stderr=stderr), "cannot write", "o.mp4",
                          "too large")
    assert not out.exists()
    assert not (tmp_path / "o.partial.mp4").exists()


# -- SIGTERM / SIGHUP finalise like Ctrl-C -----------------------------------------------------

@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    write_clip(path, pan_frames(600), EncodeSettings(keyint=30))
    return path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_stop_signal_finalises_the_output(tmp_path, long_clip, signum):
    out = tmp_path / "o.mp4"
    mark = tmp_path / "first-frame"
    env = dict(os.environ, ANCHORSR_FIRST_FRAME_MARK=str(mark))
    proc = subprocess.Popen([sys.executable, "-m", "anchorsr.cli", "enhance", str(long_clip), "-o", str(out),
                             "--model", "bicubic"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 600
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mark.exists() and proc.poll() is None, proc.communicate()[1]
        time.sleep(0.5)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert f"interrupted ({signal.Signals(signum).name})" in stderr
    assert not (tmp_path / "o.partial.mp4").exists()
    with av.open(str(out)) as c:
        n = sum(1 for _ in c.decode(video=0))
    assert 0 < n < 600


# -- lost frames are counted -------------------------------------------------------------------

def _corrupt(data: bytearray, start: int, end: int, rng: np.random.Generator) -> None:
    data[start:end] = rng.integers(0, 256, end - start, dtype=np.uint8).tobytes()


def _interrupt_reported_as(error_type):
    """An error of ``error_type`` raised while handling a KeyboardInterrupt, as a compiled
    library reports a stop signal that lands inside one of its Python callbacks."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as ki:
        try:
            raise error_type("callback returned a result with an exception set") from ki
        except error_type as exc:
            return exc


def test_an_interrupt_reported_as_another_error_is_still_an_interrupt():
    from anchorsr.errors import interrupt_in

    assert interrupt_in(_interrupt_reported_as(SystemError))
    assert interrupt_in(KeyboardInterrupt())
    assert not interrupt_in(SystemError("a real failure"))
    try:
        raise ValueError("inner")
    except ValueError as inner:
        try:
            raise SystemError("outer") from inner
        except SystemError as outer:
            assert not interrupt_in(outer)


def test_enhance_finalises_when_the_interrupt_comes_back_as_another_error(tmp_path, long_clip, monkeypatch):
    """The stop signal lands in a compiled library's callback a few frames in: the output is
    finalised (playable, the frames so far) and the CLI says 'interrupted', no traceback."""
    import anchorsr.pipeline.enhance as enhance_mod
    from anchorsr.cli import main

    real = enhance_mod.enhance_frames

    def interrupted_after_some(frames, options, source, summary):
        for i, hr in enumerate(real(frames, options, source, summary)):
            if i == 12:
                raise _interrupt_reported_as(SystemError)
            yield hr

    monkeypatch.setattr(enhance_mod, "enhance_frames", interrupted_after_some)
    out = tmp_path / "o.mp4"
    assert main(["enhance", str(long_clip), "-o", str(out), "--model", "bicubic"]) == 128 + signal.SIGINT
    assert not (tmp_path / "o.partial.mp4").exists()
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12


def test_frames_lost_to_corrupt_packets_are_counted(tmp_path):
    mp4, raw = tmp_path / "c.mp4", tmp_path / "c.h264"
    write_clip(mp4, pan_frames(30), EncodeSettings(keyint=10))
    write_clip(raw, pan_frames(30), EncodeSettings(keyint=10))
    # mp4: garble three P-frame packets whole (their offsets from the demuxer)
    with av.open(str(mp4)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    data = bytearray(mp4.read_bytes())
    rng = np.random.default_rng(1)
    for i in (5, 6, 15):
        pos, size = packets[i]
        _corrupt(data, pos + 4, pos + size, rng)
    bad_mp4 = tmp_path / "bad.mp4"
    bad_mp4.write_bytes(data)
    # raw Annex B: garble the bodies of three P slices; the decoder flags one frame and drops
    # the others up to the next key frame without a word
    data = bytearray(raw.read_bytes())
    starts = [i for i in range(len(data) - 3) if data[i:i + 3] == b"\0\0\1"]
    slices = [k for k, i in enumerate(starts) if data[i + 3] & 31 == 1]
    for k in (slices[4], slices[5], slices[14]):
        _corrupt(data, starts[k] + 6, starts[k + 1] - 3, rng)
    bad_raw = tmp_path / "bad.h264"
    bad_raw.write_bytes(data)

    for path in (bad_mp4, bad_raw):
        src = VideoSource(path)
        decoded = sum(1 for _ in src)
        assert src.stats.packets == 30
        assert decoded < 30 and src.stats.lost_frames == 30 - decoded, (path, src.stats)
        if path == bad_raw:  # most of them dropped by the decoder without an error to count
            assert src.stats.lost_frames > src.stats.corrupt_packets, src.stats
        out = tmp_path / f"{path.stem}-{path.suffix[1:]}-out.mp4"
        proc = run_cli("enhance", str(path), "-o", str(out), "--model", "bicubic")
        assert proc.returncode == 0, proc.stderr
        assert f"{decoded} frames at" in proc.stdout and f"{30 - decoded} frames lost" in proc.stdout, proc.stdout

    clean = VideoSource(mp4)
    assert sum(1 for _ in clean) == 30 and clean.stats.lost_frames == 0


# -- a warm start loads every compiled kernel from numba's disk cache ------------------------

@pytest.mark.slow
def test_second_run_recompiles_nothing(tmp_path, clip):
    """A second ``enhance`` adds no index or data file to NUMBA_CACHE_DIR: everything is loaded."""
    from anchorsr.bench.startup_bench import run_enhance

    cache = tmp_path / "numba-cache"
    cache.mkdir()

    def files():
        return {os.path.relpath(os.path.join(d, f), cache): os.path.getmtime(os.path.join(d, f))
                for d, _, names in os.walk(cache) for f in names}

    first = run_enhance(str(clip), str(tmp_path / "o1.mp4"), str(cache), model="bicubic")
    after_first = files()
    assert any(name.endswith(".nbi") for name in after_first)
    assert any("reconstruct_plane" in name for name in after_first)  # the reuse kernel is cached
    second = run_enhance(str(clip), str(tmp_path / "o2.mp4"), str(cache), model="bicubic")
    assert files() == after_first  # no new entry, no index rewritten
    assert second["cpu_s"] < first["cpu_s"]
