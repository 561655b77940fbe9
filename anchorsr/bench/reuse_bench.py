"""`anchorsr bench reuse`: reuse reconstruction speed at 2160p, drift, and memory.

Question: can reuse rebuild 2160p frames from a 1080p live stream in real time, at a small
multiple of FFmpeg's own bicubic upscale, without drifting below per-frame bicubic?
Variables: loop (closed/open), seam feathering (on/off), the closed loop's model of the LR
(antialiased bicubic with two back-projection passes, the default; box, the model before); scale 2. Metrics: reuse_fps (higher
is better),
time_ratio_vs_bicubic = reuse time / bicubic time on the same frames (lower is better; wall
time, reuse on all cores, swscale on one), cpu_ratio_vs_bicubic = the same in CPU seconds,
anchor_blend_time_ratio_vs_replace = reuse with 5% of the pixels anchored on every frame, the anchors
blended with reuse (the default anchor weight) / the same with the anchors pasted (weight 1),
reuse_minus_bicubic_db (PSNR-Y of reuse without anchors minus per-frame bicubic over a
60-frame GOP; higher is better), RSS growth over a long clip (flat is the goal).
Method: the benchmark films its own clips over a real photograph, encodes LR with libx264 in
the live profile, decodes once to memory, then times only the upscaling stage of both
methods, interleaved, medians of per-run times after a warm-up.
Caveats: a shared 2-core machine; compare the ratio, not absolute times.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from typing import Callable

import numpy as np

from ..envinfo import environment
from ..metrics import clip_psnr, mse, psnr_from_mse
from ..reuse import Reconstructor, ReuseConfig, upscale_bicubic
from ..reuse.reconstruct import ANCHOR_WEIGHTS
from ..stream import EncodeSettings, open_frames, write_clip, yuv_to_frame
from ..types import PatchGrid
from .scenes import CameraPath, downscale, hr_planes_for_lr, photo, render_pan


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _speed(tmp: str, n_frames: int, repeats: int, say: Callable[[str], None]) -> dict:
    say(f"speed: filming and encoding a 1080p clip ({n_frames} frames)")
    w, h = 1920, 1080
    # speed needs realistic motion, not ground truth: film the 1080p LR directly
    lr = render_pan(photo("astronaut"), w, h, n_frames, CameraPath(0.45, 0.2, 1.001), magnify=4.0, order=1)
    path = os.path.join(tmp, "speed_1080p.mp4")
    write_clip(path, lr, EncodeSettings(crf=23, keyint=60))
    frames = list(open_frames(path))
    sws_in = [yuv_to_frame(f.y, f.u, f.v) for f in frames]

    # anchors: every 20th 64 px patch of the grid (5% of the pixels) on every frame, pasted by
    # replacement (anchor weight 1) or blended with reuse (the default weight); stand-in patches
    grid = PatchGrid(64, h, w)
    boxes = grid.boxes()[::20]
    patches = [tuple(np.full(((b[1] - b[0]) * 2 // d, (b[3] - b[2]) * 2 // d), 128, np.uint8) for d in (1, 2, 2))
               for b in boxes]

    def run_reuse(feather: bool = True, down: str = "bicubic", anchor_weight: float | None = None
                  ) -> tuple[float, float]:  # anchor_weight None: no anchors
        rec = Reconstructor(ReuseConfig(2, feather_seams=feather, down_filter=down,
                                        anchor_weight=1.0 if anchor_weight is None else anchor_weight))
        t, c = time.perf_counter(), time.process_time()
        for f in frames:
            if anchor_weight is None:
                rec.step(f)
            else:
                rec.step(f, boxes, patches)
        return time.perf_counter() - t, time.process_time() - c

    def run_bicubic() -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        for fr in sws_in:
            fr.reformat(width=2 * w, height=2 * h, format="yuv420p", interpolation="BICUBIC")
        return time.perf_counter() - t, time.process_time() - c

    run_reuse(), run_reuse(False), run_reuse(down="box"), run_bicubic()  # warm-up: JIT, swscale context
    run_reuse(anchor_weight=1.0), run_reuse(anchor_weight=ANCHOR_WEIGHTS[2])
    reuse_t, bic_t, plain_t, box_t, replace_t, blend_t = [], [], [], [], [], []
    for i in range(repeats):
        say(f"speed: run {i + 1}/{repeats}")
        reuse_t.append(run_reuse())
        bic_t.append(run_bicubic())
        plain_t.append(run_reuse(False))
        box_t.append(run_reuse(down="box"))
        replace_t.append(run_reuse(anchor_weight=1.0))
        blend_t.append(run_reuse(anchor_weight=ANCHOR_WEIGHTS[2]))
    r, b = (statistics.median(t for t, _ in reuse_t), statistics.median(t for t, _ in bic_t))
    p = statistics.median(t for t, _ in plain_t)
    bx = statistics.median(t for t, _ in box_t)
    rp, bl = statistics.median(t for t, _ in replace_t), statistics.median(t for t, _ in blend_t)
    rc, bc = (statistics.median(c for _, c in reuse_t), statistics.median(c for _, c in bic_t))
    n = len(frames)
    return {"lr_size": [w, h], "hr_size": [2 * w, 2 * h], "frames": n, "repeats": repeats,
            "key_frames": sum(f.is_key for f in frames),
            "reuse_fps": round(n / r, 2), "bicubic_fps": round(n / b, 2),
            "reuse_ms_per_frame": round(1000 * r / n, 2),
            "bicubic_ms_per_frame": round(1000 * b / n, 2),
            "time_ratio_vs_bicubic": round(r / b, 3),
            # the seam feathering's share: the same frames without it (ReuseConfig.feather_seams)
            "no_feather_fps": round(n / p, 2),
            "no_feather_time_ratio_vs_bicubic": round(p / b, 3),
            # the bicubic LR model's share: the same frames with the box model (one pass, in the band loop)
            "box_down_fps": round(n / bx, 2),
            "box_down_time_ratio_vs_bicubic": round(bx / b, 3),
            # 5% of the pixels anchored on every frame: pasted (anchor weight 1) and blended with
            # reuse (ReuseConfig.anchor_weight); the blend's cost is the difference
            "anchors_replaced_ms_per_frame": round(1000 * rp / n, 2),
            "anchors_blended_ms_per_frame": round(1000 * bl / n, 2),
            "anchor_blend_time_ratio_vs_replace": round(bl / rp, 3),
            # CPU seconds (all threads) per frame: robust to other load on a shared machine
            "reuse_cpu_ms_per_frame": round(1000 * rc / n, 2),
            "bicubic_cpu_ms_per_frame": round(1000 * bc / n, 2),
            "cpu_ratio_vs_bicubic": round(rc / bc, 3)}


def _drift(tmp: str, n_frames: int, say: Callable[[str], None]) -> dict:
    say(f"drift: filming a {n_frames}-frame GOP with sub-pixel motion over a real photo")
    hr = list(render_pan(photo("astronaut"), 448, 320, n_frames, CameraPath(0.61, 0.37)))
    path = os.path.join(tmp, "drift.mp4")
    write_clip(path, downscale(iter(hr), 2), EncodeSettings(crf=18, keyint=n_frames))
    frames = list(open_frames(path))
    out: dict = {"frames": len(frames), "scale": 2, "clip": "astronaut photo, pan (0.61, 0.37) px/frame"}
    # Clip figures by the mean-MSE rule (anchorsr.metrics.clip_psnr); last-frame figures per frame.
    bic = [mse(upscale_bicubic(f.y, f.u, f.v, 2)[0], hr_planes_for_lr(*hr[f.index], 2)[0]) for f in frames]
    out["bicubic_psnr_y_db"] = round(clip_psnr(bic), 3)
    for loop, feather, down in (("closed", True, "bicubic"), ("open", True, "bicubic"), ("closed", False, "bicubic"),
                                ("closed", True, "box")):
        rec = Reconstructor(ReuseConfig(2, loop, feather_seams=feather, down_filter=down))
        ms = [mse(rec.step(f).y, hr_planes_for_lr(*hr[f.index], 2)[0]) for f in frames]
        last, last_bic = psnr_from_mse(ms[-1]), psnr_from_mse(bic[-1])
        out[loop + ("" if feather else "_no_feather") + ("" if down == "bicubic" else "_box_down")] = {
            "psnr_y_db": round(clip_psnr(ms), 3), "last_frame_psnr_y_db": round(last, 3),
            "reuse_minus_bicubic_db": round(clip_psnr(ms) - clip_psnr(bic), 3),
            "last_frame_minus_bicubic_db": round(last - last_bic, 3)}
    return out


def _memory(tmp: str, n_frames: int, say: Callable[[str], None]) -> dict:
    say(f"memory: streaming {n_frames} frames through the reconstruction")
    rng = np.random.default_rng(1)
    tex = rng.integers(0, 256, (360 + n_frames, 640 + 2 * n_frames), np.uint8)
    clip = ((tex[i:i + 360, 2 * i:2 * i + 640],) * 1 for i in range(n_frames))
    path = os.path.join(tmp, "long.mp4")
    write_clip(path, ((y, np.full((180, 320), 128, np.uint8), np.full((180, 320), 128, np.uint8))
                      for (y,) in clip), EncodeSettings(crf=30, keyint=60))
    rec = Reconstructor(ReuseConfig(2))
    samples = {}
    for f in open_frames(path):
        rec.step(f)
        if f.index in (n_frames // 4, n_frames - 1):
            samples[f.index] = _rss_mb()
    a, b = samples[n_frames // 4], samples[n_frames - 1]
    return {"frames": n_frames, "rss_mb_at_quarter": round(a, 1), "rss_mb_at_end": round(b, 1),
            "rss_growth_mb": round(b - a, 1)}


def run_reuse_bench(quick: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="anchorsr-bench-") as tmp:
        result = {"benchmark": "reuse", "environment": environment(), "quick": quick}
        result["speed"] = _speed(tmp, 12 if quick else 40, 2 if quick else 5, say)
        result["drift"] = _drift(tmp, 20 if quick else 60, say)
        result["memory"] = _memory(tmp, 60 if quick else 400, say)
    s = result["speed"]
    result.update({k: s[k] for k in ("reuse_fps", "bicubic_fps", "time_ratio_vs_bicubic", "cpu_ratio_vs_bicubic",
                                     "no_feather_time_ratio_vs_bicubic", "box_down_time_ratio_vs_bicubic",
                                     "anchor_blend_time_ratio_vs_replace")})
    result["reuse_minus_bicubic_db"] = {loop: result["drift"][loop]["reuse_minus_bicubic_db"]
                                        for loop in ("closed", "open", "closed_no_feather", "closed_box_down")}
    result["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result
