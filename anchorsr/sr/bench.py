"""SR benchmark: quality, speed and seams of the default x2 network (``anchorsr bench sr``).

Question: is the shipped x2 network good enough on real content, fast enough per anchor
patch on a CPU, and seamless when its patches are pasted into a frame?

Variables: the shipped x2 RepSR model; the engine (numpy / torch, ``--sr-engine``), precision
(fp32 / bf16 autocast) and memory format (contiguous / channels-last) for speed; H.264 CRF of
the LR for quality.

Metrics (direction):
* ``quality``: PSNR-Y (dB, higher better) of SR and of bicubic on the held-out photos
  (``data.EVAL_PHOTOS``, never trained on), clean LR and H.264 CRF 23 LR; the gain in dB.
* ``speed``: 64x64-LR-patch throughput (patches/s, higher better) with the default halo (the
  network's receptive radius: 4 px, 72x72 network input), network only and through
  ``SRPatchSource`` (crop, batch, chroma, uint8); 1080p LR frame time (ms, lower better) at x2
  (to 2160p): luma as one whole-plane run, and the full YUV frame as all of its 64 px patches
  through ``SRPatchSource``.
  ``engines``: the same patch throughput of the numpy and the torch engine with one network
  thread (what a live SR worker uses) and with all cores (a file's ``enhance``), measured in
  interleaved turns in this one process so that the ratio holds on a busy machine.
* ``seams``: a frame assembled from haloed 64 px patches vs the same network on the whole
  frame: PSNR of each to the ground truth (difference should be <= 0.05 dB) and PSNR between
  the two (higher better; inf = identical).
* ``fine_tune``: a camera pan over a held-out photo, H.264-coded; fine-tune on the first
  frames, PSNR-Y gain on later frames (dB, higher better).

Caveats: the CPU is shared (other processes skew timings; the best of several runs is
reported); held-out photos are few; the pan clip is synthetic motion over a real photo.

Command: ``anchorsr bench sr --json`` (or ``python -m anchorsr.sr.bench --threads 2``); the last
result, with its environment, is kept in ``anchorsr/sr/bench_result.json``.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from ..errors import ConfigError
from . import data
from .contract import PLAIN_ARCH, SRModel, open_model, read_contract
from .model import load_model
from .patches import SRPatchSource, cpu_has_bf16, upscale_frame
from .train import evaluate, fine_tune
from ..envinfo import environment
from ..types import CodedFrame, MotionField, PatchGrid

log = logging.getLogger(__name__)
PATCH_PX = 64


def _best_rate(fn, items: int, seconds: float) -> float:
    """Best items/s over repeated calls of ``fn`` within ``seconds`` (after one warm-up)."""
    fn()
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        fn()
        best = max(best, items / (time.perf_counter() - t))
    return best


def _frame(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> CodedFrame:
    return CodedFrame(0, 0, 0.0, "I", 0, y, u, v, MotionField.all_intra(*y.shape))


def _patch_frame() -> tuple[CodedFrame, np.ndarray]:
    """A random 512x512 LR frame and its 64 px patch boxes (the throughput workload)."""
    lr = np.random.default_rng(0).integers(16, 236, (8 * PATCH_PX, 8 * PATCH_PX), dtype=np.uint8)
    return _frame(lr, lr[::2, ::2].copy(), lr[1::2, 1::2].copy()), PatchGrid(PATCH_PX, *lr.shape).boxes()


def _network_rates(model_path: str | None, device: str, quick: bool) -> dict:
    """Network-only patches/s (64 patches of 64 px grown by the default halo): torch fp32/bf16
    x contiguous/channels-last, and the numpy engine (repsr-plain on the CPU) with one thread and with all cores."""
    import os

    secs = 1.0 if quick else 3.0
    n = 64
    net = load_model(2, model_path, device=device).net
    side = PATCH_PX + 2 * int(net.receptive_radius)  # SRPatchSource's default halo
    x = torch.rand(n, 1, side, side)
    rates = {}
    for precision in ("fp32", "bf16"):
        for cl in (False, True):
            net.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
            xx = (x.contiguous(memory_format=torch.channels_last) if cl else x).to(device)
            with torch.inference_mode(), torch.autocast(xx.device.type, torch.bfloat16, enabled=precision == "bf16"):
                rate = _best_rate(lambda: net(xx), n, secs)
            rates[f"{precision}{'_channels_last' if cl else ''}"] = round(rate, 1)
    if device == "cpu" and read_contract(2, model_path)[1].get("arch") == PLAIN_ARCH:
        numpy_net = open_model(2, model_path, engine="numpy").net
        xn = x.numpy()
        for threads in sorted({1, os.cpu_count() or 1}):
            numpy_net.threads = threads
            rates[f"numpy_fp32_{threads}_thread{'s' if threads > 1 else ''}"] = round(
                _best_rate(lambda: numpy_net(xn), n, secs), 1)
    return rates


def engine_rates(model_path: str | None, quick: bool) -> dict:
    """Patches/s through ``SRPatchSource`` of each engine, with one network thread and with all
    cores, measured in interleaved turns (a busy machine slows every candidate alike)."""
    import os

    if read_contract(2, model_path)[1].get("arch") != PLAIN_ARCH:
        return {}
    frame, boxes = _patch_frame()
    sources = {e: SRPatchSource(open_model(2, model_path, engine=e)) for e in ("numpy", "torch")}
    torch_threads = torch.get_num_threads()
    configs = [(e, t) for t in sorted({1, os.cpu_count() or 1}) for e in sources]
    best = dict.fromkeys(configs, 0.0)
    try:
        for _ in range(3 if quick else 8):
            for engine, threads in configs:
                src = sources[engine]
                src.set_threads(threads)
                best[(engine, threads)] = max(best[(engine, threads)],
                                              _best_rate(lambda: src(frame, boxes, 2), len(boxes), 0.5))
    finally:
        torch.set_num_threads(torch_threads)
    out: dict = {e: {} for e in sources}
    for (engine, threads), rate in best.items():
        out[engine][f"{threads}_thread{'s' if threads > 1 else ''}"] = round(rate, 1)
    out["numpy_over_torch"] = {k: round(out["numpy"][k] / out["torch"][k], 3) for k in out["numpy"]}
    return out


def speed(model: SRModel, quick: bool, model_path: str | None = None, device: str = "cpu") -> dict:
    secs = 1.0 if quick else 3.0
    net_only = _network_rates(model_path, device, quick)
    source = SRPatchSource(model)  # the deployed configuration ("auto")
    frame, boxes = _patch_frame()
    pipeline = _best_rate(lambda: source(frame, boxes, model.scale), len(boxes), secs)
    y1080 = np.random.default_rng(1).integers(16, 236, (1080, 1920), dtype=np.uint8)
    reps = 2 if quick else 4
    t_best = min(_timed(lambda: source.runner.upscale_y(y1080)) for _ in range(reps))
    f1080 = _frame(y1080, y1080[::2, ::2].copy(), y1080[1::2, 1::2].copy())
    b1080 = PatchGrid(PATCH_PX, 1080, 1920).boxes()
    t_tiled = min(_timed(lambda: source(f1080, b1080, model.scale)) for _ in range(reps))
    return {"patch_px": PATCH_PX, "halo_px": source.halo_px, "batch": 64,
            "network_patches_per_s": net_only, "deployed_engine": model.engine,
            "deployed_precision": source.runner.precision,
            "patch_source_patches_per_s": round(pipeline, 1),
            "frame_1080p_to_2160p_luma_ms": round(1000 * t_best, 1),
            "frame_1080p_to_2160p_all_patches_yuv_ms": round(1000 * t_tiled, 1),
            "engines": engine_rates(model_path, quick) if device == "cpu" else {}}


def _timed(fn) -> float:
    fn()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def eval_photos(quick: bool) -> tuple[str, ...]:
    """The held-out photos, all of them: a benchmark that silently measured fewer photos on a
    machine without Debian's mate-backgrounds would not be comparable with one that had them."""
    missing = [p for p in data.EVAL_PHOTOS if not data.photo_available(p)]
    if missing:
        raise ConfigError(f"expected the {len(data.EVAL_PHOTOS)} held-out evaluation photos, "
                          f"{len(missing)} missing ({', '.join(missing[:3])}...): install Debian's "
                          f"mate-backgrounds (make train-data)")
    return data.EVAL_PHOTOS[:2] if quick else data.EVAL_PHOTOS


