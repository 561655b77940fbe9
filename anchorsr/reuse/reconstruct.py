"""Reuse-based HR reconstruction in decode order (docs/method.md §1).

Each HR frame is rebuilt from the previous HR frame moved by ``scale`` x the codec's motion
vectors plus an upsampled LR residual; intra blocks and key frames are upsampled; the HR anchor
patches it is given (the SR network's output, or a stand-in's) are pasted over. The finished frame
becomes the reference of the next one, so only one HR reference is ever held.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..types import MV_BLOCK_PX, MV_UNITS_PER_PX, CodedFrame, HRFrame, HRPatch, chroma_box
from . import kernels

log = logging.getLogger(__name__)

SUPPORTED_SCALES = (2, 3, 4)
LOOPS = ("closed", "open")
# ReuseConfig.anchor_weight's default per scale: the least-squares weight of the shipped
# network's output against reuse on the inter pixels of the training clips
# (``anchorsr train --scale S --fit-anchor-weight``: x2 0.69, x3 0.145, x4 0.359), rounded to
# 0.05. The x3 and x4 networks, trained for far fewer steps, add less that reuse has not built.
ANCHOR_WEIGHTS = {2: 0.7, 3: 0.15, 4: 0.35}
RESIDUAL_UPSAMPLERS = {"nearest": kernels.RES_NEAREST, "bilinear": kernels.RES_BILINEAR,
                       "bicubic": kernels.RES_BICUBIC}


@dataclass(frozen=True)
class ReuseConfig:
    """How inter pixels are rebuilt.

    loop: "closed" (residual against the downscaled HR prediction, drift-free; default) or
        "open" (the codec's own residual against the LR prediction, as NEMO/Palantír).
    residual_upsampler: how the LR residual is enlarged: "bicubic" (default), "bilinear" or
        "nearest" (each HR cell moved by its LR pixel's residual: the box reduction of the
        output then equals the decoded LR exactly, but the steps between cells are false
        detail). Chosen by measurement on the corpus clips, with and without anchors: bicubic
        gave the highest PSNR-Y on every clip (docs/method.md, "Reuse-based reconstruction").
    down_filter: the closed loop's model of how the LR frame was made from the HR one, used to
        compare the HR prediction with the decoded LR: "bicubic" (default; the antialiased
        bicubic reduction of camera pipelines and FFmpeg's scaler, which the SR network is also
        trained on) or "box" (the mean of each LR pixel's HR cell: the model before, the
        ablation). Measured, reuse alone over bicubic, PSNR-Y, 60 frames of each corpus clip:
        +0.02 to +0.20 dB on every clip (docs/method.md, "The closed loop's model of the LR").
    passes: closed loop with the bicubic model only: how many times the residual is measured
        through the model and added back (default 2). The upsampling of the residual followed
        by the model's reduction attenuates it, so one pass leaves part of the LR unrestored
        (measured on a synthetic pan: 36.9 dB between the LR and the output seen through the
        model after one pass, against 42.9 dB for the box model's one pass); a second pass
        restores it (docs/method.md, "The closed loop's model of the LR").
    anchor_weight: how an anchor patch is weighed against the reuse output it replaces on the
        inter blocks of a P frame: each HR sample there becomes ``w * anchor + (1 - w) * reuse``
        (default None: the shipped network's fitted weight at the scale, ``ANCHOR_WEIGHTS``:
        0.7 at x2). On key frames and intra or gated blocks, where reuse is a plain
        upsampling, the anchor replaces it whole. A closed loop that follows a scene through
        sub-pixel motion gathers detail from many frames, and its errors are not the network's;
        the least-squares weight of the network's output against that reuse, on the inter
        pixels of the training clips, is 0.69 at x2 (``anchorsr train --scale 2
        --fit-anchor-weight``; other weights files need their own fit). 1: replace always (the ablation, the behaviour before). See docs/method.md, "Anchors
        weighed against reuse".
    feather_seams: blend the luma HR samples within one LR pixel of a motion seam (an inter
        block next to a block predicted differently) towards bicubic (default True; False is the
        ablation). Luma only: on chroma the same rule gained U and V at most 0.03 dB for about
        the luma's cost again. Measured, reuse alone over bicubic, PSNR-Y: bikes -0.22 -> -0.01
        dB, the other corpus clips +0.01 to +0.06 dB (docs/method.md, "Motion seams").
    """

    scale: int = 2
    loop: str = "closed"
    residual_upsampler: str = "bicubic"
    feather_seams: bool = True
    down_filter: str = "bicubic"
    passes: int = 2
    anchor_weight: float | None = None

    def __post_init__(self) -> None:
        if self.scale not in SUPPORTED_SCALES:
            raise ConfigError(f"scale must be one of {SUPPORTED_SCALES}, got {self.scale}")
        if self.anchor_weight is None:
            object.__setattr__(self, "anchor_weight", ANCHOR_WEIGHTS[self.scale])
        if self.loop not in LOOPS:
            raise ConfigError(f"loop must be one of {LOOPS}, got {self.loop!r}")
        if not 0 < self.anchor_weight <= 1:
            raise ConfigError(f"anchor weight must be in (0, 1], got {self.anchor_weight}")
        if not 1 <= self.passes <= 4:
            raise ConfigError(f"closed-loop passes must be 1 to 4, got {self.passes}")
        _check_down_filter(self.down_filter)
        if self.residual_upsampler not in RESIDUAL_UPSAMPLERS:
            raise ConfigError(f"residual upsampler must be one of {tuple(RESIDUAL_UPSAMPLERS)}, "
                              f"got {self.residual_upsampler!r}")


def upscale_bicubic(y: np.ndarray, u: np.ndarray, v: np.ndarray, scale: int) -> tuple[np.ndarray, ...]:
    """Plain per-frame bicubic upscale of all three planes (the 'none' baseline)."""
    offs, wts = kernels.cubic_phase_weights(scale)
    out = []
    for plane in (y, u, v):
        hr = np.empty((plane.shape[0] * scale, plane.shape[1] * scale), np.uint8)
        kernels.upscale_cubic(plane, scale, offs, wts, hr)
        out.append(hr)
    return tuple(out)


def _check_down_filter(kind: str) -> None:
    if kind not in kernels.DOWN_FILTERS:
        raise ConfigError(f"down filter must be one of {kernels.DOWN_FILTERS}, got {kind!r}")


class Reconstructor:
    """Stateful decode-order reconstruction of one stream. Not thread-safe; one per stream."""

    def __init__(self, config: ReuseConfig = ReuseConfig()) -> None:
        self.config = config
        self._offs, self._wts = kernels.cubic_phase_weights(config.scale)
        self._down_taps = {config.down_filter: kernels.down_taps(config.scale, config.down_filter)}
        self._prev_hr: tuple[np.ndarray, ...] | None = None
        self._prev_lr: tuple[np.ndarray, ...] | None = None
        self._scratch: dict[tuple[int, int], np.ndarray] = {}

    def reset(self) -> None:
        """Forget the reference (the next P frame is upsampled as if intra)."""
        self._prev_hr = self._prev_lr = None

    def replace_reference(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Make ``planes`` (HR Y, U, V of the frame just rebuilt, same shapes) the reference of the
        next frame instead of what :meth:`step` returned (an evaluation that edits the output,
        such as the quality benchmark's oracle gate)."""
        if self._prev_hr is None or any(a.shape != b.shape for a, b in zip(planes, self._prev_hr)):
            raise ConfigError("a replacement reference needs a previous frame of the same size")
        self._prev_hr = tuple(planes)

    def step(self, frame: CodedFrame, anchor_boxes: np.ndarray | None = None,
             patches: list[HRPatch] | None = None, down_filter: str | None = None) -> HRFrame:
        """Rebuild ``frame`` at HR; paste ``patches`` (one HR (Y, U, V) per box) over
        ``anchor_boxes`` (K, 4). down_filter: the closed loop's model of the LR for this frame
        only (None: the config's; a live pipeline under overload asks for the cheaper "box")."""
        s = self.config.scale
        kind = self.config.down_filter if down_filter is None else down_filter
        if kind not in self._down_taps:
            _check_down_filter(kind)
            self._down_taps[kind] = kernels.down_taps(s, kind)
        down = self._down_taps[kind]
        lr = (frame.y, frame.u, frame.v)
        motion = frame.motion
        usable = (frame.kind == "P" and self._prev_hr is not None
                  and self._prev_lr[0].shape == frame.y.shape)
        if frame.kind == "P" and not usable:
            log.debug("frame %d: no usable reference, upsampling it whole", frame.index)
        planes = []
        for i, plane in enumerate(lr):
            hr = np.empty((plane.shape[0] * s, plane.shape[1] * s), np.uint8)
            if not usable:
                kernels.upscale_cubic(plane, s, self._offs, self._wts, hr)
            else:
                block, denom = (MV_BLOCK_PX, MV_UNITS_PER_PX) if i == 0 else (MV_BLOCK_PX // 2, 2 * MV_UNITS_PER_PX)
                res = self._scratch.get(plane.shape)
                if res is None:
                    res = self._scratch[plane.shape] = np.empty(plane.shape, np.float32)
                kernels.plane_kernel(s)(
                    self._prev_hr[i], plane, self._prev_lr[i], motion.mv, motion.intra, block, denom,
                    self.config.loop == "closed", RESIDUAL_UPSAMPLERS[self.config.residual_upsampler],
                    self._offs, self._wts, hr, res, *down, self.config.passes)
                if i == 0 and self.config.feather_seams:  # luma only: see ReuseConfig
                    ev, eh = kernels.seam_strengths(motion.mv, motion.intra)
                    kernels.feather_seams(hr, plane, motion.intra, ev, eh, block, s, np.float32(s),
                                          self._offs, self._wts)
            planes.append(hr)
        if anchor_boxes is not None and len(anchor_boxes):
            if patches is None:
                raise ConfigError("anchor boxes were given without their HR patches")
            weights = None
            if usable and self.config.anchor_weight < 1:
                weights = np.where(motion.intra, np.float32(1), np.float32(self.config.anchor_weight))
            paste_patches(planes, np.asarray(anchor_boxes), patches, s, weights)
        self._prev_hr = tuple(planes)
        self._prev_lr = lr
        return HRFrame(frame.index, frame.pts, frame.time, planes[0], planes[1], planes[2])


def paste_patches(planes: list[np.ndarray], boxes: np.ndarray, patches: list, scale: int,
                  weights: np.ndarray | None = None) -> None:
    """Write HR patches (Y, U, V) over their boxes (LR luma (y0, y1, x0, x1)) in place.

    weights: None (replace), or float32 per 4x4 LR luma block: each HR sample becomes
    ``w * patch + (1 - w) * plane``, rounded (ReuseConfig.anchor_weight)."""
    if len(patches) != len(boxes):
        raise ConfigError(f"patch source returned {len(patches)} patches for {len(boxes)} boxes")
    for box, (py, pu, pv) in zip(boxes, patches):
        y0, y1, x0, x1 = (int(b) * scale for b in box)
        c0, c1, c2, c3 = (c * scale for c in chroma_box(box))
        if py.shape != (y1 - y0, x1 - x0) or not pu.shape == pv.shape == (c1 - c0, c3 - c2):
            raise ConfigError(f"expected an HR patch of {y1 - y0}x{x1 - x0} luma samples for box "
                              f"{tuple(int(b) for b in box)}, got {py.shape[0]}x{py.shape[1]}")
        if weights is None:
            planes[0][y0:y1, x0:x1] = py
            planes[1][c0:c1, c2:c3] = pu
            planes[2][c0:c1, c2:c3] = pv
            continue
        # the block grid in each plane's LR pixels: luma MV_BLOCK_PX, chroma half that (4:2:0)
        kernels.blend_patch(planes[0], py, y0, x0, scale, MV_BLOCK_PX, weights)
        kernels.blend_patch(planes[1], pu, c0, c2, scale, MV_BLOCK_PX // 2, weights)
        kernels.blend_patch(planes[2], pv, c0, c2, scale, MV_BLOCK_PX // 2, weights)
