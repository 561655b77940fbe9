"""The training and validation sets: photos degraded the way the live pipeline sees them.

Every training photo is split by rows before anything else: its bottom ``val_fraction`` is
the validation split (used to compare architectures and to report progress), the rest is
training material, so no validation pixel is ever trained on. From each part:

* intra pairs: the picture downscaled (antialiased bicubic), clean and H.264-coded at every
  CRF of ``crfs``, one intra frame each (what a key frame or an intra block looks like);
* P-frame pairs (training part only): a window moving over the picture by a few pixels per
  frame, downscaled and coded as one short live-profile H.264 stream at every CRF of
  ``seq_crfs``; the P frames are kept (block motion, coarse residuals, deblocking);
* for large photos, the same intra pairs of a half-size copy (denser detail, as a wider shot).

Crops are drawn with probability proportional to a pair's area, so a large photo is sampled
as often as its pixels warrant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .data import Pair, h264_sequence, load_photo, make_pair, resize_rgb, rgb_to_yuv420
from .photos import held_out, photo_available

log = logging.getLogger(__name__)

TRAIN_CRFS: tuple[int | None, ...] = (None, 18, 23, 28, 32)  # None: clean LR
SEQ_CRFS: tuple[int, ...] = (18, 23, 28, 32)
VAL_CRFS: tuple[int | None, ...] = (None, 23)
SEQ_FRAMES = 6  # one I frame and five P frames
SEQ_WINDOW_HR_PX = 512
MIN_TRAIN_LR_PX = 64  # pairs smaller than this cannot give a training crop


@dataclass
class TrainingSet:
    train: list[Pair]
    val: list[Pair]
    photos: list[str]

    def weights(self) -> np.ndarray:
        """Sampling probability of each training pair (proportional to its LR area)."""
        area = np.array([p.lr.size for p in self.train], np.float64)
        return area / area.sum()


def split_rows(img: np.ndarray, val_fraction: float, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(training part, validation part) of an image: the bottom rows are validation."""
    cut = int(round(img.shape[0] * (1.0 - val_fraction))) // step * step
    return img[:cut], img[cut:]


def moving_window(img: np.ndarray, frames: int, side: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``frames`` crops of ``side`` x ``side`` moving by a constant whole-pixel step (HR px)."""
    h, w = img.shape[:2]
    step = rng.integers(-6, 7, size=2)
    span = np.abs(step) * (frames - 1)
    y0 = int(rng.integers(0, h - side - span[0] + 1)) + (span[0] if step[0] < 0 else 0)
    x0 = int(rng.integers(0, w - side - span[1] + 1)) + (span[1] if step[1] < 0 else 0)
    return [img[y0 + i * step[0]:y0 + i * step[0] + side, x0 + i * step[1]:x0 + i * step[1] + side]
            for i in range(frames)]


def sequence_pairs(img: np.ndarray, scale: int, crf: int, name: str, rng: np.random.Generator) -> list[Pair]:
    """The P-frame pairs of one moving window over ``img`` coded at ``crf``."""
    step = 4 * scale
    side = min(SEQ_WINDOW_HR_PX, min(img.shape[:2]) - 6 * SEQ_FRAMES) // step * step
    if side < MIN_TRAIN_LR_PX * scale:
        return []
    crops = moving_window(img, SEQ_FRAMES, side, rng)
    lr = [rgb_to_yuv420(resize_rgb(c, side // scale, side // scale)) for c in crops]
    coded = h264_sequence(lr, crf)
    return [Pair(f"{name}#p{i}", crf, coded[i], rgb_to_yuv420(crops[i])[0])
            for i in range(1, len(coded))]


def build(photos, scale: int, val_fraction: float = 0.2, seed: int = 0,
          crfs=TRAIN_CRFS, seq_crfs=SEQ_CRFS) -> TrainingSet:
    """Training and validation pairs from ``photos`` (held-out photos are refused)."""
    refused = [p for p in photos if held_out(p)]
    if refused:
        raise ConfigError(f"expected training photos only, got held-out evaluation/corpus photos: "
                          f"{', '.join(refused)}")
    rng = np.random.default_rng(seed)
    step = 4 * scale
    train, val, used = [], [], []
    for name in photos:
        if not photo_available(name):
            log.info("photo %s not installed; skipped", name)
            continue
        img = load_photo(name)
        fit, hold = split_rows(img, val_fraction, step)
        if fit.shape[0] < 8 * step or hold.shape[0] < 4 * step:
            log.info("photo %s too small to split; skipped", name)
            continue
        used.append(name)
        train.extend(make_pair(fit, scale, crf, name) for crf in crfs)
        val.extend(make_pair(hold, scale, crf, f"{name}#val") for crf in VAL_CRFS)
        if max(fit.shape[:2]) >= 1280:
            half = resize_rgb(fit, fit.shape[0] // 2, fit.shape[1] // 2)
            train.extend(make_pair(half, scale, crf, f"{name}#half") for crf in crfs)
        for crf in seq_crfs:
            train.extend(sequence_pairs(fit, scale, crf, name, rng))
    train = [p for p in train if min(p.lr.shape) >= MIN_TRAIN_LR_PX]
    if not train:
        raise ConfigError(f"expected at least one installed training photo among {len(photos)} "
                          f"listed, got none (Debian's mate-backgrounds: make install-train-data)")
    return TrainingSet(train, val, used)
