"""The reuse gate: blocks where motion reuse is expected to lose to fresh upsampling
(docs/method.md §1.1).

Block motion cannot follow a zoom, a fast or deforming scene or a scene cut, and every sub-pixel
motion compensation blurs the reference a little; where that makes reusing the previous HR
frame worse than upsampling the decoded LR frame, the gate marks the block intra, so the
reconstructor rebuilds it by bicubic upsampling of the decoded LR (exactly what per-frame
bicubic gives there) and the dependency graph cuts its in-edges.

The decision needs no ground truth and no HR frame: it comes from a *shadow reconstruction one
octave down*, where the truth is known. The decoded LR luma plays the HR frame; its 2x box
reduction plays the LR frame (the closed loop's own model of how LR relates to HR). The shadow
runs the reuse path (the same kernel, the codec's vectors, closed loop, nearest residual) from
its own previous output, and bicubic upsampling beside it; per 16x16 block (one macroblock) it
measures both errors against the decoded LR, keeps the better one as its output (so it carries
drift and gating along the motion like the real reconstruction does) and gates the block when
reuse's error is the larger. No constant is tuned: the criterion is the comparison of two
measured errors. What carries them to HR is the usual assumption that natural images have about
the same energy in every octave (a 1/f^2 power spectrum); the shadow runs without anchors, so
the gate does not depend on the plan and graph and reconstructor see the same decision.

The gate is a transform of the decoded stream (``ReuseGate``, ``gate_frames``): frames come out
with the gated blocks marked intra in their motion field, and everything downstream (graph,
scheduler, reconstructor) uses those frames.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Iterator

import numpy as np
from numba import njit, prange

from ..types import MV_BLOCK_PX, MV_UNITS_PER_PX, CodedFrame, MotionField
from . import kernels

GATE_PX = 16  # LR luma pixels per side of a gate block: one H.264 macroblock
# The shadow adds its residual by nearest neighbour, not as the reconstruction does (bicubic): one
# octave down, its LR is exactly the box reduction of what it compares against, so a smooth
# residual would act as back-projection with an exact model and make reuse look better than it
# can be at HR (measured: an inter-coded cut then went ungated). Nearest is the pessimistic side.
SHADOW_RESIDUAL = kernels.RES_NEAREST
_OFFS, _WTS = kernels.cubic_phase_weights(2)
_BOX = kernels.down_taps(2, "box")


@njit(cache=True, parallel=True, nogil=True)
def _box_half(y, out):  # pragma: no cover - compiled
    """out (ceil(h/2), ceil(w/2)) <- rounded 2x2 means of y (the last row/column repeated)."""
    h, w = y.shape
    oh, ow = out.shape
    for i in prange(oh):
        r0, r1 = 2 * i, min(2 * i + 1, h - 1)
        for j in range(ow):
            c0, c1 = 2 * j, min(2 * j + 1, w - 1)
            s = np.int32(y[r0, c0]) + np.int32(y[r0, c1]) + np.int32(y[r1, c0]) + np.int32(y[r1, c1])
            out[i, j] = np.uint8((s + 2) >> 2)


@njit(cache=True, parallel=True, nogil=True)
def _choose(y, reuse, bicubic, intra, mv, prev_err, g, gated, fresh, err):  # pragma: no cover - compiled
    """Per g x g group of motion blocks: gate (True on its inter blocks) when the squared error
    of ``reuse`` against ``y`` exceeds that of ``bicubic``; a gated group's ``reuse`` pixels are
    overwritten by ``bicubic`` (the shadow's output). ``gated`` starts all False.

    fresh (bh, bw) <- on the inter blocks of a group left ungated, what reuse's error there
    exceeds the previous frame's error at the pixels the vectors copy from (``prev_err``,
    whole-pel, clamped to the plane), as a share of bicubic's error on the same pixels, clipped
    to [0, 1]; 0 elsewhere (``fresh`` starts all zero). err (h, w) <- the shadow output's squared error per pixel (the next
    frame's ``prev_err``)."""
    h, w = y.shape
    bh, bw = intra.shape
    gh = (bh + g - 1) // g
    gw = (bw + g - 1) // g
    px = g * MV_BLOCK_PX
    for gy in prange(gh):
        y0, y1 = gy * px, min(h, gy * px + px)
        for gx in range(gw):
            x0, x1 = gx * px, min(w, gx * px + px)
            e_reuse = 0
            e_up = 0
            for r in range(y0, y1):  # whole rows of the group: this loop vectorises
                for c in range(x0, x1):
                    t = np.int32(y[r, c])
                    a = np.int32(reuse[r, c]) - t
                    b = np.int32(bicubic[r, c]) - t
                    e_reuse += a * a
                    e_up += b * b
                    err[r, c] = np.uint16(a * a)
            # the same sums over the group's inter pixels (the group's sums less its intra
            # blocks', few), and the previous error at the pixels they copy; integer squares,
            # so every sum is exact
            i_reuse = e_reuse
            i_up = e_up
            i_prev = 0
            for by in range(gy * g, min(bh, gy * g + g)):
                r0, r1 = by * MV_BLOCK_PX, min(h, by * MV_BLOCK_PX + MV_BLOCK_PX)
                for bx in range(gx * g, min(bw, gx * g + g)):
                    c0, c1 = bx * MV_BLOCK_PX, min(w, bx * MV_BLOCK_PX + MV_BLOCK_PX)
                    if intra[by, bx]:
                        for r in range(r0, r1):
                            for c in range(c0, c1):
                                b = np.int32(bicubic[r, c]) - np.int32(y[r, c])
                                i_reuse -= err[r, c]
                                i_up -= b * b
                        continue
                    dy = (np.int64(mv[by, bx, 1]) + 2) >> 2
                    dx = (np.int64(mv[by, bx, 0]) + 2) >> 2
                    sy, sx = r0 + dy, c0 + dx
                    if sy >= 0 and sy + MV_BLOCK_PX <= h and sx >= 0 and sx + MV_BLOCK_PX <= w \
                            and r1 - r0 == MV_BLOCK_PX and c1 - c0 == MV_BLOCK_PX:
                        for i in range(MV_BLOCK_PX):  # a whole block inside the plane: fixed trips
                            for j in range(MV_BLOCK_PX):
                                i_prev += prev_err[sy + i, sx + j]
                    else:
                        for r in range(r0, r1):
                            sy = min(max(r + dy, 0), h - 1)
                            for c in range(c0, c1):
                                i_prev += prev_err[sy, min(max(c + dx, 0), w - 1)]
            if e_reuse > e_up:
                for r in range(y0, y1):
                    for c in range(x0, x1):
                        reuse[r, c] = bicubic[r, c]
                        b = np.int32(bicubic[r, c]) - np.int32(y[r, c])
                        err[r, c] = np.uint16(b * b)
                for by in range(gy * g, min(bh, gy * g + g)):
                    for bx in range(gx * g, min(bw, gx * g + g)):
                        gated[by, bx] = not intra[by, bx]
                continue  # fresh stays 0 (it starts all zero)
            share = 0.0
            if i_up > 0:
                share = min(max((i_reuse - i_prev) / i_up, 0.0), 1.0)
            for by in range(gy * g, min(bh, gy * g + g)):
                for bx in range(gx * g, min(bw, gx * g + g)):
                    fresh[by, bx] = 0.0 if intra[by, bx] else share