def quality(model: SRModel, quick: bool) -> dict:
    """PSNR-Y of the model and of bicubic, clean and H.264 CRF 23 LR, on the held-out photos."""
    photos = eval_photos(quick)
    out = {}
    for label, crf in (("clean", None), ("h264_crf23", 23)):
        pairs = data.make_pairs(photos, model.scale, (crf,))
        out[label] = {"fp32": evaluate(model, pairs, "fp32"), "deployed": evaluate(model, pairs, "auto")}
        out[label]["photos"] = sorted({p.name for p in pairs})
    return out


def seams(model: SRModel) -> dict:
    name = next(p for p in ("file:/usr/share/backgrounds/mate/nature/Storm.jpg", "skimage:coffee")
                if data.photo_available(p))
    img = data.load_photo(name)
    s = model.scale
    step = 4 * s
    img = img[: img.shape[0] // step * step, : img.shape[1] // step * step]
    hr_y, _, _ = data.rgb_to_yuv420(img)
    y, u, v = data.rgb_to_yuv420(data.resize_rgb(img, img.shape[0] // s, img.shape[1] // s))
    source = SRPatchSource(model)
    boxes = PatchGrid(PATCH_PX, *y.shape).boxes()
    asm = np.zeros_like(hr_y)
    for (py, _, _), b in zip(source(_frame(y, u, v), boxes, s), boxes):
        asm[s * b[0]:s * b[1], s * b[2]:s * b[3]] = py
    whole, _, _ = upscale_frame(source.runner, y, u, v)
    p_asm, p_whole = data.psnr(asm, hr_y, s), data.psnr(whole, hr_y, s)
    return {"photo": name, "lr_size": list(y.shape), "precision": source.runner.precision,
            "psnr_assembled_db": round(p_asm, 4), "psnr_whole_frame_db": round(p_whole, 4),
            "difference_db": round(abs(p_asm - p_whole), 4),
            "identical_to_whole_frame": bool(np.array_equal(asm, whole)),
            # None when identical (PSNR is infinite; strict JSON has no Infinity)
            "psnr_assembled_vs_whole_db": None if np.array_equal(asm, whole) else data.psnr(asm, whole),
            "max_abs_diff_levels": int(np.abs(asm.astype(int) - whole).max())}


def fine_tune_gain(model: SRModel, quick: bool) -> dict:
    name = "skimage:motorcycle_left"
    img = data.load_photo(name)
    n_frames, tune_frames = (24, 8) if quick else (48, 16)
    clip = data.panning_clip(img, n_frames, 240, 320, step_px=(3, 7))
    pairs = data.sequence_pairs(clip, model.scale, 23, name=name)
    tune, later = pairs[:tune_frames], pairs[-tune_frames:]
    before = evaluate(model, later)
    res = fine_tune(model, tune, iterations=150 if quick else 1500, time_budget_s=60 if quick else 180)
    after = evaluate(res.model, later)
    return {"clip": f"pan over {name}, {n_frames} frames 320x240 HR, H.264 CRF 23 LR",
            "tune_frames": f"first {tune_frames}", "eval_frames": f"last {tune_frames}",
            "iterations": res.iterations, "seconds": round(res.seconds, 1),
            "psnr_before_db": round(before["psnr_y_db"], 3), "psnr_after_db": round(after["psnr_y_db"], 3),
            "bicubic_db": round(before["bicubic_psnr_y_db"], 3),
            "gain_db": round(after["psnr_y_db"] - before["psnr_y_db"], 3)}


def compare_models(paths: list[str], device: str = "cpu", quick: bool = False, engine: str = "auto") -> dict:
    """Candidate x2 networks side by side: validation and held-out gains (from their contracts,
    measured at the end of training) and patch throughput through ``SRPatchSource``, measured
    in turns in this one process so that the ratios between them hold on a busy machine."""
    models = {str(p): open_model(2, p, device=device, engine=engine) for p in paths}
    frame, boxes = _patch_frame()
    sources = {p: SRPatchSource(m) for p, m in models.items()}
    best = dict.fromkeys(models, 0.0)
    for _ in range(3 if quick else 8):  # interleaved rounds: load changes hit every candidate
        for p, src in sources.items():
            best[p] = max(best[p], _best_rate(lambda: src(frame, boxes, 2), len(boxes), 0.5))
    rows = []
    for p, m in models.items():
        c, measured = m.contract, m.contract.get("measured", {})
        rows.append({"model": p, "channels": c.get("channels"), "body": c.get("body"), "skip": c.get("skip"),
                     "parameters": _parameters(p, device),
                     "iterations": c.get("training", {}).get("iterations_done"),
                     "validation_gain_db": measured.get("validation", {}).get("gain_db"),
                     "clean_gain_db": measured.get("clean", {}).get("gain_db"),
                     "h264_crf23_gain_db": measured.get("h264_crf23", {}).get("gain_db"),
                     "patch_source_patches_per_s": round(best[p], 1)})
    return {"candidates": rows, "device": device, "engines": {p: m.engine for p, m in models.items()},
            "environment": environment(cpu_bf16=cpu_has_bf16())}


def _parameters(path: str, device: str) -> int:
    return sum(t.numel() for t in load_model(2, path, device=device).net.parameters())


def run_sr_bench(quick: bool = False, device: str = "cpu", model_path: str | None = None,
                 engine: str = "auto") -> dict:
    """Run the whole benchmark on the x2 model (the shipped one, or ``model_path``), and the
    quality part on the shipped x3 and x4 models, with the engine ``engine`` (fine-tuning
    trains, so it runs on torch); return a JSON-ready dict."""
    model = open_model(2, model_path, device=device, engine=engine)
    result = {"model": {k: model.contract.get(k) for k in ("arch", "scale", "channels", "body")},
              "device": device, "engine": model.engine, "environment": environment(cpu_bf16=cpu_has_bf16())}
    result["quality"] = quality(model, quick)
    result["quality_other_scales"] = {f"x{s}": quality(open_model(s, device=device, engine=engine), quick)
                                      for s in (3, 4)}
    result["seams"] = seams(model)
    result["speed"] = speed(model, quick, model_path, device)
    torch_model = model if model.engine == "torch" else load_model(2, model_path, device=device)
    result["fine_tune"] = fine_tune_gain(torch_model, quick)
    return result


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description="SR benchmark (default x2 network)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(json.dumps(run_sr_bench(a.quick), indent=2))
