"""Quality metrics and the derived figures of the quality benchmark (docs/quality-benchmark.md, "Derived figures").

* per-frame MSE over Y, U and V combined (the published protocol: one MSE over every sample of the
  three planes) and on Y alone, from ``anchorsr.metrics``; a clip's PSNR is that of its mean MSE
  (``anchorsr.metrics.clip_psnr``); SSIM on Y; VMAF through FFmpeg's ``libvmaf`` filter (the
  ``imageio-ffmpeg`` binary), reported unavailable when the filter is missing.
* quality gain kept, anchor-size saving at equal quality, Spearman rank correlation.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from typing import Iterable, Sequence

import numpy as np

from ..metrics import sse

log = logging.getLogger(__name__)


def frame_mse(planes: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> tuple[float, float]:
    """(MSE over Y, U, V combined, MSE over Y) of one frame (``anchorsr.metrics``). A clip's PSNR is
    ``clip_psnr`` of its frames' MSEs (the mean-MSE rule), never a mean of per-frame PSNRs."""
    errs = [sse(a, b) for a, b in zip(planes, reference)]
    total, count = sum(e for e, _ in errs), sum(n for _, n in errs)
    return total / count, errs[0][0] / errs[0][1]


def ssim_y(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two luma planes (Gaussian window, sigma 1.5, as Wang et al. 2004)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(np.asarray(a), np.asarray(b), data_range=255, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False))


def gain_kept(q: float, q_base: float, q_all: float) -> float:
    """Share of per-frame SR's quality gain over a baseline (per-frame bicubic, or bilinear as in
    the paper) that a method keeps: (Q(method) - Q(base)) / (Q(all-frame SR) - Q(base)); NaN when
    SR gains nothing over the baseline."""
    gain = q_all - q_base
    return float("nan") if gain <= 1e-9 else (q - q_base) / gain


def budget_at_quality(budgets: Sequence[float], qualities: Sequence[float], target: float) -> float | None:
    """The budget at which a quality-vs-budget curve first reaches ``target`` (linear
    interpolation between measured points, sorted by budget); None when it never does."""
    order = np.argsort(budgets, kind="stable")
    b = np.asarray(budgets, np.float64)[order]
    q = np.asarray(qualities, np.float64)[order]
    if q.size == 0:
        return None
    if q[0] >= target:
        return float(b[0])
    for i in range(1, q.size):
        if q[i] >= target:
            lo, hi = q[i - 1], q[i]
            w = (target - lo) / (hi - lo) if hi > lo else 1.0
            return float(b[i - 1] + w * (b[i] - b[i - 1]))
    return None


def anchor_saving(ours: tuple[Sequence[float], Sequence[float]],
                  theirs: tuple[Sequence[float], Sequence[float]], floor: float | None = None) -> list[dict]:
    """Anchor-size saving at equal quality, at each of ``theirs``' measured points.

    ours, theirs: (budgets, qualities) curves. For each of their points (b, q) with b > 0, our
    budget b' for the same q is interpolated on our curve; saving = 1 - b'/b. Where our curve
    never reaches q the saving is None (not extrapolated). floor: the quality with no anchors;
    their points at or below it bought nothing to match and are left out.
    """
    out = []
    for b, q in zip(*theirs):
        if b <= 0 or (floor is not None and q <= floor):
            continue
        ob = budget_at_quality(ours[0], ours[1], q)
        out.append({"their_budget": float(b), "quality": float(q), "our_budget": ob,
                    "saving": None if ob is None else 1.0 - ob / b})
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN for fewer than 3 points or a
    constant input."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def mean_finite(values: Iterable[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else None


# --- VMAF ------------------------------------------------------------------------------------------

def ffmpeg_exe() -> str | None:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return None


_VMAF_OK: dict[str, bool] = {}


def vmaf_available() -> bool:
    """Whether the imageio-ffmpeg binary has a working libvmaf filter with a built-in model."""
    exe = ffmpeg_exe()
    if exe is None:
        return False
    if exe not in _VMAF_OK:
        y = np.full((64, 64), 128, np.uint8)
        c = np.full((32, 32), 128, np.uint8)
        _VMAF_OK[exe] = vmaf([(y, c, c)], [(y, c, c)]) is not None
    return _VMAF_OK[exe]


def vmaf(distorted: Sequence[Sequence[np.ndarray]], reference: Sequence[Sequence[np.ndarray]]) -> float | None:
    """Mean VMAF (model vmaf_v0.6.1) of yuv420p frame lists; None when libvmaf is unavailable."""
    exe = ffmpeg_exe()
    if exe is None or not distorted:
        return None
    h, w = np.asarray(reference[0][0]).shape
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, frames in (("dist", distorted), ("ref", reference)):
            p = os.path.join(tmp, f"{name}.yuv")
            with open(p, "wb") as fh:
                for y, u, v in frames:
                    for plane, (ph, pw) in zip((y, u, v), ((h, w), (h // 2, w // 2), (h // 2, w // 2))):
                        fh.write(np.ascontiguousarray(np.asarray(plane)[:ph, :pw]).tobytes())
            paths.append(p)
        log_path = os.path.join(tmp, "vmaf.json")
        raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}", "-r", "25"]
        cmd = [exe, "-hide_banner", "-loglevel", "error", *raw, "-i", paths[0], *raw, "-i", paths[1],
               "-lavfi", f"[0:v][1:v]libvmaf=log_fmt=json:log_path={log_path}:n_threads=2", "-f", "null", "-"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("VMAF unavailable: %s", exc)
            return None
        if proc.returncode != 0 or not os.path.exists(log_path):
            log.warning("VMAF unavailable: %s", proc.stderr.strip()[-300:])
            return None
        with open(log_path) as fh:
            data = json.load(fh)
    try:
        return float(data["pooled_metrics"]["vmaf"]["mean"])
    except KeyError:
        return None
