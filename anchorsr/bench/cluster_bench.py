"""`anchorsr bench cluster`: one SR budget across streams against equal per-stream budgets.

Question: when several live streams share the same SR workers, does giving the workers' capacity
to the anchors with the most estimated gain per pixel over *all* streams (``cluster.budget``'s
global greedy) give better pictures than splitting it equally between the streams
(NeuroScaler's per-stream budget), at the same total SR compute?
Method: N streams of different content and motion (a still shot, a slow pan, a fast pan, a zoom,
over real photographs), each HR truth downscaled x2 and coded in the live profile, decoded with
motion. Every 1-second chunk is a round: each stream's ``dag-greedy`` plan at a cap budget offers
its anchors in plan order with their exact drops in J, their areas and their frames' deadlines
(frame time + the live latency). The workers' capacity per round is ``budget`` x the round's LR
pixels of all streams; the workers' speed is the SR network's measured pixels per second on this
machine. Each policy's kept plan prefixes are then run through the library's own reconstruction
loop with the real network, and each stream's PSNR-Y (mean MSE over its frames) is measured
against its HR truth.
Metrics: mean PSNR-Y over streams per policy (higher is better) and its difference, per-stream
PSNR, SR pixels used (equal compute), anchors refused for their deadline.
Scale (``scale_counts``, needs Ray): total fps and real-time margin of N streams run in this
process and in Ray actors, and the ratio between them (``cluster_scale``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Callable

import numpy as np

from ..cluster import Offer, Worker, allocate_equal, allocate_global
from ..envinfo import environment
from ..metrics import ClipMeter
from ..pipeline.options import PipelineOptions
from ..pipeline.steps import fetch_patches, make_patch_source, rebuild
from ..reuse import Reconstructor
from ..schedule import chunks_of, get_scheduler, pair_plans
from ..stream import EncodeSettings, open_frames, write_clip
from ..types import grid_for
from .scenes import CameraPath, downscale, hr_planes_for_lr, photo, render_pan

# name, scikit-image photo, camera path: streams that differ in what an anchor buys.
STREAMS = (
    ("still-coffee", "coffee", CameraPath(0.0, 0.0)),
    ("slow-pan-astronaut", "astronaut", CameraPath(0.35, 0.15)),
    ("fast-pan-chelsea", "chelsea", CameraPath(2.6, 0.9)),
    ("zoom-rocket", "rocket", CameraPath(0.2, 0.0, 1.004)),
)
SCALE = 2
FPS = 30.0
CAP_BUDGET = 0.3  # each stream's offer: its plan up to this share of its pixels


def _stream(tmp: str, name: str, image: str, path: CameraPath, width: int, height: int, frames: int):
    hr = list(render_pan(photo(image), width * SCALE, height * SCALE, frames, path, order=1))
    clip = os.path.join(tmp, f"{name}.mp4")
    write_clip(clip, downscale(iter(hr), SCALE), EncodeSettings(fps=FPS, crf=23.0))
    return list(open_frames(clip)), hr


def _sr_px_per_s(source, frame, patch_px: int | None) -> float:
    """The network's measured LR pixels per second on ``frame``'s patches (after a warm-up)."""
    grid = grid_for(patch_px, frame.height, frame.width)
    boxes = grid.boxes()
    source(frame, boxes[:2], SCALE)
    start = time.perf_counter()
    source(frame, boxes, SCALE)
    return float(grid.areas().sum()) / (time.perf_counter() - start)


def _psnr(frames, plans, truth, source, options: PipelineOptions) -> float:
    rec, meter = Reconstructor(options.reuse_config()), ClipMeter()
    for pf, ref in zip(pair_plans(frames, plans, options.patch_px), truth):
        out = rebuild(rec, pf, fetch_patches(source, pf, SCALE))
        meter.add_plane(out.y, hr_planes_for_lr(*ref, SCALE)[0])
    return meter.psnr


def run_cluster_bench(n_streams: int = 4, budget: float = 0.05, quick: bool = False,
                      progress: Callable[[str], None] | None = None,
                      scale_counts: tuple[int, ...] = (), scale_extra_node: bool = False,
                      scale_sr_workers: int = 0) -> dict:
    say = progress or (lambda _msg: None)
    width, height, frames = (160, 96, 30) if quick else (320, 192, 90)
    chunk = int(FPS)
    options = PipelineOptions(scale=SCALE, chunk_frames=chunk)
    specs = [STREAMS[i % len(STREAMS)] for i in range(n_streams)]
    tmp = tempfile.mkdtemp(prefix="anchorsr-cluster-")
    try:
        streams = {}
        for i, (name, image, path) in enumerate(specs):
            key = name if i < len(STREAMS) else f"{name}-{i}"
            say(f"stream {key}: film, code, decode")
            streams[key] = _stream(tmp, key, image, path, width, height, frames)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    source = make_patch_source("default", SCALE)
    first = next(iter(streams.values()))[0][0]
    px_per_s = _sr_px_per_s(source, first, options.patch_px)
    latency_s = options.latency_target_s(FPS)
    scheduler = get_scheduler("dag-greedy")
    chunked = {k: list(chunks_of(v[0], chunk, options.patch_px)) for k, v in streams.items()}
    rounds = max(len(c) for c in chunked.values())
    result_plans = {"global": {k: [] for k in streams}, "equal": {k: [] for k in streams}}
    refused = {"global": 0, "equal": 0}
    used = {"global": 0.0, "equal": 0.0}
    gains = {"global": 0.0, "equal": 0.0}
    for r in range(rounds):
        say(f"round {r + 1}/{rounds}: plan every stream, share the SR workers")
        offers, plans = [], {}
        lr_px = 0.0
        for key, chunks in chunked.items():
            if r >= len(chunks):
                continue
            c = chunks[r]
            plan = scheduler.plan(c, CAP_BUDGET)
            plans[key] = plan
            areas = c.grid.areas()[plan.patches].astype(float)
            due = (c.start + plan.frames.astype(float) + 1) / FPS + latency_s
            offers.append(Offer(key, np.maximum(scheduler.last_gains[:len(plan)], 0.0), areas, due))
            lr_px += len(c) * c.grid.height * c.grid.width
        start = r * chunk / FPS + chunk / FPS  # the round starts when its chunks are complete
        capacity = budget * lr_px
        for policy, allocate in (("global", allocate_global), ("equal", allocate_equal)):
            workers = [Worker("sr-0", px_per_s, free_at=start)]
            alloc = allocate(offers, workers, capacity)
            for o in offers:
                result_plans[policy][o.stream].append(plans[o.stream].prefix(alloc.kept[o.stream]))
            refused[policy] += alloc.late
            used[policy] += alloc.area
            gains[policy] += alloc.gain
    per_stream = {}
    for key, (coded, truth) in streams.items():
        say(f"stream {key}: rebuild with each policy's anchors")
        per_stream[key] = {p: round(_psnr(coded, result_plans[p][key], truth, source, options), 3)
                           for p in ("global", "equal")}
        for p in ("global", "equal"):
            per_stream[key][f"sr_share_{p}"] = round(
                sum(plan.anchor_fraction() * plan.n_frames for plan in result_plans[p][key]) / len(coded), 4)
    mean = {p: round(float(np.mean([s[p] for s in per_stream.values()])), 3) for p in ("global", "equal")}
    scale = None
    if scale_counts:
        from ..errors import ConfigError
        from .cluster_scale import run_scale_bench

        try:
            scale = run_scale_bench(tuple(scale_counts), quick=quick, progress=progress,
                                    extra_node=scale_extra_node, sr_workers=scale_sr_workers)
        except ConfigError as exc:  # Ray is not installed: the budget comparison stands alone
            scale = {"skipped": str(exc)}
    scale_arg = " --scale-streams " + (",".join(map(str, scale_counts)) if scale_counts else "none") + (
        " --scale-extra-node" if scale_extra_node and scale_counts else "") + (
        f" --scale-sr-workers {scale_sr_workers}" if scale_sr_workers and scale_counts else "")
    return {
        "benchmark": "cluster",
        "command": f"anchorsr bench cluster --streams {n_streams} --budget {budget}{scale_arg}"
                   + (" --quick" if quick else ""),
        "streams": n_streams,
        "lr_size": [width, height],
        "scale": SCALE,
        "frames_per_stream": frames,
        "budget": budget,
        "sr_px_per_s": round(px_per_s),
        "mean_psnr_y": mean,
        "global_minus_equal_db": round(mean["global"] - mean["equal"], 3),
        "per_stream_psnr_y": per_stream,
        "sr_pixels": {p: int(v) for p, v in used.items()},
        "model_gain": {p: round(v, 2) for p, v in gains.items()},
        "anchors_refused_for_deadline": refused,
        "scale": scale,
        "environment": environment(),
    }