class ReuseGate:
    """The gate of one stream: call it on each decoded frame, in decode order.

    Holds the shadow reconstruction of the previous frame (a uint8 plane of the LR luma size
    rounded up to even) and its squared error per pixel (uint16), about a quarter of the HR
    luma reconstruction's work per frame.
    """

    def __init__(self) -> None:
        self._shadow: np.ndarray | None = None
        self._err: np.ndarray | None = None
        self._scratch: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}

    def reset(self) -> None:
        """Forget the shadow reference (the next P frame is gated as if it had none)."""
        self._shadow = None
        self._err = None

    def _buffers(self, shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
        """Scratch planes for one LR size: half, residual, bicubic, and two each of the shadow
        and its error (the previous frame's and the one being made, in turns: reused, as fresh
        allocations cost page faults every frame)."""
        if shape not in self._scratch:
            h2, w2 = -(-shape[0] // 2), -(-shape[1] // 2)
            self._scratch = {shape: (np.empty((h2, w2), np.uint8), np.empty((h2, w2), np.float32),
                                     np.empty((2 * h2, 2 * w2), np.uint8),
                                     np.empty((2 * h2, 2 * w2), np.uint8), np.empty((2 * h2, 2 * w2), np.uint8),
                                     np.empty(shape, np.uint16), np.empty(shape, np.uint16))}
            self._shadow = self._err = None  # never one of the new buffers' turns
        return self._scratch[shape]

    def mask(self, frame: CodedFrame) -> np.ndarray | None:
        """bool (bh, bw) over the frame's motion blocks, True on the inter blocks it gates
        (None for a frame without a usable shadow reference: a key frame, the first frame, a
        new size); advances the shadow to this frame."""
        return self.judge(frame)[0]

    def judge(self, frame: CodedFrame) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(gated, fresh): ``mask``'s gated blocks and the ``MotionField.fresh`` shares of the
        frame's blocks (both None for a frame without a usable shadow reference); advances the
        shadow to this frame."""
        y = np.ascontiguousarray(frame.y)
        half, res, bicubic, *shadows, err_a, err_b = self._buffers(y.shape)
        _box_half(y, half)
        kernels.upscale_cubic(half, 2, _OFFS, _WTS, bicubic)
        h, w = y.shape
        prev, prev_err = self._shadow, self._err
        out = shadows[1] if prev is shadows[0] else shadows[0]
        err = err_b if prev_err is err_a else err_a
        if frame.is_key or prev is None or prev_err is None:
            out[:] = bicubic
            d = bicubic[:h, :w].astype(np.int32) - y
            np.multiply(d, d, out=err, casting="unsafe")  # at most 255^2: fits uint16
            self._shadow, self._err = out, err
            return None, None
        motion = frame.motion
        # The luma vectors on a half-size plane: the reconstruction kernel's chroma geometry
        # (2x2 blocks, vectors in 1/8 of a half-plane pixel = the codec's quarter pels).
        kernels.plane_kernel(2)(prev, half, half, motion.mv, motion.intra, MV_BLOCK_PX // 2,
                                2 * MV_UNITS_PER_PX, True, SHADOW_RESIDUAL, _OFFS, _WTS, out, res, *_BOX, 1)
        gated = np.zeros(motion.intra.shape, np.bool_)
        fresh = np.zeros(motion.intra.shape, np.float32)
        _choose(y, out[:h, :w], bicubic[:h, :w], np.ascontiguousarray(motion.intra, np.bool_),
                np.ascontiguousarray(motion.mv, np.int16), prev_err, GATE_PX // MV_BLOCK_PX, gated, fresh, err)
        self._shadow, self._err = out, err
        return gated, fresh

    def __call__(self, frame: CodedFrame) -> CodedFrame:
        """``frame`` with its gated blocks marked intra and its ``fresh`` shares set (the same
        object for a frame without a shadow reference)."""
        gated, fresh = self.judge(frame)
        if gated is None:
            return frame
        return replace(frame, motion=MotionField(frame.motion.mv, frame.motion.intra | gated, fresh))


def gate_frames(frames: Iterable[CodedFrame], enabled: bool = True) -> Iterator[CodedFrame]:
    """The decoded stream with the gate applied (``enabled`` False: unchanged, the ablation).
    Anything else in the stream (a chunk-end marker of a live runner) passes through as it is."""
    if not enabled:
        yield from frames
        return
    gate = ReuseGate()
    for frame in frames:
        yield gate(frame) if isinstance(frame, CodedFrame) else frame
