"""Training and evaluation data: real photographs, degraded the way the pipeline sees them.

The pipeline's SR input is a *decoded* LR frame: the broadcaster's camera image, downscaled,
then H.264-coded. So an LR sample here is: photo -> bicubic (antialiased) downscale -> BT.601
video-range YUV 4:2:0 -> libx264 at a CRF (one intra-coded frame) -> decode; the target is the
photo's own luma. ``crf=None`` gives clean (uncoded) LR.

Sources need no download: scikit-image's bundled photos (always present with the ``dev`` /
``bench`` extras) and Debian's ``mate-backgrounds`` nature photos under
``/usr/share/backgrounds/mate`` (used when installed). Evaluation photos are held out from
training; the split is fixed here so the weights' contracts can name it.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .photos import EVAL_PHOTOS, TRAIN_PHOTOS, photo_available, photo_path  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

MAX_SIDE_PX = 1920  # larger photos are downscaled first: video frames are at most ~1080p-4K
# x264 in the live profile the pipeline decodes (one reference, no B-frames, no look-ahead)
LIVE_X264 = {"preset": "veryfast", "tune": "zerolatency", "x264-params": "ref=1:bframes=0"}


def load_photo(name: str) -> np.ndarray:
    """uint8 (H, W, 3) RGB of a named photo ("skimage:NAME" or "file:PATH")."""
    ref = photo_path(name)  # skimage: the bundled file itself (some loaders would fetch more)
    if not ref:
        raise ConfigError(f"photo name must start with 'skimage:' or 'file:', got {name!r}")
    from PIL import Image

    try:
        with Image.open(ref) as im:
            img = np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise ConfigError(f"photo {name!r}: expected a readable image file, got {exc}") from None
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = np.ascontiguousarray(img[:, :, :3]).astype(np.uint8)
    if max(img.shape[:2]) > MAX_SIDE_PX:
        f = MAX_SIDE_PX / max(img.shape[:2])
        img = resize_rgb(img, round(img.shape[0] * f), round(img.shape[1] * f))
    return img


def resize_rgb(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased bicubic resize of uint8 (H, W, 3) to (height, width, 3)."""
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    out = F.interpolate(t, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    return out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def rgb_to_yuv420(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 video-range Y, U, V uint8 planes (U, V averaged 2x2) of an even-sized RGB image."""
    rgb = img.astype(np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b

    def sub(c: np.ndarray) -> np.ndarray:
        return c.reshape(c.shape[0] // 2, 2, c.shape[1] // 2, 2).mean(axis=(1, 3))

    def q(c: np.ndarray) -> np.ndarray:
        return np.clip(np.round(c), 0, 255).astype(np.uint8)

    return q(y), q(sub(u)), q(sub(v))


def h264_roundtrip(y: np.ndarray, u: np.ndarray, v: np.ndarray, crf: int,
                   preset: str = "veryfast") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Code one YUV 4:2:0 frame with libx264 at ``crf`` (an intra frame) and decode it back."""
    import av

    h, w = y.shape
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {**LIVE_X264, "crf": str(crf), "preset": preset}
        frame = av.VideoFrame.from_ndarray(np.concatenate([y, u.reshape(-1, w), v.reshape(-1, w)]),
                                           format="yuv420p")
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, "r", format="h264") as inp:
        dec = next(inp.decode(video=0))
        planes = dec.to_ndarray(format="yuv420p")
    return planes[:h], planes[h:h + h // 4].reshape(h // 2, w // 2), planes[h + h // 4:].reshape(h // 2, w // 2)


@dataclass(frozen=True)
class Pair:
    """One LR/HR luma pair: lr uint8 (h, w), hr uint8 (scale*h, scale*w); crf None = clean."""

    name: str
    crf: int | None
    lr: np.ndarray
    hr: np.ndarray


def make_pair(img: np.ndarray, scale: int, crf: int | None, name: str = "") -> Pair:
    """Degrade an RGB photo to an LR luma plane as the pipeline would see it (module doc)."""
    step = 4 * scale  # LR sizes multiple of 4: 4:2:0 planes pack row-wise for PyAV
    hh, ww = img.shape[0] // step * step, img.shape[1] // step * step
    if hh < step or ww < step:
        raise ConfigError(f"photo {name!r} too small for scale {scale}: {img.shape[1]}x{img.shape[0]}")
    img = img[:hh, :ww]
    hr_y, _, _ = rgb_to_yuv420(img)
    lr_y, lr_u, lr_v = rgb_to_yuv420(resize_rgb(img, hh // scale, ww // scale))
    if crf is not None:
        lr_y, _, _ = h264_roundtrip(lr_y, lr_u, lr_v, crf)
    return Pair(name, crf, lr_y, hr_y)


def make_pairs(names, scale: int, crfs) -> list[Pair]:
    """Pairs for every available photo in ``names`` and every CRF in ``crfs`` (None = clean)."""
    pairs = []
    for name in names:
        if not photo_available(name):
            log.info("photo %s not installed; skipped", name)
            continue
        img = load_photo(name)
        pairs.extend(make_pair(img, scale, crf, name) for crf in crfs)
    return pairs


def bicubic_upscale_y(lr: np.ndarray, scale: int) -> np.ndarray:
    """uint8 bicubic upscale of a luma plane (the baseline the SR gain is measured against)."""
    t = torch.from_numpy(lr)[None, None].float()
    out = F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)
    return out[0, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def psnr(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    """PSNR (dB, peak 255) between two same-shaped planes, ignoring ``border`` pixels per side
    (``anchorsr.metrics.psnr``)."""
    from ..metrics import psnr as _psnr

    return _psnr(a, b, border)


def random_crops(pairs: list[Pair], scale: int, n: int, lr_px: int, rng: np.random.Generator,
                 weights: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of aligned random crops with random flips/transposes, floats / 255.

    weights: the probability of drawing each pair (default: uniform).
    Returns lr (n, 1, lr_px, lr_px) and hr (n, 1, scale*lr_px, scale*lr_px).
    """
    lrs = np.empty((n, lr_px, lr_px), np.uint8)
    hrs = np.empty((n, scale * lr_px, scale * lr_px), np.uint8)
    picks = rng.choice(len(pairs), size=n, p=weights)
    for i in range(n):
        p = pairs[int(picks[i])]
        y = int(rng.integers(p.lr.shape[0] - lr_px + 1))
        x = int(rng.integers(p.lr.shape[1] - lr_px + 1))
        lr = p.lr[y:y + lr_px, x:x + lr_px]
        hr = p.hr[scale * y:scale * (y + lr_px), scale * x:scale * (x + lr_px)]
        if rng.random() < 0.5:
            lr, hr = lr[:, ::-1], hr[:, ::-1]
        if rng.random() < 0.5:
            lr, hr = lr[::-1], hr[::-1]
        if rng.random() < 0.5:
            lr, hr = lr.T, hr.T
        lrs[i], hrs[i] = lr, hr
    to_t = lambda a: torch.from_numpy(a).float().div_(255.0)[:, None]  # noqa: E731
    return to_t(lrs), to_t(hrs)


def h264_sequence(frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]], crf: int,
                  preset: str = "veryfast") -> list[np.ndarray]:
    """Code YUV 4:2:0 frames as one H.264 stream in the live profile (an I frame, then P frames
    with one reference and no B-frames, as the pipeline's input) and return the decoded Y."""
    import av

    h, w = frames[0][0].shape
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {**LIVE_X264, "crf": str(crf), "preset": preset}
        for y, u, v in frames:
            vf = av.VideoFrame.from_ndarray(np.concatenate([y, u.reshape(-1, w), v.reshape(-1, w)]),
                                            format="yuv420p")
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, "r", format="h264") as inp:
        return [f.to_ndarray(format="yuv420p")[:h] for f in inp.decode(video=0)]


def _downscale_plane(p: np.ndarray, height: int, width: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(p))[None, None].float()
    out = F.interpolate(t, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    return out[0, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def sequence_pairs(hr_frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]], scale: int,
                   crf: int | None, name: str = "clip") -> list[Pair]:
    """LR/HR luma pairs of HR YUV 4:2:0 frames: each downscaled, then coded as one H.264 stream."""
    step = 4 * scale
    hh, ww = hr_frames[0][0].shape[0] // step * step, hr_frames[0][0].shape[1] // step * step
    if hh < step or ww < step:
        raise ConfigError(f"frames of {name!r} too small for scale {scale}")
    hrs, lrs = [], []
    for y, u, v in hr_frames:
        hrs.append(np.ascontiguousarray(y[:hh, :ww]))
        lh, lw = hh // scale, ww // scale
        lrs.append((_downscale_plane(y[:hh, :ww], lh, lw),
                    _downscale_plane(u[:hh // 2, :ww // 2], lh // 2, lw // 2),
                    _downscale_plane(v[:hh // 2, :ww // 2], lh // 2, lw // 2)))
    lr_ys = [f[0] for f in lrs] if crf is None else h264_sequence(lrs, crf)
    return [Pair(f"{name}#{i}", crf, lr, hr) for i, (lr, hr) in enumerate(zip(lr_ys, hrs))]


def read_video_yuv(path: str, max_frames: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The first ``max_frames`` frames of a video file as YUV 4:2:0 uint8 planes."""
    import av

    from ..errors import SourceError

    frames = []
    try:
        with av.open(path) as inp:
            for f in inp.decode(video=0):
                h, w = f.height // 4 * 4, f.width // 2 * 2  # rows of 4: planes pack row-wise
                a = f.reformat(width=w, height=h, format="yuv420p").to_ndarray()
                frames.append((a[:h], a[h:h + h // 4].reshape(h // 2, w // 2),
                               a[h + h // 4:].reshape(h // 2, w // 2)))
                if len(frames) >= max_frames:
                    break
    except (OSError, av.error.FFmpegError) as exc:
        raise SourceError(f"video {path}: expected a readable video file, got {exc}") from None
    if not frames:
        raise SourceError(f"video {path}: expected at least one video frame, got none")
    return frames


def panning_clip(img: np.ndarray, n_frames: int, height: int, width: int,
                 step_px: tuple[int, int] = (3, 5)) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A synthetic camera pan over a photo: ``n_frames`` YUV frames of (height, width)."""
    dy, dx = step_px
    frames = []
    for i in range(n_frames):
        y0 = min(i * dy, img.shape[0] - height)
        x0 = min(i * dx, img.shape[1] - width)
        frames.append(rgb_to_yuv420(img[y0:y0 + height, x0:x0 + width]))
    return frames
