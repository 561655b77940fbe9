"""`anchorsr bench live`: end-to-end live enhancement at real-time pace.

Question: does the live pipeline (decode -> schedule -> SR -> reconstruct -> encode) keep up
with a 720p (-> 1440p) and a 1080p (-> 2160p) stream at 5% SR budget on this machine, and at
what added latency?
Variables: input size (720p, 1080p); fixed: x2, dag-greedy, the shipped SR network, 60-frame
chunks, HLS output (x264 ``ultrafast``), one SR worker thread with one network thread; the SR
engine (``--sr-engine``, default auto).
Metrics: sustained output fps (higher is better; real time = the input's 30 fps), frames
dropped (the live input queue overflowed) and late (output after the deadline), frames rebuilt
without their SR patches because SR missed the deadline, the SR share actually used (the
deadline controller lowers it under load), added latency from decode to encoded output
(median, p95; lower is better), CPU use (process CPU time / wall time, in cores) and CPU time
per output frame against the real-time allowance (cores / fps).
Method: the benchmark films its own clip over a real photograph, encodes it as an H.264
MPEG-TS in the live profile, and a pusher thread sends its packets over loopback TCP, each at
its real-time instant (the clip is looped to reach the duration). The pipeline listens like
``anchorsr serve`` does. Output fps is measured over the whole stream after the first frame.
Caveats: a shared 2-core machine, and the pusher shares the process (remuxing only, a small
cost); the real-time ratio (output fps / input fps) is the figure to compare.
"""

from __future__ import annotations

import os
import resource
import socket
import tempfile
import threading
import time
from typing import Callable

import av

from ..envinfo import environment
from ..pipeline import LivePipeline, PipelineOptions, SRPool, make_patch_source, warm_up
from ..stream import EncodeSettings, VideoSource, hls_sink, write_clip
from .scenes import CameraPath, photo, render_pan

FPS = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_clip(tmp: str, width: int, height: int, n_frames: int, bitrate_bps: int) -> str:
    path = os.path.join(tmp, f"live_{height}p.ts")
    frames = render_pan(photo("astronaut"), width, height, n_frames, CameraPath(0.45, 0.2, 1.0005),
                        magnify=max(width / 512, 1.0), order=1)
    write_clip(path, frames, EncodeSettings(fps=FPS, keyint=60, bitrate_bps=bitrate_bps, crf=None))
    return path


def push(clip: str, url: str, duration_s: float, stop: threading.Event, connect_timeout_s: float = 20.0) -> int:
    """Send ``clip``'s packets to ``url`` (MPEG-TS), each at its real-time instant, looping the
    clip until ``duration_s``; returns the number of frames sent."""
    with av.open(clip) as src:
        template = src.streams.video[0]
        packets = [p for p in src.demux(template) if p.size]
        rate = template.average_rate
        time_base = template.time_base
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                out = av.open(url, "w", format="mpegts")
                break
            except (av.error.ConnectionRefusedError, OSError):
                if time.monotonic() > deadline or stop.is_set():
                    raise
                time.sleep(0.05)
        stream = out.add_stream_from_template(template)
        ticks = int(round(1 / (rate * time_base)))
        sent, t0 = 0, time.monotonic()
        try:
            while sent < duration_s * FPS and not stop.is_set():
                for pkt in packets:
                    if sent >= duration_s * FPS or stop.is_set():
                        break
                    time.sleep(max(0.0, t0 + sent / FPS - time.monotonic()))
                    pkt.stream = stream
                    pkt.pts = pkt.dts = sent * ticks
                    out.mux(pkt)
                    sent += 1
        finally:
            out.close()
    return sent


