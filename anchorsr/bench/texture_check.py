"""Does the texture term rank patches like the real error of plain upsampling?

Question: the node bias ``b_t[p]`` (docs/method.md §2) stands in for "how much error plain
upsampling leaves in patch p". On clips filmed from real photographs, how well do the exact
``b_t`` and its sampled estimate (``frame_texture(..., sample=s)``) rank patches like the
true per-patch squared error of bicubic upsampling against the HR ground truth?

Method: a camera pans over a real photograph (``anchorsr.bench.scenes``) at HR; the frames are
downscaled 2x, encoded (libx264 live profile, crf 23, a key frame every ``keyint`` frames) and
decoded with motion vectors. On key frames, where ``b_t`` is defined on the decoded picture
itself, each patch's true error is the sum over Y, U, V of (bicubic x2 of the decoded LR -
HR)^2 over the patch's HR pixels. Metrics: Spearman rank correlation per key frame between
each estimator and that error (mean over frames), and between the sampled and the exact
``b_t`` on every frame (P frames included: there ``b_t`` measures the residual).

Command: ``PYTHONPATH=. python -m anchorsr.bench.texture_check`` (also part of
``anchorsr bench schedule --json``).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from ..graph import frame_texture
from ..types import PatchGrid

SCALE = 2


def true_patch_error(frame, hr, grid: PatchGrid) -> np.ndarray:
    """float64 (N,): per-patch sum over Y, U, V of (bicubic x2 of frame - HR ground truth)^2."""
    from ..reuse import upscale_bicubic

    up = upscale_bicubic(frame.y, frame.u, frame.v, SCALE)
    out = np.zeros(grid.n_patches)
    for plane_up, plane_hr, sub in zip(up, hr, (1, 2, 2)):
        h, w = plane_up.shape
        err = (plane_up.astype(np.float64) - plane_hr[:h, :w]) ** 2
        # HR pixel (y, x) lies in LR luma pixel (y * sub // SCALE, x * sub // SCALE)
        rows = (np.arange(h) * sub // SCALE) // grid.patch_px
        cols = (np.arange(w) * sub // SCALE) // grid.patch_px
        idx = rows[:, None] * grid.cols + cols[None, :]
        out += np.bincount(idx.ravel(), weights=err.ravel(), minlength=grid.n_patches)
    return out


def clip_frames(photo_name: str, width: int, height: int, n_frames: int, keyint: int):
    """(decoded LR CodedFrames, HR ground-truth planes) of a pan over a real photo."""
    from ..stream import EncodeSettings, open_frames, write_clip
    from .scenes import CameraPath, downscale, hr_planes_for_lr, photo, render_pan

    hr = list(render_pan(photo(photo_name), SCALE * width, SCALE * height, n_frames,
                         CameraPath(1.3, 0.7)))
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "pan.mp4"
        write_clip(clip, downscale(iter(hr), SCALE), EncodeSettings(crf=23, keyint=keyint))
        frames = list(open_frames(clip))
    lr_frames = frames[:n_frames]
    return lr_frames, [hr_planes_for_lr(*p, SCALE) for p in hr[:len(lr_frames)]]


def ranking(frames, hr, grid: PatchGrid, samples) -> dict:
    """Spearman correlations of each estimator (sample sizes) with the true error and b_t."""
    versus_truth = {s: [] for s in samples}
    versus_exact = {s: [] for s in samples if s != 1}
    prev = None
    for frame, planes in zip(frames, hr):
        exact = frame_texture(frame, prev, grid)
        truth = true_patch_error(frame, planes, grid) if frame.is_key else None
        for s in samples:
            est = exact if s == 1 else frame_texture(frame, prev, grid, sample=s)
            if s != 1:
                versus_exact[s].append(spearmanr(est, exact)[0])
            if truth is not None:
                versus_truth[s].append(spearmanr(est, truth)[0])
        prev = frame
    return {"spearman_vs_true_error": {str(s): float(np.mean(v)) for s, v in versus_truth.items()},
            "spearman_vs_exact_bias": {str(s): float(np.mean(v)) for s, v in versus_exact.items()},
            "key_frames": len(versus_truth[samples[0]]), "frames": len(frames)}


CLIPS = (("astronaut", 256, 256), ("coffee", 288, 192), ("rocket", 320, 208), ("retina", 704, 704),
         ("hubble_deep_field", 480, 432))


def run_texture_check(patch_sizes=(32, 64), samples=(1, 2, 4), n_frames: int = 8,
                      keyint: int = 4, clips: int | None = None) -> dict:
    """Spearman correlations per photo clip and patch size, and their means over clips
    (the first ``clips`` of CLIPS; all when None)."""
    rows = []
    for name, width, height in CLIPS[:clips]:
        frames, hr = clip_frames(name, width, height, n_frames, keyint)
        for patch_px in patch_sizes:
            grid = PatchGrid(patch_px, height, width)
            rows.append({"photo": name, "lr": f"{width}x{height}", "patch_px": patch_px,
                         "patches": grid.n_patches, **ranking(frames, hr, grid, samples)})
    means = {}
    for patch_px in patch_sizes:
        sel = [r for r in rows if r["patch_px"] == patch_px]
        means[str(patch_px)] = {
            key: {s: float(np.mean([r[key][s] for r in sel])) for s in sel[0][key]}
            for key in ("spearman_vs_true_error", "spearman_vs_exact_bias")}
    return {"clips": rows, "mean_over_clips": means}


if __name__ == "__main__":
    json.dump(run_texture_check(), sys.stdout, indent=1)
    sys.stdout.write("\n")
