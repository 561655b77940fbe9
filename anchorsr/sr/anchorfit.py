"""The anchor weight (``ReuseConfig.anchor_weight``) of a weight file, fitted on training clips.

On a P frame an anchor patch is blended with the reuse output it replaces:
``w * SR + (1 - w) * R``. The weight that minimises the squared error against the truth over a
set of samples is the least-squares one, ``w = sum (T - R)(SR - R) / sum (SR - R)^2``. It is
measured on the inter pixels (luma) of the P frames of clips filmed over the training photos
only (the clips of ``biasfit.fit_clips``, with a bicubic-resampled ground truth), rebuilt by
reuse alone; the network runs on every whole LR frame.

Caveat, stated where the value is used: the network has seen these photos in training, so its
output is better on them than on unseen content, which pulls the fitted weight towards 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..types import MV_BLOCK_PX, CodedFrame

ANCHOR_FIT_FRAMES = 30


def weight_sums(truth: np.ndarray, reuse: np.ndarray, sr: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(sum (T - R)(SR - R), sum (SR - R)^2) over the samples where ``mask`` is True."""
    t, r, s = (np.asarray(a, np.float64)[mask] for a in (truth, reuse, sr))
    d = s - r
    return float(((t - r) * d).sum()), float((d * d).sum())


def inter_mask(frame: CodedFrame, scale: int, shape: tuple[int, int]) -> np.ndarray:
    """bool HR luma mask of ``frame``'s inter blocks (``shape``: the HR luma plane's)."""
    cell = MV_BLOCK_PX * scale
    m = np.repeat(np.repeat(~frame.motion.intra, cell, 0), cell, 1)
    return m[:shape[0], :shape[1]]


def clip_sums(frames: Sequence[CodedFrame], truth_y: Sequence[np.ndarray], sr_y: Callable[[CodedFrame], np.ndarray],
              scale: int) -> tuple[float, float]:
    """The least-squares sums over the inter pixels of the P frames of one clip rebuilt by reuse
    alone (the project's default loop, anchors replaced: the weight applies to what they replace)."""
    from ..reuse import Reconstructor, ReuseConfig

    rec = Reconstructor(ReuseConfig(scale, anchor_weight=1.0))
    num = den = 0.0
    for f, t in zip(frames, truth_y):
        out = rec.step(f)
        if f.kind != "P":
            continue
        n, d = weight_sums(t, out.y, sr_y(f), inter_mask(f, scale, out.y.shape))
        num += n
        den += d
    return num, den


def fit_anchor_weight(weights: str | Path, scale: int, photos: Sequence[str] | None = None, *,
                      frames: int = ANCHOR_FIT_FRAMES, seed: int = 0,
                      on_clip: Callable[[str], None] = lambda text: None) -> dict:
    """The least-squares anchor weight of ``weights`` (x``scale``) on the training clips, with the
    weight per photo (its clips' sums alone) to show the spread."""
    import torch

    from . import photos as photo_lists
    from .biasfit import film_clip, fit_clips
    from .model import load_model
    from .patches import SRRunner, upscale_frame

    photos = tuple(photos) if photos is not None else photo_lists.TRAIN_PHOTOS
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    per_photo: dict[str, list[float]] = {}
    try:
        runner = SRRunner(load_model(scale, weights))
        clips = fit_clips(photos, scale, frames, seed)
        for i, clip in enumerate(clips):
            on_clip(f"x{scale} anchor-weight clip {i + 1}/{len(clips)}: {clip.photo}")
            hr, coded = film_clip(clip, scale, frames)
            n, d = clip_sums(coded, [h[0] for h in hr], lambda f: upscale_frame(runner, f.y, f.u, f.v)[0], scale)
            acc = per_photo.setdefault(clip.photo, [0.0, 0.0])
            acc[0] += n
            acc[1] += d
    finally:
        torch.set_num_threads(threads)
    num = sum(a[0] for a in per_photo.values())
    den = sum(a[1] for a in per_photo.values())
    return {"scale": scale, "weights_file": Path(weights).name, "anchor_weight": round(num / den, 4) if den else None,
            "per_photo": {k: round(a[0] / a[1], 4) if a[1] else None for k, a in sorted(per_photo.items())},
            "clips": len(clips), "frames_per_clip": frames, "seed": seed,
            "note": "least squares over the inter pixels (luma) of the P frames, reuse alone; the network "
                    "has seen these photos, which pulls the weight towards 1"}
