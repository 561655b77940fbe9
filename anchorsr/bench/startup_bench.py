"""`anchorsr bench startup`: time from process start to the first output frame of `anchorsr enhance`.

Question: how long does a user wait before `anchorsr enhance` writes its first frame, once the
compiled kernels are in numba's disk cache (warm start), against the very first start that
compiles them (cold start)? Target: a warm start of 2 s or less on the project's 2-core machine.
Method: the benchmark films a short clip over a real photograph (live profile), then runs
`python -m anchorsr.cli enhance CLIP -o OUT` as a fresh process: once with an empty
NUMBA_CACHE_DIR (cold), then several times with that same, now filled, folder (warm). Python's
bytecode cache is treated the same way: the processes write theirs to a folder of the run
(``PYTHONPYCACHEPREFIX``), empty for the cold start, even where the environment sets
PYTHONDONTWRITEBYTECODE (as this project's sandbox does: there, every start would recompile
anchorsr's own sources, about 0.1-0.2 s, which a user's default Python never does). The
first-frame time is the wall time from just before the process is started to the moment the
CLI wrote its first output frame (it records that moment in the file named by
``ANCHORSR_FIRST_FRAME_MARK``); total time and CPU time cover the whole process. The process's own CPU time
at its first frame (``first_frame_cpu_s``, all its threads) is recorded too: unlike the wall
time it barely moves when other work shares the machine. A warm run must
add no file to the cache folder (``cache_files_added_by_warm_runs``: 0 means every kernel was
loaded, none recompiled). The first frame of a clip is a key frame: a kernel first used by a
later frame (the reuse kernel, at the first P frame) counts in total_s, not in first_frame_s,
so a recompilation shows in total_s and cpu_s. The warm runs are made in turns with the SR network
on each engine (``--sr-engine`` auto, which is what a user gets, and torch) and with
``--model bicubic`` (no network); each run records which engine made its anchors and whether
the process had imported torch by its first frame. Each configuration's own first start is
made once, unmeasured, before the warm rounds (a torch process compiles torch's modules to
bytecode the first time). Metrics: first_frame_s (median over warm
runs; lower is better), cold_over_warm (cold first-frame time / warm; higher means the cache
saves more).
Caveats: a shared 2-core machine; the load average before and after is recorded, compare the
ratio of runs made together rather than absolute times across machines.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

from ..envinfo import environment

WIDTH, HEIGHT, FRAMES = 320, 192, 30
TARGET_S = 2.0


def _make_clip(path: str) -> None:
    from .scenes import CameraPath, photo, render_pan
    from ..stream import EncodeSettings, write_clip

    frames = render_pan(photo("astronaut"), WIDTH, HEIGHT, FRAMES, CameraPath(0.45, 0.2, 1.0005), order=1)
    write_clip(path, frames, EncodeSettings(keyint=60))


def _cache_files(folder: str) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files}


def run_enhance(clip: str, out: str, cache_dir: str, model: str = "default", extra: tuple[str, ...] = (),
                pycache_dir: str | None = None) -> dict:
    """One `anchorsr enhance` process: seconds to its first output frame, in all, and its CPU;
    the SR engine that ran and whether torch was imported by the first frame.

    pycache_dir: Python's bytecode cache folder for the process (``PYTHONPYCACHEPREFIX``, with
    bytecode writing on whatever the environment says); None leaves the environment as it is."""
    mark = out + ".first-frame"
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, ANCHORSR_FIRST_FRAME_MARK=mark)
    if pycache_dir is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache_dir
    cmd = [sys.executable, "-m", "anchorsr.cli", "enhance", clip, "-o", out, "--model", model, *extra]
    start = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    total = time.time() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0 or not os.path.exists(mark):
        raise RuntimeError(f"enhance failed (exit {proc.returncode}): {err.strip()[-500:]}")
    with open(mark) as fh:
        info = json.load(fh)
    os.unlink(mark)
    return {"first_frame_s": round(info["time"] - start, 3), "first_frame_cpu_s": round(info["cpu_s"], 3),
            "total_s": round(total, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "sr_engine": info["sr_engine"],
            "torch_imported": info["torch_imported"]}


# warm configurations: name -> (--model, extra arguments)
CONFIGS = {"default": ("default", ()), "torch": ("default", ("--sr-engine", "torch")), "bicubic": ("bicubic", ())}


def run_startup_bench(quick: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    say = progress or (lambda _msg: None)
    warm_runs = 1 if quick else 3
    load_before = [round(x, 2) for x in os.getloadavg()]
    tmp = tempfile.mkdtemp(prefix="anchorsr-startup-")
    try:
        clip = os.path.join(tmp, "clip.mp4")
        _make_clip(clip)
        cache = os.path.join(tmp, "numba-cache")
        os.makedirs(cache)
        pycache = os.path.join(tmp, "pycache")
        out = os.path.join(tmp, "out.mp4")
        say("cold start (empty numba and bytecode caches: every kernel and module is compiled)")
        cold = run_enhance(clip, out, cache, pycache_dir=pycache)
        configs = ("default",) if quick else tuple(CONFIGS)
        for name in configs[1:]:  # their own first starts (torch's modules compile to bytecode), unmeasured
            say(f"first start of --model {CONFIGS[name][0]} {' '.join(CONFIGS[name][1])} (unmeasured)")
            run_enhance(clip, out, cache, *CONFIGS[name], pycache_dir=pycache)
        after_cold = _cache_files(cache)
        warm: dict[str, list[dict]] = {c: [] for c in configs}
        for i in range(warm_runs):
            for name in configs:  # in turns, so that a change of load hits every configuration
                model, extra = CONFIGS[name]
                say(f"warm start {i + 1}/{warm_runs} (--model {model} {' '.join(extra)})")
                warm[name].append(run_enhance(clip, out, cache, model, extra, pycache_dir=pycache))
        added = sorted(_cache_files(cache) - after_cold)
        load_after = [round(x, 2) for x in os.getloadavg()]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def summary(runs: list[dict]) -> dict:
        med = {k: round(statistics.median(r[k] for r in runs), 3)
               for k in ("first_frame_s", "first_frame_cpu_s", "total_s", "cpu_s")}
        return {**med, "sr_engine": runs[0]["sr_engine"], "torch_imported": any(r["torch_imported"] for r in runs)}

    warm_default = summary(warm["default"])
    return {
        "benchmark": "startup",
        "command": f"anchorsr enhance CLIP -o OUT ({WIDTH}x{HEIGHT}, {FRAMES} frames, x2, dag-greedy 5%)",
        "cold": cold,
        "warm": warm_default,
        "engine": warm_default["sr_engine"],
        "warm_runs": {m: runs for m, runs in warm.items()},
        "warm_torch": summary(warm["torch"]) if "torch" in warm else None,
        "warm_bicubic": summary(warm["bicubic"]) if "bicubic" in warm else None,
        "cold_over_warm": round(cold["first_frame_s"] / warm_default["first_frame_s"], 2),
        "target_first_frame_s": TARGET_S,
        "target_met": warm_default["first_frame_s"] <= TARGET_S,
        "cache_files_after_cold": len(after_cold),
        "cache_files_added_by_warm_runs": len(added),
        "cache_files_added": added[:20],
        "load_average_before": load_before,
        "load_average_after": load_after,
        "environment": environment(),
    }
