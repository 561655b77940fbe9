"""Scheduling latency benchmark: can the scheduler run live, and how much faster than Palantír?

Question: on one CPU core, how long do building the DAG of a 60-frame (2 s) 1080p chunk and
choosing its anchors take, how much faster is ``dag-greedy`` than the published ``palantir``
scheduler, and how do their plans compare in the objective J?

Variables: patch grid (64 px: 30x17 = 510 patches per frame, 30,600 nodes; 128 px: 15x9;
the paper's coarse 5x3 grid: 384 px patches); budget 5% of the chunk's LR pixels.

Metrics (lower is better unless noted): graph build ms per chunk from scratch
(``graph_build_ms``, split into edge weights and texture biases, and per frame);
``dag_greedy_ms`` (the registered ``dag-greedy``: the greedy guarded against Palantír's plan,
``schedule/guarded.py``) and its share of the chunk's duration; ``dag_greedy_plain_ms``
(``dag-greedy-plain``, no guard) and ``guard_cost_ratio`` = dag_greedy_ms /
dag_greedy_plain_ms; ``palantir_ms``; ``speedup`` = palantir_ms / dag_greedy_ms (higher is
better; ``speedup_plain`` against the plain greedy); ``plain_same_plan_as_exhaustive_greedy``:
the plain greedy kernel's plan equals the exhaustive greedy's (cost-aware, the objective it
optimises) pick for pick (the kernel's exactness; neither is Palantír's plan);
``palantir_fast_same_as_reference``: Palantír's plan rebuilt on the fast kernel (what the
guard compares with) equals the reference implementation's. ``plans.by_budget``: at each
checkpoint budget (1.67, 5, 10, 20%), J of ``dag-greedy`` and of the plain greedy relative to
Palantír's plan (``*_j_vs_palantir_pct``, negative: lower error), the Jaccard index of their
anchor sets with Palantír's (``*_jaccard_vs_palantir``), ``*_same_plan_as_palantir``, which
sequence the guard kept (``guard_kept``), and on the 5x3 grid at the 5% budget J relative to
the exhaustive greedy's plan (``*_j_vs_exhaustive_greedy_pct``,
``*_same_plan_as_exhaustive_greedy``).

Live figures. The pipeline decodes frames one at a time, and ``GraphBuilder.add`` does a
frame's graph work (edge weights, texture biases, its slice of the kernel layout) as it
arrives, so: ``per_frame_graph_work``: CPU ms of ``add`` per P frame (and on the key frame),
its share of a frame interval, and the chunk's sum, for exact biases (``texture_sample`` 1)
and the sampled estimate (2, 4); ``chunk_end``: the latency from the chunk's last decoded
frame to its plan (last ``add`` + ``build``, which only joins per-frame parts, +
dag-greedy), wall clock, with each part's CPU ms, and the same with the plain greedy in the
same rounds (``*_plain``, ``guard_cost_ratio``); ``total_cpu_per_chunk_ms``: all graph and
scheduling CPU work of a chunk (every ``add`` + ``build`` + dag-greedy), the compute share,
which building frame by frame does not reduce. ``targets`` says which targets this run met.

``blend_model_cost``: CPU ms of building the chunk's graph and of dag-greedy on it with the
anchors' blend modelled (keep shares at the pipeline's default anchor weight) and without, in
turns in one run, and the ratios (with / without).

``pipeline_default`` (each clip): the graph as the live pipeline builds it by default, on the
reuse gate's output with the ``intra`` node bias and the gate's fresh shares, against the
texture term on the ungated stream (what the figures above use), timed in turns in one run:
CPU ms per chunk of the gate (``gate_cpu_ms``: the shadow reconstruction, reuse-side work that
the scheduler needs), of each graph build and of ``dag-greedy`` on each graph, and the ratios.

``photo_clip``: the live figures again on a 1080p clip filmed over a real photograph with a
slow pan and zoom (varied motion vectors, as the reuse benchmark's speed clip).

``texture_ranking``: Spearman rank correlations, on real-photo clips, of the exact texture
biases and of their sampled estimates with the true per-patch error of bicubic upsampling
(``anchorsr.bench.texture_check``).

Method: a 1080p clip made here (a pan over a multi-scale random texture plus a moving textured
square; libx264 live profile: no B-frames, 1 reference, keyint 60, crf 23), decoded by
``anchorsr.stream.open_frames`` with motion vectors. Every timing is a median over repeats
after one warm-up run (numba kernels compiled before timing). numba kernels are
single-threaded and NumPy/SciPy calls here run on one core, so process CPU time is one-core
time. ``dag_greedy_ms`` is the scheduler on a built graph; ``graph_pack_ms`` is the kernel
layout (CSR arrays and transposes) redone from the weight matrices, with
``speedup_incl_pack`` counting it against dag-greedy (built frame by frame, the layout is
part of each ``add``). Palantír is timed once per grid (seconds per run). The exhaustive
greedy at 128 px is too slow to run to the budget (hours), so
``plain_same_plan_as_exhaustive_greedy`` there compares the first ``same_plan_picks`` picks,
and J against the exhaustive greedy is given on the 5x3 grid only.

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
from ..graph import objective
from ..reuse.reconstruct import ANCHOR_WEIGHTS
from ..schedule import (CHECKPOINTS, budget_area, chunks_of, dag_greedy, exhaustive_greedy,
                        get_scheduler, guarded_greedy, palantir_fast)
from ..schedule.dag_greedy import LAST_STATS
from ..schedule.guarded import LAST_CHOICE
from ..types import Chunk, CodedFrame

BUDGET = 0.05
FPS = 30.0
# The output scale the graphs are built for: edges with sub-pixel detail retention, as the
# pipeline builds them, with the anchors' blend with reuse at that scale's default weight.
SCALE = 2
ANCHOR_WEIGHT = ANCHOR_WEIGHTS[SCALE]


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


def make_photo_clip(path: str | os.PathLike, n_frames: int = 60) -> None:
    """Write a 1080p clip filmed over a real photograph: a slow pan and zoom (varied motion
    vectors), as the reuse benchmark's speed clip."""
    from ..stream import EncodeSettings, write_clip
    from .scenes import CameraPath, photo, render_pan

    lr = render_pan(photo("astronaut"), 1920, 1080, n_frames, CameraPath(0.45, 0.2, 1.001),
                    magnify=4.0, order=1)
    write_clip(path, lr, EncodeSettings(fps=FPS, keyint=60, crf=23.0))


