"""How much of the inter pixels' texture a node bias should count, fitted on training clips.

The texture term of a node (``graph.frame_texture``) adds two parts: what a down/up round trip
loses on the patch's intra pixels, and the same on the residual of its inter pixels. The
``intra`` node bias keeps the first part only. Which is right for a network is a measurable
question: per 32 px patch of every frame of the bias predictor's fit clips (``biasfit.fit_clips``:
every installed training photo filmed twice as a coded clip, a pan and a pan with a zoom, at two
CRFs; the HR frames resampled with cubic splines serve as the truth), the network's gain against
the truth over one reuse step from its own previous output,

    gain = |R_t - Y_t|^2 - |SR_t - Y_t|^2   (sums over the patch's HR Y, U and V samples;
                                             R_t as for ``biasfit.OracleBias``)

is fitted by non-negative least squares as ``a * intra + b * inter`` (intra: the texture term of
the intra pixels, inter: the rest of the texture term). ``b / a`` is the share of the inter part
the bias should count (0: the ``intra`` bias, 1: the texture term). The fit is also given with
negative gains set to 0 (the recursion's biases are never negative).

Caveat: the network has seen these photos in training, so its gain is larger on them than on
unseen content (it pulls ``a`` up more than ``b``, since intra pixels are where the network's own
output is used whole).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..types import CodedFrame, PatchGrid

FIT_PATCH_PX = 32
FIT_FRAMES = 10


def share_fit(gain: np.ndarray, intra: np.ndarray, inter: np.ndarray) -> dict:
    """Non-negative least squares ``gain ~ a * intra + b * inter``: a, b and b / a (None when a
    is 0)."""
    from scipy.optimize import nnls

    x = np.stack([np.asarray(intra, np.float64), np.asarray(inter, np.float64)], 1)
    norm = np.linalg.norm(x, axis=0)
    norm[norm == 0] = 1.0
    coef, _ = nnls(x / norm, np.asarray(gain, np.float64))
    a, b = coef / norm
    return {"coef_intra": float(a), "coef_inter": float(b), "inter_share": float(b / a) if a > 0 else None}


def clip_rows(hr: Sequence[Sequence[np.ndarray]], frames: Sequence[CodedFrame],
              sr: Callable[[CodedFrame], Sequence[np.ndarray]], scale: int,
              patch_px: int = FIT_PATCH_PX) -> dict:
    """Per patch of every frame of one clip: gain, intra, inter (float64 (M,)) and key (bool)."""
    from ..graph import frame_texture
    from ..reuse import ReuseConfig
    from .biasfit import OracleBias, patch_sse

    grid = PatchGrid(patch_px, frames[0].height, frames[0].width)
    planes = {f.index: tuple(sr(f)) for f in frames}
    oracle = OracleBias(planes.__getitem__, ReuseConfig(scale))
    out: dict[str, list] = {"gain": [], "intra": [], "inter": [], "key": []}
    prev = None
    for truth, f in zip(hr, frames):
        reuse = oracle.reuse_step(f, prev)
        out["gain"].append(patch_sse(reuse, truth, grid, scale) - patch_sse(planes[f.index], truth, grid, scale))
        full = frame_texture(f, prev, grid)
        intra = frame_texture(f, prev, grid, inter=False)
        out["intra"].append(intra)
        out["inter"].append(full - intra)
        out["key"].append(np.full(grid.n_patches, f.is_key or prev is None))
        prev = f
    return {k: np.concatenate(v) for k, v in out.items()}


def fit_residual_share(weights: str | Path, scale: int, photos: Sequence[str] | None = None, *,
                       frames: int = FIT_FRAMES, seed: int = 0, max_lr_side: int | None = None,
                       on_clip: Callable[[str], None] = lambda text: None) -> dict:
    """The fit of the module docstring for ``weights`` (x``scale``) on the training clips."""
    import torch

    from . import photos as photo_lists
    from .biasfit import MAX_LR_SIDE, film_clip, fit_clips
    from .model import load_model
    from .patches import SRRunner, upscale_frame

    photos = tuple(photos) if photos is not None else photo_lists.TRAIN_PHOTOS
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    parts = []
    try:
        runner = SRRunner(load_model(scale, weights))
        clips = fit_clips(photos, scale, frames, seed, max_lr_side or MAX_LR_SIDE)
        for i, clip in enumerate(clips):
            on_clip(f"x{scale} residual-share clip {i + 1}/{len(clips)}: {clip.photo}")
            hr, coded = film_clip(clip, scale, frames)
            parts.append(clip_rows(hr, coded, lambda f: upscale_frame(runner, f.y, f.u, f.v), scale))
    finally:
        torch.set_num_threads(threads)
    d = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    gain = d["gain"]
    return {"scale": scale, "weights_file": Path(weights).name,
            "fit": share_fit(gain, d["intra"], d["inter"]),
            "fit_gain_clipped_at_0": share_fit(np.maximum(gain, 0.0), d["intra"], d["inter"]),
            "p_frames_only": share_fit(gain[~d["key"]], d["intra"][~d["key"]], d["inter"][~d["key"]]),
            "negative_gain_share": float((gain < 0).mean()),
            "key_frame_gain": float(gain[d["key"]].sum()), "p_frame_gain": float(gain[~d["key"]].sum()),
            "samples": int(gain.size), "clips": len(clips), "frames_per_clip": frames,
            "patch_px": FIT_PATCH_PX, "seed": seed,
            "note": "non-negative least squares of the network's gain against the truth (over one reuse step "
                    "from its own previous output) on the texture term's intra and inter parts; inter_share 0 "
                    "is the intra node bias, 1 the texture term"}
