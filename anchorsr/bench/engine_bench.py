"""`anchorsr bench engines`: the numpy and the torch SR engine side by side, in one run.

Question: what should ``--sr-engine auto`` pick on this machine? The numpy engine starts without
importing torch (seconds of CPU at every start); is it as fast once running, for files and for
live streams?
Variables: the engine (numpy, torch) running the shipped x2 network on the CPU.
Metrics, each measured for both engines in interleaved turns within this one run (a change of
load hits both alike):
* ``patches_per_s``: 64 px patches (8 px halo) per second through ``SRPatchSource``, with one
  network thread (a live SR worker) and with all cores (higher is better); ``anchorsr bench sr``'s
  throughput workload.
* ``enhance_720p``: wall and CPU seconds of a whole ``anchorsr enhance`` process on a 720p clip
  (3 s, live profile, x2, dag-greedy 5%; lower is better), and numpy / torch ratios.
* ``startup``: seconds from starting ``anchorsr enhance`` on the start-up benchmark's 320x192
  clip to its first output frame, warm caches (median; lower is better), and whether torch was
  imported.
* ``live``: ``anchorsr bench live``'s 720p stream at real-time pace (frames dropped and late,
  sustained fps, CPU per frame).
Method: the clips are filmed over a real photograph; every ``enhance`` is a fresh process with
one numba and one bytecode cache folder of the run, filled by an unmeasured first start of each
engine (torch's own modules are compiled to bytecode only when a process first imports them).
Caveats: a shared 2-core machine; compare the ratios, not absolute times across runs.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

from ..envinfo import environment
from .startup_bench import _make_clip, run_enhance

ENGINES = ("numpy", "torch")


def _make_720p(path: str, frames: int) -> None:
    from ..stream import EncodeSettings, write_clip
    from .scenes import CameraPath, photo, render_pan

    clip = render_pan(photo("astronaut"), 1280, 720, frames, CameraPath(0.45, 0.2, 1.0005), magnify=2.5, order=1)
    write_clip(path, clip, EncodeSettings(keyint=60, bitrate_bps=3_000_000, crf=None))


def _enhance_process(clip: str, out: str, engine: str, cache: str, pycache: str) -> dict:
    """Wall and CPU seconds of one whole ``anchorsr enhance`` process."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPYCACHEPREFIX=pycache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = [sys.executable, "-m", "anchorsr.cli", "enhance", clip, "-o", out, "--sr-engine", engine]
    start = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"enhance --sr-engine {engine} failed: {err.strip()[-500:]}")
    return {"wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3)}


def _median(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def run_engine_bench(quick: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    from ..sr.bench import engine_rates
    from .live_bench import run_live_bench

    say = progress or (lambda _m: None)
    rounds = 1 if quick else 3
    load_before = [round(x, 2) for x in os.getloadavg()]
    tmp = tempfile.mkdtemp(prefix="anchorsr-engines-")
    try:
        small, big = os.path.join(tmp, "small.mp4"), os.path.join(tmp, "720p.mp4")
        cache, pycache = os.path.join(tmp, "numba-cache"), os.path.join(tmp, "pycache")
        os.makedirs(cache)
        _make_clip(small)
        _make_720p(big, 30 if quick else 90)
        say("engines: filling the numba and bytecode caches (an unmeasured first start of each engine)")
        for engine in ENGINES:
            run_enhance(small, os.path.join(tmp, "warm.mp4"), cache, extra=("--sr-engine", engine), pycache_dir=pycache)
        startup: dict[str, list[dict]] = {e: [] for e in ENGINES}
        enhance: dict[str, list[dict]] = {e: [] for e in ENGINES}
        for i in range(rounds):
            for engine in ENGINES:
                say(f"engines: round {i + 1}/{rounds}, {engine}: start-up and a 720p enhance")
                startup[engine].append(run_enhance(small, os.path.join(tmp, "s.mp4"), cache,
                                                   extra=("--sr-engine", engine), pycache_dir=pycache))
                enhance[engine].append(_enhance_process(big, os.path.join(tmp, "e.mp4"), engine, cache, pycache))
        say("engines: patch throughput")
        rates = engine_rates(None, quick)
        live = {}
        for engine in ENGINES:
            say(f"engines: live stream, {engine}")
            run = run_live_bench(quick=quick, progress=say, engine=engine, size_filter=("720p",))["results"]
            live[engine] = [{k: r[k] for k in ("input", "sr_engine", "frames_sent", "frames_out", "dropped", "late",
                                                "sr_late_frames", "sustained_fps", "sr_share_used",
                                                "cpu_ms_per_output_frame", "added_latency_ms")} for r in run]
        load_after = [round(x, 2) for x in os.getloadavg()]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    enhance_summary = {e: {"wall_s": _median(r, "wall_s"), "cpu_s": _median(r, "cpu_s")} for e, r in enhance.items()}
    startup_summary = {e: {"first_frame_s": _median(r, "first_frame_s"),
                           "first_frame_cpu_s": _median(r, "first_frame_cpu_s"),
                           "sr_engine": r[0]["sr_engine"], "torch_imported": any(x["torch_imported"] for x in r)}
                       for e, r in startup.items()}
    return {
        "benchmark": "engines",
        "question": "numpy vs torch SR engine: throughput, a 720p enhance, start-up, live (x2, CPU)",
        "patches_per_s": rates,
        "enhance_720p": {"frames": 30 if quick else 90, "runs": enhance, **enhance_summary,
                         "numpy_over_torch_wall": round(enhance_summary["numpy"]["wall_s"]
                                                        / enhance_summary["torch"]["wall_s"], 3),
                         "numpy_over_torch_cpu": round(enhance_summary["numpy"]["cpu_s"]
                                                       / enhance_summary["torch"]["cpu_s"], 3)},
        "startup": {"runs": startup, **startup_summary},
        "live": live,
        "rounds": rounds,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "environment": environment(),
    }

