"""Scheduling latency benchmark: can the scheduler run live, and how much faster than Palantír?

Question: on one CPU core, how long do building the DAG of a 60-frame (2 s) 1080p chunk and
choosing its anchors take, and how much faster is ``dag-greedy`` than the published ``palantir``
scheduler while choosing exactly what the exhaustive greedy chooses?

Variables: patch grid (64 px: 30x17 = 510 patches per frame, 30,600 nodes; 128 px: 15x9;
the paper's coarse 5x3 grid: 384 px patches); budget 5% of the chunk's LR pixels.

Metrics (lower is better unless noted): graph build ms per chunk (split into edge weights and
texture biases, and per frame); ``dag_greedy_ms`` and its share of the chunk's duration;
``palantir_ms``; ``speedup`` = palantir_ms / dag_greedy_ms (higher is better); ``same_plan``:
dag-greedy's plan equals the exhaustive greedy's (cost-aware, the objective dag-greedy
optimises) pick for pick.

Method: a 1080p clip made here (a pan over a multi-scale random texture plus a moving textured
square; libx264 live profile: no B-frames, 1 reference, keyint 60, crf 23), decoded by
``anchorsr.stream.open_frames`` with motion vectors. Every timing is a median over repeats
after one warm-up run (numba kernels compiled before timing). numba kernels are single-threaded
and NumPy/SciPy calls here run on one core. ``dag_greedy_ms`` is the scheduler on a built graph; the
graph build includes laying out the CSR arrays and their transposes for the kernel
(``graph_pack_ms``, also reported on its own, with ``speedup_incl_pack`` counting it against
dag-greedy). Palantír is timed once per grid (seconds per run). The exhaustive greedy
at 128 px is too slow to run to the budget (hours), so ``same_plan`` there compares the first
``same_plan_picks`` picks.

``live_chunk_end_latency_ms``: with the graph built frame by frame as frames are decoded
(``GraphBuilder``), the time from the chunk's last frame to its plan.

Caveats: a shared machine gives noisy wall-clock timings (the JSON records the load average,
and ``*_cpu_ms`` gives the process's CPU time for the 64 px figures); the graph
build grows with pixels, the greedy with nodes and anchors; synthetic content is not a corpus.

Command: ``anchorsr bench schedule --json`` or
``PYTHONPATH=. python -m anchorsr.bench.schedule_bench [--quick]``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..envinfo import environment
from ..graph import DependencyGraph, GraphBuilder, build_graph, frame_texture, frame_weights
from ..schedule import budget_area, chunks_of, dag_greedy, exhaustive_greedy, get_scheduler
from ..schedule.dag_greedy import LAST_STATS
from ..types import Chunk, CodedFrame

BUDGET = 0.05
FPS = 30.0


def _texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((height, width))
    for scale, amp in ((2, 40.0), (8, 60.0), (32, 80.0), (128, 60.0)):
        cells = rng.random((height // scale + 2, width // scale + 2))
        img += np.kron(cells, np.ones((scale, scale)))[:height, :width] * amp
    return np.clip(img - img.mean() + 128, 0, 255).astype(np.uint8)


def make_clip(path: str | os.PathLike, *, width: int = 1920, height: int = 1080,
              n_frames: int = 60, seed: int = 0) -> None:
    """Write the benchmark clip: a (3, 1) px/frame pan plus a 160 px square moving (-5, 2)."""
    from ..stream import EncodeSettings, write_clip

    rng = np.random.default_rng(seed)
    bg = _texture(height + 2 * n_frames, width + 4 * n_frames, rng)
    obj = _texture(160, 160, rng)

    def planes():
        for t in range(n_frames):
            y = bg[t:t + height, 3 * t:3 * t + width].copy()
            oy, ox = height // 3 + 2 * t, width // 2 - 5 * t
            y[oy:oy + 160, ox:ox + 160] = obj
            c = np.ascontiguousarray(y[::2, ::2] // 2 + 64)
            yield y, c, 255 - c

    write_clip(path, planes(), EncodeSettings(fps=FPS, keyint=60, crf=23.0))


def _median_ms(fn: Callable[[], object], repeats: int,
               clock: Callable[[], float] = time.perf_counter) -> float:
    """Median of ``repeats`` timed calls after one warm-up call, in ms of ``clock``."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times) * 1e3


def _pack_ms(graph: DependencyGraph, repeats: int) -> float:
    """Time to lay the graph out for the kernel (CSR + transposes), part of the graph build."""
    return _median_ms(lambda: DependencyGraph(graph.grid, graph.weights, graph.bias).packed, repeats)


def _graph_timings(chunk: Chunk, repeats: int) -> dict:
    refs = (chunk.prev,) + chunk.frames[:-1]
    pairs = list(zip(chunk.frames, refs))
    w_ms = _median_ms(lambda: [frame_weights(f, r, chunk.grid) for f, r in pairs], repeats)
    b_ms = _median_ms(lambda: [frame_texture(f, r, chunk.grid) for f, r in pairs], repeats)
    total = _median_ms(lambda: build_graph(chunk), repeats)
    return {"graph_build_ms": total, "graph_weights_ms": w_ms, "graph_texture_ms": b_ms,
            "graph_build_per_frame_ms": total / len(chunk)}


