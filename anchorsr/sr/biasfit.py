"""Fitting the node-bias predictor to a weight file's own outputs, and the oracle bias.

The oracle bias of a node (docs/method.md §2.1) runs the network: it is the per-patch sum over
the HR Y, U and V samples of ``(SR_t - R_t)^2``, where ``SR_t`` is the network's output for
frame t and ``R_t`` is what one reuse step (``anchorsr.reuse``) rebuilds for frame t when the
previous HR frame is the network's output ``SR_{t-1}`` (at a key frame, or with no previous
frame: the bicubic upsampling of the LR frame). It is the error that leaving the node
un-anchored adds there, in the DAG's terms; the bench uses it as an evaluation-only upper
bound, and the predictor (``anchorsr.graph.predictor``) is fitted to it.

Fit data: training photos only (``photos.TRAIN_PHOTOS`` that are installed; held-out photos are
refused), each filmed twice as a coded clip in the live profile (``anchorsr.bench.scenes``: a
camera moving over the photo, one clip panning and one also zooming; downscaled by ``scale``,
libx264 ``tune=zerolatency``, one reference, no B-frames, at two CRFs), decoded with its motion
vectors; the network runs on every whole LR frame. Each patch of each frame is one sample
(features, oracle). The coefficients are a non-negative least-squares fit (``fit_coef``).
Figures: leave-photos-out Spearman between the prediction and the oracle, per frame and over
all nodes of a clip (against the texture term on the same nodes), and R^2.

Everything is seeded and single-threaded, so a refit on the same machine gives the same file.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError
from ..graph.predictor import (FEATURES, FORMAT, FORMAT_VERSION, TARGET, BiasPredictor, bias_path,
                               patch_features)
from ..types import CodedFrame, PatchGrid

log = logging.getLogger(__name__)

FIT_PATCH_PX = 32
FIT_FRAMES = 10
FIT_CRFS = (23, 30)
MAX_LR_SIDE = 256
MIN_LR_SIDE = 64


def patch_sse(a: Sequence[np.ndarray], b: Sequence[np.ndarray], grid: PatchGrid, scale: int) -> np.ndarray:
    """float64 (N,): per LR patch, the sum over HR Y, U, V samples of (a - b)^2."""
    out = np.zeros(grid.n_patches)
    for pa, pb, sub in zip(a, b, (1, 2, 2)):
        h, w = pa.shape
        err = (np.asarray(pa, np.float64) - np.asarray(pb, np.float64)[:h, :w]) ** 2
        rows = np.minimum((np.arange(h) * sub // scale) // grid.patch_px, grid.rows - 1)
        cols = np.minimum((np.arange(w) * sub // scale) // grid.patch_px, grid.cols - 1)
        idx = rows[:, None] * grid.cols + cols[None, :]
        out += np.bincount(idx.ravel(), weights=err.ravel(), minlength=grid.n_patches)
    return out


class OracleBias:
    """The oracle node bias as a GraphBuilder ``node_bias``: ``(frame, ref, grid) -> (N,)``.

    sr_planes(index) -> the network's HR (Y, U, V) of LR frame ``index``; config: the reuse
    configuration (scale, loop) the benchmark rebuilds with."""

    def __init__(self, sr_planes: Callable[[int], Sequence[np.ndarray]], config) -> None:
        self.sr_planes, self.config = sr_planes, config

    def __call__(self, frame: CodedFrame, ref: CodedFrame | None, grid: PatchGrid) -> np.ndarray:
        return patch_sse(self.sr_planes(frame.index), self.reuse_step(frame, ref), grid, self.config.scale)

    def reuse_step(self, frame: CodedFrame, ref: CodedFrame | None) -> tuple[np.ndarray, ...]:
        """(Y, U, V) of ``R_t``: one reuse step for ``frame`` from the network's output of ``ref``
        (the bicubic upsampling at a key frame or without a reference)."""
        from ..reuse import Reconstructor

        rec = Reconstructor(self.config)
        if ref is not None and not frame.is_key and ref.y.shape == frame.y.shape:
            rec.step(ref, np.array([[0, ref.height, 0, ref.width]]),
                     [tuple(np.asarray(p) for p in self.sr_planes(ref.index))])
        hr = rec.step(frame)
        return hr.y, hr.u, hr.v


@dataclass(frozen=True)
class FitClip:
    photo: str
    width: int
    height: int
    dx: float
    dy: float
    zoom: float
    crf: int

    def record(self) -> dict:
        return {"photo": self.photo, "lr": f"{self.width}x{self.height}", "camera_px_per_frame": [self.dx, self.dy],
                "zoom_per_frame": self.zoom, "crf": self.crf}


def fit_clips(photos: Sequence[str], scale: int, frames: int = FIT_FRAMES, seed: int = 0,
              max_lr_side: int = MAX_LR_SIDE) -> list[FitClip]:
    """Two clips per installed training photo large enough for a ``MIN_LR_SIDE`` LR frame."""
    from .data import load_photo
    from .photos import held_out, photo_available

    refused = [p for p in photos if held_out(p)]
    if refused:
        raise ConfigError(f"expected training photos only, got held-out evaluation/corpus photos: "
                          f"{', '.join(refused)}")
    rng = np.random.default_rng(seed)
    out = []
    for name in photos:
        if not photo_available(name):
            log.info("photo %s not installed; skipped", name)
            continue
        h, w = load_photo(name).shape[:2]
        lw = min(max_lr_side, int(0.8 * w) // scale) // 16 * 16
        lh = min(max_lr_side * 3 // 4, int(0.8 * h) // scale) // 16 * 16
        if min(lw, lh) < MIN_LR_SIDE:
            log.info("photo %s too small for x%d fit clips; skipped", name, scale)
            continue
        for i, crf in enumerate(FIT_CRFS):
            speed = rng.uniform(0.3, 3.0, size=2) * rng.choice([-1, 1], size=2)
            out.append(FitClip(name, lw, lh, round(float(speed[0]), 3), round(float(speed[1]), 3),
                               1.0 if i == 0 else 1.01, crf))
    if not out:
        raise ConfigError(f"expected at least one installed training photo large enough among {len(photos)} "
                          f"listed, got none (Debian's mate-backgrounds: make install-train-data)")
    return out


def film_clip(clip: FitClip, scale: int, frames: int, order: int = 3) -> tuple[list, list[CodedFrame]]:
    """One fit clip: its HR frames (yuv420p planes, the photo resampled with spline ``order``)
    and the decoded LR frames made from them (downscaled, coded in the live profile)."""
    from ..bench.scenes import CameraPath, downscale, render_pan
    from ..stream import EncodeSettings, open_frames, write_clip
    from .data import load_photo

    hr = list(render_pan(load_photo(clip.photo), scale * clip.width, scale * clip.height, frames,
                         CameraPath(clip.dx, clip.dy, clip.zoom), order=order))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fit.mp4"
        write_clip(path, downscale(iter(hr), scale), EncodeSettings(crf=clip.crf, threads=1))
        return hr, list(open_frames(path))[:frames]


def clip_frames(clip: FitClip, scale: int, frames: int) -> list[CodedFrame]:
    """The decoded LR frames of one fit clip. The HR frames are only filmed to be downscaled (the
    network's output is the target, not them), so a linear resampling of the photo does."""
    return film_clip(clip, scale, frames, order=1)[1]


def clip_samples(frames: Sequence[CodedFrame], runner, scale: int, loop: str = "closed",
                 patch_px: int = FIT_PATCH_PX) -> dict:
    """Per patch of every frame: features (M, K), oracle (M,), texture (M,), frame id (M,)."""
    from ..graph import frame_texture
    from ..reuse import ReuseConfig
    from .patches import upscale_frame

    sr = {f.index: upscale_frame(runner, f.y, f.u, f.v) for f in frames}
    oracle = OracleBias(sr.__getitem__, ReuseConfig(scale, loop))
    grid = PatchGrid(patch_px, frames[0].height, frames[0].width)
    feats, target, tex, fid = [], [], [], []
    prev = None
    for t, f in enumerate(frames):
        feats.append(patch_features(f, prev, grid, scale))
        target.append(oracle(f, prev, grid))
        tex.append(frame_texture(f, prev, grid))
        fid.append(np.full(grid.n_patches, t))
        prev = f
    return {"features": np.concatenate(feats), "oracle": np.concatenate(target),
            "texture": np.concatenate(tex), "frame": np.concatenate(fid)}


def fit_coef(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative least squares (columns scaled to unit norm for the solver, the scaling
    undone). Unweighted: J sums the biases, so the large ones must come out right first; a
    row weighting by 1 / (oracle + mean) ranked nodes within a frame as well but across the
    frames of a clip worse (x2 fit data, leave-photos-out: Spearman 0.851 against 0.866)."""
    from scipy.optimize import nnls

    norm = np.linalg.norm(features, axis=0)
    norm[norm == 0] = 1.0
    coef, _ = nnls(features / norm, target, maxiter=50 * features.shape[1])
    return coef / norm


def _spearman_per_frame(pred: np.ndarray, target: np.ndarray, groups: np.ndarray) -> float:
    from scipy.stats import spearmanr

    vals = []
    for g in np.unique(groups):
        sel = groups == g
        if sel.sum() > 2 and np.ptp(target[sel]) > 0 and np.ptp(pred[sel]) > 0:
            vals.append(spearmanr(pred[sel], target[sel])[0])
    return float(np.mean(vals)) if vals else float("nan")


def fit_figures(data: dict, photo_of: np.ndarray, folds: int = 3) -> dict:
    """Leave-photos-out figures: photos split into ``folds`` groups; each group is predicted by a
    fit on the others. Spearman per frame and per clip (means over frames / clips) of the
    prediction and of the texture term against the oracle; R^2 of the prediction."""
    photos = np.unique(photo_of)
    fold_of = {p: i % folds for i, p in enumerate(photos)}
    fold = np.array([fold_of[p] for p in photo_of])
    pred = np.zeros_like(data["oracle"])
    for k in range(folds):
        test = fold == k
        if test.all() or not test.any():
            pred[test] = data["features"][test] @ fit_coef(data["features"], data["oracle"])
            continue
        pred[test] = data["features"][test] @ fit_coef(data["features"][~test], data["oracle"][~test])
    y = data["oracle"]
    groups = data["frame_key"]
    r2 = 1.0 - float(((pred - y) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12))
    clips = data["frame_key"] // 1000
    return {"heldout_spearman_per_frame_predictor": round(_spearman_per_frame(pred, y, groups), 4),
            "heldout_spearman_per_frame_texture": round(_spearman_per_frame(data["texture"], y, groups), 4),
            "heldout_spearman_per_clip_predictor": round(_spearman_per_frame(pred, y, clips), 4),
            "heldout_spearman_per_clip_texture": round(_spearman_per_frame(data["texture"], y, clips), 4),
            "heldout_r2": round(r2, 4), "samples": int(y.size), "frames": int(np.unique(groups).size),
            "folds": folds}


def refit(weights: str | Path, scale: int, photos: Sequence[str] | None = None, *, frames: int = FIT_FRAMES,
          seed: int = 0, max_lr_side: int = MAX_LR_SIDE, out: str | Path | None = None,
          on_clip: Callable[[str], None] = lambda text: None) -> tuple[BiasPredictor, Path]:
    """Fit the predictor of the weight file ``weights`` (x``scale``) and write it beside it
    (``bias_path``) or to ``out``; returns (predictor, path)."""
    import torch

    from ..envinfo import sha256_file
    from ..reuse import ReuseConfig
    from . import photos as photo_lists
    from .model import load_model
    from .patches import SRRunner

    photos = tuple(photos) if photos is not None else photo_lists.TRAIN_PHOTOS
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runner = SRRunner(load_model(scale, weights))
        clips = fit_clips(photos, scale, frames, seed, max_lr_side)
        parts, photo_of = [], []
        for i, clip in enumerate(clips):
            on_clip(f"x{scale} fit clip {i + 1}/{len(clips)}: {clip.photo}")
            d = clip_samples(clip_frames(clip, scale, frames), runner, scale)
            d["frame_key"] = d.pop("frame") + 1000 * i
            parts.append(d)
            photo_of.extend([clip.photo] * d["oracle"].size)
    finally:
        torch.set_num_threads(threads)
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    coef = fit_coef(data["features"], data["oracle"])
    figures = fit_figures(data, np.array(photo_of))
    used = sorted({c.photo for c in clips})
    reuse = ReuseConfig(scale)  # what clip_samples' oracle rebuilt with (the closed loop)
    contract = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "scale": scale,
        "weights_file": Path(weights).name, "weights_sha256": sha256_file(str(weights)),
        "target": TARGET,
        "model": "b = sum_k coef[k] * features[k] (per-patch sums; non-negative least squares)",
        "features": list(FEATURES), "coef": [float(c) for c in coef],
        "fit_data": {"photos": photo_lists.records(used), "clips": [c.record() for c in clips],
                     "frames_per_clip": frames, "patch_px": FIT_PATCH_PX, "loop": "closed",
                     # the oracle's reuse step: the closed loop's model of the LR and its passes
                     "lr_model": reuse.down_filter, "closed_loop_passes": reuse.passes,
                     "encoder": "libx264 live profile (tune=zerolatency, ref=1, bframes=0, keyint 60), "
                                "threads=1", "seed": seed},
        "fit_figures": figures,
    }
    path = Path(out) if out is not None else bias_path(weights)
    path.write_text(json.dumps(contract, indent=1, sort_keys=True) + "\n")
    return BiasPredictor(scale, coef, contract), path
