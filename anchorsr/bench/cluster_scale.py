"""The scale part of ``anchorsr bench cluster``: N streams at once, in this process and in Ray actors.

Question: how many frames per second do N simultaneous streams (360p -> 720p, the shipped SR
network) sustain together, how far is each from real time, and what does running each stream
in a Ray actor (``serve --ray``) cost against running them in one process (``serve``)?
Method: one 360p clip (a pan over a photograph) coded in the live profile; its packets are fed,
all at once, to N pipelines (throughput mode: nothing dropped, every frame rebuilt and encoded
to HLS) in two set-ups measured in the same run on the same packets:
  * in process: N ``LivePipeline``s, each decoding the packets (``PacketSource``), sharing one
    SR pool of N threads, as ``serve`` runs them;
  * Ray: a local Ray cluster on this machine, one ``StreamWorker`` actor per stream asking for
    min(1, CPUs / N) CPUs, fed the packets through Ray, as ``serve --ray`` runs them;
  * with ``extra_node``, a third set-up: a Ray cluster of a head node and one more node process
    on this machine (loopback; this machine's CPUs split between them), the actors spread over
    both, as a two-machine cluster runs them but without more cores: what a second node's
    process, object transfers between nodes and the spread cost on their own.
Start-up (model loading, kernel warm-up, actor creation) is left out: the clock starts when
every pipeline is ready and stops when the last one has finalised its HLS.
Metrics: total output fps (all streams' frames over the wall time), each stream's real-time
margin (its frames per second over the input's rate: above 1 keeps up), and Ray's total fps
over the in-process total (below 1: Ray's cost). A shared machine makes the absolute figures
noisy; the ratio compares set-ups measured back to back.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Callable

from ..pipeline.live import LivePipeline
from ..pipeline.options import PipelineOptions
from ..pipeline.runners import warm_up
from ..pipeline.srpool import SRPool
from ..pipeline.steps import make_patch_source
from ..stream import EncodeSettings, VideoSource, hls_sink, write_clip
from ..stream.packets import PacketSource, StreamParams, wire_packets
from .scenes import CameraPath, photo, render_pan

FPS = 30.0


def _clip(tmp: str, width: int, height: int, frames: int) -> str:
    path = os.path.join(tmp, f"scale_{height}p.ts")
    pan = render_pan(photo("astronaut"), width, height, frames, CameraPath(0.45, 0.2, 1.0005),
                     magnify=max(width / 512, 1.0), order=1)
    write_clip(path, pan, EncodeSettings(fps=FPS, keyint=30, crf=23.0))
    return path


def _in_process(n: int, params: StreamParams, packets: list, options: PipelineOptions, source, out: str) -> dict:
    pool = SRPool(source, n)
    try:
        pipes = []
        for i in range(n):
            folder = os.path.join(out, f"local-{n}-{i}")
            sink = (lambda f: lambda w, h, s: hls_sink(f, w, h, s, options.segment_s))(folder)
            pipes.append(LivePipeline(PacketSource(params, packets), FPS, sink, pool, options, name=f"s{i}"))
        start = time.monotonic()
        for p in pipes:
            p.start()
        ends = []
        for p in pipes:
            p.wait()
            ends.append(p.stats.finished or time.monotonic())
        wall = max(ends) - start
        done = [p.stats.frames_out for p in pipes]
        return _figures(done, [e - start for e in ends], wall)
    finally:
        pool.close()


def _on_ray(n: int, params: StreamParams, packets: list, options: PipelineOptions, cluster, out: str,
            tag: str = "ray") -> dict:
    """N stream actors on ``cluster``; with its SR workers (``cluster.coordinator``) where it has
    them, the actors sharing the CPUs the workers leave."""
    ray = cluster.ray
    free = ray.cluster_resources().get("CPU", 1.0)
    if cluster.sr_workers:
        free -= float(cluster.sr_resources.get("num_cpus", 0.0)) * len(cluster.sr_workers)
    cpus = min(1.0, free / n)
    actor = cluster.actor_class.options(num_cpus=cpus, max_restarts=0, scheduling_strategy="SPREAD")
    extra = {"sr": cluster.coordinator} if cluster.coordinator is not None else {}
    workers = [actor.remote(params, os.path.join(out, f"{tag}-{n}-{i}"), options, **extra) for i in range(n)]
    try:
        ray.get([w.snapshot.remote() for w in workers], timeout=600)  # every actor started and warmed up
        start = time.monotonic()
        for w in workers:
            w.feed.remote(packets)
        pending = {w.end.remote(): i for i, w in enumerate(workers)}
        ends, done, shares = [0.0] * n, [0] * n, [0.0] * n
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=600)
            if not ready:
                raise TimeoutError("a stream actor did not finish within 10 minutes")
            i = pending.pop(ready[0])
            ends[i] = time.monotonic() - start
            snap = ray.get(ready[0])
            done[i], shares[i] = snap["frames_out"], float(snap.get("sr_share") or 0.0)
        figures = _figures(done, ends, max(ends))
        figures["sr_share_mean"] = round(sum(shares) / n, 4)
        figures["nodes_used"] = len(set(ray.get([w.snapshot.remote() for w in workers], timeout=60)[i]["node_id"]
                                        for i in range(n)))
        return figures
    finally:
        for w in workers:
            ray.kill(w)


def _figures(frames: list[int], seconds: list[float], wall: float) -> dict:
    margins = [f / s / FPS if s > 0 else 0.0 for f, s in zip(frames, seconds)]
    return {"total_fps": round(sum(frames) / wall, 2), "wall_s": round(wall, 2), "frames": sum(frames),
            "realtime_margin_per_stream": [round(m, 3) for m in margins],
            "min_realtime_margin": round(min(margins), 3)}


def _ratio(a: dict, b: dict) -> float | None:
    """Set-up ``a``'s total fps over set-up ``b``'s (None when ``b`` made nothing)."""
    return round(a["total_fps"] / b["total_fps"], 3) if b["total_fps"] else None


def _add_setup(rows: list[dict], key: str, ratio_key: str, cluster, run: Callable[[int, object, str], dict],
               label: str, say: Callable[[str], None]) -> None:
    """Measure every row's stream count again on ``cluster`` into ``row[key]``, with its total
    fps over the one-node Ray set-up's in ``row[ratio_key]``."""
    for row in rows:
        n = row["streams"]
        say(f"scale: {n} stream(s) in Ray actors, {label}")
        row[key] = run(n, cluster, key)
        row[ratio_key] = _ratio(row[key], row["ray"])