def _live_figures(chunk: Chunk, graph: DependencyGraph, limit: float, repeats: int,
                  per_frame_repeats: int, samples: tuple[int, ...]) -> dict:
    """dag-greedy's CPU ms and work counters, the per-frame graph work (texture samples
    ``samples``), the chunk-end latency and all graph + scheduling CPU of the chunk."""
    greedy_cpu_ms = _median_ms(lambda: guarded_greedy(graph, limit), repeats, time.process_time)
    choice = dict(LAST_CHOICE)
    dag_greedy(graph, limit)
    stats = dict(LAST_STATS)
    per_frame = [_per_frame(chunk, per_frame_repeats, s) for s in samples]
    chunk_end = _chunk_end(chunk, limit, repeats)
    total_cpu = per_frame[0]["chunk_total_cpu_ms"] + chunk_end["assembly_cpu_ms"] + greedy_cpu_ms
    return {"dag_greedy_cpu_ms": greedy_cpu_ms, "dag_greedy_guard": choice,
            "dag_greedy_plain_work": stats,
            "per_frame_graph_work": per_frame, "chunk_end": chunk_end,
            "total_cpu_per_chunk_ms": total_cpu,
            "total_cpu_share_of_chunk": total_cpu / (len(chunk) / FPS * 1e3)}


