"""``/metrics`` of ``anchorsr serve`` in the Prometheus text exposition format (version 0.0.4).

Rendered from the server's ``/status`` figures, so both endpoints always agree. Every stream
session is one label set: ``stream`` (the listener's name) and ``session`` (its folder, NAME-N).
Counters of finished sessions stay exported until the session's folder is removed (retention),
so a scrape never sees a counter go backwards while its labels exist.
"""

from __future__ import annotations

import os
import resource
import time

_START = time.time()

# (status key, metric name, type, help); a value of None is left out
_STREAM_FIGURES = [
    ("running", "anchorsr_stream_running", "gauge", "1 while the publisher is connected and frames flow"),
    ("fps", "anchorsr_stream_fps", "gauge", "output frames per second since the first output frame"),
    ("frames_in", "anchorsr_stream_frames_in_total", "counter", "frames decoded from the publisher"),
    ("frames_out", "anchorsr_stream_frames_out_total", "counter", "enhanced frames written to HLS"),
    ("dropped", "anchorsr_stream_dropped_frames_total", "counter",
     "frames dropped (input queue full or too late to rebuild)"),
    ("late", "anchorsr_stream_late_frames_total", "counter", "frames written after their deadline"),
    ("sr_late_frames", "anchorsr_stream_sr_late_frames_total", "counter",
     "frames rebuilt by reuse alone because their SR patches missed the deadline"),
    ("corrupt_packets", "anchorsr_stream_corrupt_packets_total", "counter", "corrupt input packets skipped"),
    ("missing_frames", "anchorsr_stream_missing_frames_total", "counter", "input frames lost before decoding"),
    ("repeated_frames", "anchorsr_stream_repeated_frames_total", "counter",
     "frames encoded again where dropped frames left a gap (a segment's key frame, or to fill a nearly empty segment)"),
    ("light_frames", "anchorsr_stream_light_frames_total", "counter",
     "frames rebuilt with the light reconstruction (the box model of the LR) under overload"),
    ("idle_flushes", "anchorsr_stream_idle_flushes_total", "counter",
     "chunks planned early because the input paused"),
    ("sr_share", "anchorsr_stream_sr_share", "gauge", "share of LR pixels that went through SR"),
    ("budget_fraction", "anchorsr_stream_sr_budget", "gauge", "current SR budget (share of LR pixels)"),
    ("restarts", "anchorsr_stream_restarts_total", "counter",
     "restarts of the stream's pipeline (a resolution change, or serve --ray's actor lost with its node)"),
]


def _escape(value: str) -> str:
    return str(value).replace("\\", r"\\").replace("\"", r"\"").replace("\n", r"\n")


def _labels(**labels) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}" if labels else ""


def _number(value) -> str:
    return repr(float(value)) if not isinstance(value, bool) else ("1.0" if value else "0.0")


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, text: str, samples: list[tuple[dict, object]], suffix: str = "") -> None:
        samples = [(labels, v) for labels, v in samples if v is not None]
        if not samples:
            return
        base = name[:-len("_total")] if kind == "counter" and name.endswith("_total") else name
        self.lines += [f"# HELP {base} {text}", f"# TYPE {base} {kind}"]
        self.lines += [f"{name}{suffix}{_labels(**labels)} {_number(v)}" for labels, v in samples]


def process_figures() -> dict:
    """CPU seconds (user + system) and resident memory of this process."""
    t = os.times()
    rss = None
    try:
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # peak, where /proc is missing
    return {"cpu_seconds": t.user + t.system, "resident_memory_bytes": rss,
            "max_resident_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def render_metrics(status: dict) -> str:
    w = _Writer()
    streams = status.get("streams", [])

    def per_stream(key):
        return [({"stream": s.get("stream", s["name"]), "session": s["name"]}, key(s)) for s in streams]

    for key, name, kind, text in _STREAM_FIGURES:
        w.family(name, kind, text, per_stream(lambda s, key=key: s.get(key)))
    w.family("anchorsr_stream_latency_seconds", "gauge",
             "added latency (input arrival to HLS write) over the last frames, by quantile",
             [({"stream": s.get("stream", s["name"]), "session": s["name"], "quantile": label},
               None if s["latency_ms"][q] is None else s["latency_ms"][q] / 1e3)
              for s in streams for q, label in (("median", "0.5"), ("p95", "0.95"))])
    w.family("anchorsr_stream_latency_target_seconds", "gauge", "added-latency target (frame deadline)",
             per_stream(lambda s: s["latency_target_ms"] / 1e3))
    w.family("anchorsr_stream_queue_depth", "gauge", "frames waiting in each stage queue",
             [({"stream": s.get("stream", s["name"]), "session": s["name"], "queue": q}, n)
              for s in streams for q, n in s["queues"].items()])
    w.family("anchorsr_active_streams", "gauge", "streams with a connected publisher",
             [({}, status.get("active_streams", 0))])
    w.family("anchorsr_sr_budget_in_use", "gauge", "sum of the SR budgets of the active streams",
             [({}, status.get("sr_budget_in_use", 0.0))])
    pool = status.get("sr_pool") or {}
    w.family("anchorsr_sr_pool_workers", "gauge", "SR worker threads", [({}, pool.get("workers"))])
    w.family("anchorsr_sr_pool_queued_jobs", "gauge", "SR jobs waiting for a worker", [({}, pool.get("queued_jobs"))])
    w.family("anchorsr_sr_pool_patches_total", "counter", "anchor patches super-resolved",
             [({}, pool.get("patches_done"))])
    w.family("anchorsr_sr_pool_skipped_jobs_total", "counter", "SR jobs skipped because their deadline had passed",
             [({}, pool.get("jobs_skipped_late"))])
    w.family("anchorsr_sr_pool_busy_seconds_total", "counter", "seconds SR workers spent running the network",
             [({}, pool.get("busy_s"))])
    proc = process_figures()
    w.family("process_cpu_seconds_total", "counter", "user and system CPU time spent in seconds",
             [({}, proc["cpu_seconds"])])
    w.family("process_resident_memory_bytes", "gauge", "resident memory size in bytes",
             [({}, proc["resident_memory_bytes"])])
    w.family("process_max_resident_memory_bytes", "gauge", "peak resident memory size in bytes",
             [({}, proc["max_resident_memory_bytes"])])
    w.family("process_start_time_seconds", "gauge", "start time of the process since the epoch in seconds",
             [({}, _START)])
    return "\n".join(w.lines) + "\n"