def _two_node_cluster(cpus: int):
    """A Ray head and one more node process on this machine, ``cpus`` split between them."""
    from ray import cluster_utils

    half = max(cpus // 2, 1)
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": half, "include_dashboard": False})
    cluster.add_node(num_cpus=max(cpus - half, 1))
    cluster.wait_for_nodes(timeout=300)
    return cluster


def run_scale_bench(counts: tuple[int, ...] = (1, 2, 4, 8), quick: bool = False,
                    progress: Callable[[str], None] | None = None, extra_node: bool = False,
                    sr_workers: int = 0) -> dict:
    """The scale figures (see the module docstring); needs Ray for the Ray half."""
    from ..cluster.runner import RayCluster

    say = progress or (lambda _msg: None)
    # 300 frames (10 s of input) per stream: long enough that the wall clock of one stream is
    # seconds, not a fraction of one (90 frames ran in 0.6 s on this machine: too noisy)
    width, height, frames = (320, 180, 30) if quick else (640, 360, 300)
    options = PipelineOptions(model="default", realtime=False, chunk_frames=30, segment_s=1.0)
    tmp = tempfile.mkdtemp(prefix="anchorsr-scale-")
    try:
        say(f"scale: film and code a {width}x{height} clip of {frames} frames")
        clip = _clip(tmp, width, height, frames)
        src = VideoSource(clip)
        params, packets = StreamParams.of(src, "scale"), list(wire_packets(src))
        src.close()
        say("scale: start a local Ray cluster")
        cluster = RayCluster("local")
        source = make_patch_source("default", options.scale)
        warm_up(options, source)
        rows = []
        try:
            for n in counts:
                say(f"scale: {n} stream(s) in this process")
                local = _in_process(n, params, packets, options, source, tmp)
                say(f"scale: {n} stream(s) in Ray actors")
                remote = _on_ray(n, params, packets, options, cluster, tmp)
                rows.append({"streams": n, "in_process": local, "ray": remote,
                             "ray_over_in_process_fps": _ratio(remote, local)})
            cpus = cluster.ray.cluster_resources().get("CPU")
        finally:
            cluster.close()
        machine_cpus = int(cpus or os.cpu_count() or 2)

        def run(n: int, on, tag: str) -> dict:
            return _on_ray(n, params, packets, options, on, tmp, tag=tag)

        if sr_workers:
            # The same streams with SR in shared SR worker actors under the global budget
            # (serve --ray --ray-sr-workers): the workers take one CPU each beside the streams'
            # (logical CPUs: this machine's cores are shared by all of them).
            say(f"scale: start a local Ray cluster with {sr_workers} SR worker(s)")
            with_sr = RayCluster("local", num_cpus=machine_cpus + sr_workers,
                                 sr_workers=sr_workers, model="default", options=options)
            try:
                _add_setup(rows, "ray_sr_workers", "sr_workers_over_in_actor_fps", with_sr, run,
                           f"SR in {sr_workers} SR worker(s)", say)
            finally:
                with_sr.close()
        if extra_node:
            say("scale: start a Ray head and one more node process on this machine")
            nodes = _two_node_cluster(machine_cpus)
            try:
                two = RayCluster(nodes.address)
                try:
                    _add_setup(rows, "ray_two_nodes", "two_nodes_over_one_node_fps", two, run,
                               "over two node processes", say)
                finally:
                    two.close()
            finally:
                nodes.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"lr_size": [width, height], "hr_size": [2 * width, 2 * height], "frames_per_stream": frames,
            "input_fps": FPS, "model": "default", "budget": options.budget_fraction, "ray_cpus": cpus,
            "extra_node": extra_node, "sr_workers": sr_workers,
            "by_streams": rows,
            "note": "throughput mode (every frame rebuilt, none dropped), start-up excluded; both set-ups "
                    "measured back to back on the same packets on this machine"}