def _live_chunk_end_ms(chunk: Chunk, limit: float, repeats: int) -> float:
    """Latency once a chunk's last frame is decoded, when the graph is built frame by frame
    (GraphBuilder) as frames arrive: the last frame's graph work, the layout, dag-greedy."""
    times = []
    for i in range(repeats + 1):
        builder = GraphBuilder(chunk.grid, chunk.prev)
        for frame in chunk.frames[:-1]:
            builder.add(frame)
        t0 = time.perf_counter()
        builder.add(chunk.frames[-1])
        dag_greedy(builder.build(), limit)
        if i:  # the first round is the warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _same_plan(graph: DependencyGraph, limit: float, max_picks: int | None) -> tuple[bool, int]:
    f, p, _, _ = dag_greedy(graph, limit, max_picks=max_picks)
    f2, p2, _ = exhaustive_greedy(graph, limit, cost_aware=True, max_picks=max_picks)
    same = bool(np.array_equal(f, f2) and np.array_equal(p, p2))
    return same, int(len(f))


def _versus_palantir(frames: list[CodedFrame], patch_px: int, repeats: int,
                     same_plan_picks: int | None) -> dict:
    chunk = next(chunks_of(frames, 60, patch_px))
    graph = build_graph(chunk)
    limit = budget_area(chunk, BUDGET)
    ours = _median_ms(lambda: dag_greedy(graph, limit), repeats)
    pack = _pack_ms(graph, repeats)
    palantir = get_scheduler("palantir")
    t0 = time.perf_counter()
    pal_plan = palantir.plan(chunk, BUDGET, graph=graph)
    pal_ms = (time.perf_counter() - t0) * 1e3
    same, picks = _same_plan(graph, limit, same_plan_picks)
    return {"patch_px": patch_px, "grid": f"{chunk.grid.cols}x{chunk.grid.rows}",
            "nodes": len(chunk) * chunk.grid.n_patches, "dag_greedy_ms": ours,
            "dag_greedy_anchors": int(len(dag_greedy(graph, limit)[0])),
            "palantir_ms": pal_ms, "palantir_anchors": len(pal_plan),
            "speedup": pal_ms / ours, "graph_pack_ms": pack,
            "speedup_incl_pack": pal_ms / (ours + pack),
            "same_plan": same, "same_plan_picks": picks}


def run_schedule_bench(quick: bool = False) -> dict:
    """Run the benchmark; returns a JSON-ready dict (see the module docstring)."""
    from ..stream import open_frames

    repeats = 3 if quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "pan_object_1080p.mp4"
        make_clip(clip)
        frames = list(open_frames(clip))
    chunk = next(chunks_of(frames, 60, 64))
    graph = build_graph(chunk)
    limit = budget_area(chunk, BUDGET)
    greedy_ms = _median_ms(lambda: dag_greedy(graph, limit), repeats)
    # CPU time of this (single-threaded) process: less sensitive to other load on the machine.
    greedy_cpu_ms = _median_ms(lambda: dag_greedy(graph, limit), repeats, time.process_time)
    build_cpu_ms = _median_ms(lambda: build_graph(chunk), 1 if quick else 3, time.process_time)
    stats = dict(LAST_STATS)
    n_anchors = int(len(dag_greedy(graph, limit)[0]))
    build = _graph_timings(chunk, 1 if quick else 3)
    chunk_ms = len(chunk) / FPS * 1e3
    result = {
        "question": "graph build and dag-greedy latency per 60-frame 1080p chunk; speed-up over palantir",
        "clip": {"width": chunk.grid.width, "height": chunk.grid.height, "frames": len(chunk),
                 "fps": FPS, "chunk_ms": chunk_ms},
        "budget_fraction": BUDGET,
        "patch_px": 64, "patches_per_frame": chunk.grid.n_patches,
        "nodes": len(chunk) * chunk.grid.n_patches, "edges": int(sum(w.nnz for w in graph.weights)),
        **build, "graph_pack_ms": _pack_ms(graph, repeats),
        "graph_build_cpu_ms": build_cpu_ms,
        "dag_greedy_ms": greedy_ms, "dag_greedy_cpu_ms": greedy_cpu_ms,
        "dag_greedy_share_of_chunk": greedy_ms / chunk_ms,
        "dag_greedy_anchors": n_anchors, "dag_greedy_work": stats,
        "build_plus_greedy_ms": build["graph_build_ms"] + greedy_ms,
        "live_chunk_end_latency_ms": _live_chunk_end_ms(chunk, limit, 1 if quick else 3),
        "coarse_5x3": _versus_palantir(frames, 384, repeats, None),
        "grid_128px": _versus_palantir(frames, 128, repeats, 20 if quick else 60),
        "environment": environment(),
        "quick": quick,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    json.dump(run_schedule_bench(quick="--quick" in argv), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