def run_one(clip: str, label: str, duration_s: float, model: str, budget: float, tmp: str,
            engine: str = "auto", lr_model: str = "bicubic") -> dict:
    options = PipelineOptions(scale=2, budget_fraction=budget, chunk_frames=60, crf=23.0, realtime=True,
                              sr_engine=engine, lr_model=lr_model)
    source = make_patch_source(model, options.scale, options.device, options.sr_engine, realtime=True)
    warm_up(options, source)
    pool = SRPool(source, workers=1, sr_threads=1)
    port = _free_port()
    stop = threading.Event()
    sent = {}
    pusher = threading.Thread(target=lambda: sent.setdefault("frames", push(
        clip, f"tcp://127.0.0.1:{port}", duration_s, stop)), daemon=True)
    pusher.start()
    try:
        src = VideoSource(f"tcp://127.0.0.1:{port}?listen=1", timeout_s=(30.0, 5.0))
        folder = os.path.join(tmp, f"hls_{label}")
        pipeline = LivePipeline(src, src.fps, lambda w, h, s: hls_sink(folder, w, h, s, 2.0), pool, options,
                                name=label)
        cpu0, wall0 = _cpu_s(), time.monotonic()
        pipeline.run()
        cpu, wall = _cpu_s() - cpu0, time.monotonic() - wall0
    finally:
        stop.set()
        pusher.join(10)
        pool.close()
    snap = pipeline.snapshot()
    return {"input": label, "sr_engine": getattr(getattr(source, "model", None), "engine", "bicubic"),
            "frames_sent": sent.get("frames"), "frames_out": snap["frames_out"],
            "output_size": snap["output_size"], "sustained_fps": snap["fps"],
            "realtime_ratio": round(snap["fps"] / FPS, 3), "dropped": snap["dropped"], "late": snap["late"],
            "sr_late_frames": snap["sr_late_frames"], "light_frames": snap["light_frames"],
            "corrupt_packets": snap["corrupt_packets"],
            "sr_share_used": snap["sr_share"], "budget_target": budget,
            "budget_min": round(min(pipeline.controller.history, default=budget), 4),
            "added_latency_ms": snap["latency_ms"], "latency_target_ms": snap["latency_target_ms"],
            "cpu_cores_used": round(cpu / wall, 2), "cpu_share_of_machine": round(cpu / wall / os.cpu_count(), 3),
            # CPU time per output frame against what real time allows on all cores: comparable
            # across runs even when other jobs take part of the machine
            "cpu_ms_per_output_frame": round(cpu / max(snap["frames_out"], 1) * 1e3, 1),
            "realtime_cpu_ms_per_frame_allowed": round(os.cpu_count() / FPS * 1e3, 1),
            "sr_pool": pool.stats(), "real_time": snap["dropped"] == 0 and snap["late"] == 0 and snap["fps"] >= FPS * 0.98}


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_live_bench(quick: bool = False, progress: Callable[[str], None] | None = None,
                   model: str = "default", budget: float = 0.05, engine: str = "auto",
                   size_filter: tuple[str, ...] | None = None, lr_model: str = "bicubic") -> dict:
    """size_filter: the inputs to run ("720p", "1080p"; default both; ``quick`` runs 360p only).
    lr_model: the closed loop's model of the LR (``PipelineOptions.lr_model``)."""
    say = progress or (lambda _m: None)
    duration_s, clip_frames = (8.0, 120) if quick else (32.0, 150)  # the clip loops (key frame first)
    sizes = [("360p", 640, 360, 1_000_000)] if quick else [("720p", 1280, 720, 3_000_000),
                                                           ("1080p", 1920, 1080, 4_500_000)]
    if size_filter is not None and not quick:
        sizes = [s for s in sizes if s[0] in size_filter]
    results = []
    with tempfile.TemporaryDirectory(prefix="anchorsr-live-") as tmp:
        for label, w, h, bps in sizes:
            say(f"live: filming and encoding a {label} clip ({clip_frames} frames)")
            clip = _make_clip(tmp, w, h, clip_frames, bps)
            say(f"live: pushing {label} at {FPS} fps for {duration_s:.0f} s")
            results.append(run_one(clip, label, duration_s, model, budget, tmp, engine, lr_model))
            say(f"live: {label}: {results[-1]['sustained_fps']} fps, {results[-1]['dropped']} dropped, "
                f"{results[-1]['late']} late")
    return {"benchmark": "live", "question": "real-time live enhancement at 5% budget (x2)",
            "input_fps": FPS, "duration_s": duration_s, "scale": 2, "scheduler": "dag-greedy",
            "model": model, "sr_engine": engine, "lr_model": lr_model, "chunk_frames": 60, "output": "HLS, libx264 ultrafast, CRF 23",
            "threads": {"sr_workers": 1, "sr_threads": 1, "numba": "default (all cores)"},
            "results": results, "environment": environment(quick=quick)}