def _photo_figures(tmp: str, repeats: int) -> dict:
    """Per-frame graph work, dag-greedy and chunk-end latency on the real-photo clip."""
    from ..stream import open_frames

    clip = Path(tmp) / "photo_pan_zoom_1080p.mp4"
    make_photo_clip(clip)
    frames = list(open_frames(clip))
    chunk = next(chunks_of(frames, 60, 64))
    graph = build_graph(chunk, scale=SCALE, anchor_weight=ANCHOR_WEIGHT)
    live = _live_figures(chunk, graph, budget_area(chunk, BUDGET), repeats, max(1, repeats // 3), (1, 2))
    return {"clip": "astronaut photo, pan + zoom 1.001/frame, 1080p, crf 23",
            "edges": int(sum(w.nnz for w in graph.weights)), **live,
            "plans": _plan_quality(graph, chunk, exhaustive=False),
            "pipeline_default": _pipeline_default(frames, repeats)}


def _pipeline_default(frames: list[CodedFrame], repeats: int, chunk_frames: int = 60, patch_px: int = 64) -> dict:
    """The default pipeline's graph (gated stream, ``intra`` bias with fresh shares) against
    the texture term on the ungated stream: CPU ms medians, measured in alternating turns."""
    from ..graph import node_bias_for
    from ..reuse import gate_frames

    gated = list(gate_frames(frames))
    plain_chunk = next(chunks_of(frames, chunk_frames, patch_px))
    gated_chunk = next(chunks_of(gated, chunk_frames, patch_px))
    intra = node_bias_for("intra", SCALE)
    limit = budget_area(plain_chunk, BUDGET)
    steps = {
        "gate_cpu_ms": lambda: list(gate_frames(frames)),
        "texture_build_cpu_ms": lambda: build_graph(plain_chunk, scale=SCALE, anchor_weight=ANCHOR_WEIGHT),
        "default_build_cpu_ms": lambda: build_graph(gated_chunk, scale=SCALE, anchor_weight=ANCHOR_WEIGHT,
                                                    node_bias=intra),
    }
    graphs = {"texture": steps["texture_build_cpu_ms"](), "default": steps["default_build_cpu_ms"]()}
    steps["texture_dag_greedy_cpu_ms"] = lambda: guarded_greedy(graphs["texture"], limit)
    steps["default_dag_greedy_cpu_ms"] = lambda: guarded_greedy(graphs["default"], limit)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for fn in steps.values():
        fn()  # warm-up (compiles)
    for _ in range(repeats):
        for k, fn in steps.items():
            c0 = time.process_time()
            fn()
            times[k].append((time.process_time() - c0) * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    texture = med["texture_build_cpu_ms"] + med["texture_dag_greedy_cpu_ms"]
    default = med["default_build_cpu_ms"] + med["default_dag_greedy_cpu_ms"]
    return {**med, "texture_graph_and_schedule_cpu_ms": texture,
            "default_graph_and_schedule_cpu_ms": default,
            "default_over_texture": default / texture,
            "default_with_gate_over_texture": (default + med["gate_cpu_ms"]) / texture,
            "gate_share_of_chunk": med["gate_cpu_ms"] / (len(plain_chunk) / FPS * 1e3)}


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
    w_ms = _median_ms(lambda: [frame_weights(f, r, chunk.grid, SCALE) for f, r in pairs], repeats)
    b_ms = _median_ms(lambda: [frame_texture(f, r, chunk.grid) for f, r in pairs], repeats)
    total = _median_ms(lambda: build_graph(chunk, scale=SCALE, anchor_weight=ANCHOR_WEIGHT), repeats)
    return {"graph_build_ms": total, "graph_weights_ms": w_ms, "graph_texture_ms": b_ms,
            "graph_build_per_frame_ms": total / len(chunk)}


def _per_frame(chunk: Chunk, repeats: int, texture_sample: int = 1) -> dict:
    """CPU ms of ``GraphBuilder.add`` per frame (the work done as each frame is decoded): the
    median over the chunk's P frames, its key frame, and the chunk's sum; per-frame medians
    over ``repeats`` rounds after a warm-up round."""
    runs = []
    for _ in range(repeats + 1):
        builder = GraphBuilder(chunk.grid, chunk.prev, texture_sample=texture_sample, scale=SCALE,
                               anchor_weight=ANCHOR_WEIGHT)
        times = []
        for frame in chunk.frames:
            t0 = time.process_time()
            builder.add(frame)
            times.append(time.process_time() - t0)
        runs.append(times)
    per = np.median(np.array(runs[1:]), axis=0) * 1e3
    kinds = np.array([f.is_key for f in chunk.frames])
    p_ms = float(np.median(per[~kinds])) if (~kinds).any() else float("nan")
    return {"texture_sample": texture_sample, "p_frame_cpu_ms": p_ms,
            "key_frame_cpu_ms": float(per[kinds].max()) if kinds.any() else None,
            "chunk_total_cpu_ms": float(per.sum()),
            "p_frame_share_of_frame_interval": p_ms / (1e3 / FPS)}


def _chunk_end(chunk: Chunk, limit: float, repeats: int) -> dict:
    """Latency once a chunk's last frame is decoded, with the graph built frame by frame
    (GraphBuilder) as frames arrive: the last frame's ``add``, the final ``build`` (joining
    the per-frame parts) and dag-greedy. Medians over ``repeats`` after a warm-up: wall-clock
    ms (perf_counter) of the whole, process CPU ms of each part. The plain greedy
    (``dag-greedy-plain``, no guard against Palantír's plan) is timed in the same rounds on
    the same graph, the two in alternating order, for the guard's cost as a ratio
    (``guard_cost_ratio``: latency with the guard / without)."""
    runs = {"guarded": guarded_greedy, "plain": dag_greedy}
    wall = {k: [] for k in runs}
    cpu = {k: [] for k in runs}
    parts = {k: [] for k in runs}
    for i in range(repeats + 1):
        builder = GraphBuilder(chunk.grid, chunk.prev, scale=SCALE, anchor_weight=ANCHOR_WEIGHT)
        for frame in chunk.frames[:-1]:
            builder.add(frame)
        t0, c0 = time.perf_counter(), time.process_time()
        builder.add(chunk.frames[-1])
        c1 = time.process_time()
        graph = builder.build()
        c2, t2 = time.process_time(), time.perf_counter()
        order = list(runs) if i % 2 else list(runs)[::-1]
        for name in order:
            s0, w0 = time.process_time(), time.perf_counter()
            runs[name](graph, limit)
            s1, w1 = time.process_time(), time.perf_counter()
            if i:  # the first round is the warm-up
                wall[name].append(t2 - t0 + w1 - w0)
                cpu[name].append(c2 - c0 + s1 - s0)
                parts[name].append((c1 - c0, c2 - c1, s1 - s0))
    chunk_ms = len(chunk) / FPS * 1e3
    out = {}
    for name in runs:
        med = np.median(np.array(parts[name]), axis=0) * 1e3
        latency = statistics.median(wall[name]) * 1e3
        tag = "" if name == "guarded" else "_plain"
        out.update({f"last_frame_add_cpu_ms{tag}": float(med[0]), f"assembly_cpu_ms{tag}": float(med[1]),
                    f"dag_greedy_cpu_ms{tag}": float(med[2]), f"latency_ms{tag}": latency,
                    f"latency_cpu_ms{tag}": statistics.median(cpu[name]) * 1e3,
                    f"share_of_chunk{tag}": latency / chunk_ms})
    out["guard_cost_ratio"] = out["latency_ms"] / out["latency_ms_plain"]
    out["guard_cost_ratio_scheduler_cpu"] = out["dag_greedy_cpu_ms"] / out["dag_greedy_cpu_ms_plain"]
    return out


def _same_plan(graph: DependencyGraph, limit: float, max_picks: int | None) -> tuple[bool, int]:
    """The plain greedy kernel (``dag-greedy-plain``) against the exhaustive greedy (cost-aware,
    the objective it optimises), pick for pick: the kernel's exactness."""
    f, p, _, _ = dag_greedy(graph, limit, max_picks=max_picks)
    f2, p2, _ = exhaustive_greedy(graph, limit, cost_aware=True, max_picks=max_picks)
    same = bool(np.array_equal(f, f2) and np.array_equal(p, p2))
    return same, int(len(f))


def _nodes(frames, patches, n: int) -> set[int]:
    return set((np.asarray(frames, np.int64) * n + np.asarray(patches, np.int64)).tolist())


def _jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _plan_quality(graph: DependencyGraph, chunk: Chunk, exhaustive: bool) -> dict:
    """J of dag-greedy (guarded) and of the plain greedy relative to Palantír's plan at each
    checkpoint budget (``j_vs_palantir_pct``: 100 (J / J_palantir - 1); negative: lower error
    than Palantír), the Jaccard index of their anchor sets with Palantír's, which sequence the
    guard kept, and at the benchmark budget (when ``exhaustive``) the same against the
    exhaustive greedy. Palantír's plans here come from its restricted greedy on the fast kernel
    (``palantir_fast``, the same picks; checked against the reference at the benchmark budget
    by the caller)."""
    n = graph.n_patches
    j0 = objective(graph)
    rows = []
    for b in CHECKPOINTS:
        limit = budget_area(chunk, b)
        pal = palantir_fast(graph, limit)
        plain = dag_greedy(graph, limit)
        ours = guarded_greedy(graph, limit)
        choice = str(LAST_CHOICE.get("kept"))
        j_pal = j0 - float(np.sum(pal[2]))
        row = {"budget_fraction": b, "guard_kept": choice}
        for name, plan in (("dag_greedy", ours), ("dag_greedy_plain", plain)):
            j = j0 - float(np.sum(plan[2]))
            row[f"{name}_j_vs_palantir_pct"] = 100 * (j / j_pal - 1)
            row[f"{name}_jaccard_vs_palantir"] = _jaccard(_nodes(plan[0], plan[1], n), _nodes(pal[0], pal[1], n))
            row[f"{name}_same_plan_as_palantir"] = bool(np.array_equal(plan[0], pal[0]) and np.array_equal(plan[1], pal[1]))
        if exhaustive and abs(b - BUDGET) < 1e-12:
            f, p, drops = exhaustive_greedy(graph, limit, cost_aware=True)
            j_ex = j0 - float(np.sum(drops))
            for name, plan in (("dag_greedy", ours), ("dag_greedy_plain", plain)):
                row[f"{name}_j_vs_exhaustive_greedy_pct"] = 100 * ((j0 - float(np.sum(plan[2]))) / j_ex - 1)
                row[f"{name}_same_plan_as_exhaustive_greedy"] = bool(
                    np.array_equal(plan[0], f) and np.array_equal(plan[1], p))
        rows.append(row)
    return {"by_budget": rows,
            "dag_greedy_never_above_palantir": all(r["dag_greedy_j_vs_palantir_pct"] <= 1e-7 for r in rows)}


def _versus_palantir(frames: list[CodedFrame], patch_px: int, repeats: int,
                     same_plan_picks: int | None) -> dict:
    chunk = next(chunks_of(frames, 60, patch_px))
    graph = build_graph(chunk, scale=SCALE, anchor_weight=ANCHOR_WEIGHT)
    limit = budget_area(chunk, BUDGET)
    ours = _median_ms(lambda: guarded_greedy(graph, limit), repeats)
    plain_ms = _median_ms(lambda: dag_greedy(graph, limit), repeats)
    pack = _pack_ms(graph, repeats)
    palantir = get_scheduler("palantir")
    t0 = time.perf_counter()
    pal_plan = palantir.plan(chunk, BUDGET, graph=graph)
    pal_ms = (time.perf_counter() - t0) * 1e3
    fast = palantir_fast(graph, limit)
    same, picks = _same_plan(graph, limit, same_plan_picks)
    return {"patch_px": patch_px, "grid": f"{chunk.grid.cols}x{chunk.grid.rows}",
            "nodes": len(chunk) * chunk.grid.n_patches, "dag_greedy_ms": ours,
            "dag_greedy_plain_ms": plain_ms, "guard_cost_ratio": ours / plain_ms,
            "dag_greedy_anchors": int(len(guarded_greedy(graph, limit)[0])),
            "palantir_ms": pal_ms, "palantir_anchors": len(pal_plan),
            "palantir_fast_same_as_reference": bool(np.array_equal(fast[0], pal_plan.frames)
                                                    and np.array_equal(fast[1], pal_plan.patches)),
            "speedup": pal_ms / ours, "speedup_plain": pal_ms / plain_ms, "graph_pack_ms": pack,
            "speedup_incl_pack": pal_ms / (ours + pack),
            "plain_same_plan_as_exhaustive_greedy": same, "same_plan_picks": picks,
            "plans": _plan_quality(graph, chunk, exhaustive=same_plan_picks is None)}


def _blend_cost(chunk: Chunk, limit: float, repeats: int) -> dict:
    """What modelling the anchors' blend costs, in turns in one run: CPU ms of building the
    chunk's graph and of dag-greedy on it, with the blend (keep shares, the pipeline's graph) and
    without (an anchor removes its node's error), and their ratios."""
    variants = {"with": ANCHOR_WEIGHT, "without": None}
    build = {k: [] for k in variants}
    greedy = {k: [] for k in variants}
    graphs = {k: build_graph(chunk, scale=SCALE, anchor_weight=w) for k, w in variants.items()}
    for k in variants:  # warm-up
        guarded_greedy(graphs[k], limit)
    for _ in range(repeats):
        for k, w in variants.items():
            c0 = time.process_time()
            g = build_graph(chunk, scale=SCALE, anchor_weight=w)
            c1 = time.process_time()
            guarded_greedy(g, limit)
            c2 = time.process_time()
            build[k].append(c1 - c0)
            greedy[k].append(c2 - c1)
    med = {f"{part}_{k}_cpu_ms": 1e3 * statistics.median(v[k])
           for part, v in (("build", build), ("dag_greedy", greedy)) for k in variants}
    return {**med, "anchor_weight": ANCHOR_WEIGHT, "repeats": repeats,
            "build_ratio": med["build_with_cpu_ms"] / med["build_without_cpu_ms"],
            "dag_greedy_ratio": med["dag_greedy_with_cpu_ms"] / med["dag_greedy_without_cpu_ms"]}


def run_schedule_bench(quick: bool = False) -> dict:
    """Run the benchmark; returns a JSON-ready dict (see the module docstring)."""
    from ..stream import open_frames
    from .texture_check import run_texture_check

    repeats = 3 if quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "pan_object_1080p.mp4"
        make_clip(clip)
        frames = list(open_frames(clip))
        photo = _photo_figures(tmp, repeats)
    chunk = next(chunks_of(frames, 60, 64))
    graph = build_graph(chunk, scale=SCALE, anchor_weight=ANCHOR_WEIGHT)
    limit = budget_area(chunk, BUDGET)
    greedy_ms = _median_ms(lambda: guarded_greedy(graph, limit), repeats)
    # CPU time of this (single-threaded) process: less sensitive to other load on the machine.
    live = _live_figures(chunk, graph, limit, repeats, 1 if quick else 3, (1, 2, 4))
    build_cpu_ms = _median_ms(lambda: build_graph(chunk, scale=SCALE, anchor_weight=ANCHOR_WEIGHT),
                              1 if quick else 3, time.process_time)
    n_anchors = int(len(guarded_greedy(graph, limit)[0]))
    build = _graph_timings(chunk, 1 if quick else 3)
    chunk_ms = len(chunk) / FPS * 1e3
    chunk_end = live["chunk_end"]
    grid_128 = _versus_palantir(frames, 128, repeats, 20 if quick else 60)
    coarse = _versus_palantir(frames, 384, repeats, None)
    return {
        "question": "graph build and dag-greedy latency per 60-frame 1080p chunk; speed-up over palantir",
        "clip": {"width": chunk.grid.width, "height": chunk.grid.height, "frames": len(chunk),
                 "fps": FPS, "chunk_ms": chunk_ms},
        "budget_fraction": BUDGET,
        "patch_px": 64, "patches_per_frame": chunk.grid.n_patches,
        "nodes": len(chunk) * chunk.grid.n_patches, "edges": int(sum(w.nnz for w in graph.weights)),
        **build, "graph_pack_ms": _pack_ms(graph, repeats),
        "graph_build_cpu_ms": build_cpu_ms,
        "dag_greedy_ms": greedy_ms, "dag_greedy_cpu_ms": live["dag_greedy_cpu_ms"],
        "dag_greedy_share_of_chunk": greedy_ms / chunk_ms,
        "dag_greedy_anchors": n_anchors, "dag_greedy_guard": live["dag_greedy_guard"],
        "dag_greedy_plain_work": live["dag_greedy_plain_work"],
        "build_plus_greedy_ms": build["graph_build_ms"] + greedy_ms,
        "build_plus_greedy_share_of_chunk": (build["graph_build_ms"] + greedy_ms) / chunk_ms,
        "plans": _plan_quality(graph, chunk, exhaustive=False),
        "blend_model_cost": _blend_cost(chunk, limit, 3 if quick else 7),
        "per_frame_graph_work": live["per_frame_graph_work"],
        "chunk_end": chunk_end,
        "live_chunk_end_latency_ms": chunk_end["latency_ms"],
        "total_cpu_per_chunk_ms": live["total_cpu_per_chunk_ms"],
        "total_cpu_share_of_chunk": live["total_cpu_share_of_chunk"],
        "pipeline_default": _pipeline_default(frames, repeats),
        "photo_clip": photo,
        "coarse_5x3": coarse,
        "grid_128px": grid_128,
        "targets": {
            "chunk_end_latency_le_1pct_of_chunk": chunk_end["latency_ms"] <= 0.01 * chunk_ms,
            "photo_chunk_end_latency_le_1pct_of_chunk":
                photo["chunk_end"]["latency_ms"] <= 0.01 * chunk_ms,
            "build_plus_greedy_le_1pct_of_chunk":
                build["graph_build_ms"] + greedy_ms <= 0.01 * chunk_ms,
            "total_cpu_le_1pct_of_chunk": live["total_cpu_per_chunk_ms"] <= 0.01 * chunk_ms,
            "speedup_128px_ge_50x": grid_128["speedup"] >= 50,
            "dag_greedy_never_above_palantir_j":
                coarse["plans"]["dag_greedy_never_above_palantir"]
                and grid_128["plans"]["dag_greedy_never_above_palantir"],
        },
        "texture_ranking": run_texture_check(n_frames=4 if quick else 8,
                                             clips=2 if quick else None),
        "environment": environment(),
        "quick": quick,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    json.dump(run_schedule_bench(quick="--quick" in argv), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
