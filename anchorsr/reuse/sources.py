"""HR patch sources that stand in for the SR network (HRPatchSource, see anchorsr.types)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..types import CodedFrame, HRPatch, chroma_box
from .reconstruct import upscale_bicubic


def crop_patches(planes: Sequence[np.ndarray], boxes: np.ndarray, scale: int) -> list[HRPatch]:
    """Cut HR patches for LR luma ``boxes`` out of full HR planes (Y, U, V)."""
    out = []
    for box in boxes:
        y0, y1, x0, x1 = (int(b) * scale for b in box)
        c0, c1, c2, c3 = (c * scale for c in chroma_box(box))
        out.append((planes[0][y0:y1, x0:x1].copy(), planes[1][c0:c1, c2:c3].copy(),
                    planes[2][c0:c1, c2:c3].copy()))
    return out


class BicubicPatchSource:
    """Bicubic upscaling of the LR frame: the stand-in 'SR network' (no learned detail)."""

    def __init__(self) -> None:
        # the last frame upscaled, keyed by the frame object itself: one source serves every
        # stream of a server, whose frames share indices (and sizes need not match)
        self._cache: tuple[CodedFrame, int, tuple[np.ndarray, ...]] | None = None

    def __call__(self, frame: CodedFrame, boxes: np.ndarray, scale: int) -> list[HRPatch]:
        cache = self._cache  # one read: SR workers of several streams call this concurrently
        if cache is None or cache[0] is not frame or cache[1] != scale:
            cache = self._cache = (frame, scale, upscale_bicubic(frame.y, frame.u, frame.v, scale))
        return crop_patches(cache[2], boxes, scale)


class GroundTruthPatchSource:
    """Patches cut from known HR frames (tests and oracle experiments).

    hr_frames: frame index -> (Y, U, V) HR planes, chroma ``scale`` x the LR chroma size.
    """

    def __init__(self, hr_frames: Callable[[int], Sequence[np.ndarray]] | dict) -> None:
        self._lookup = hr_frames.__getitem__ if isinstance(hr_frames, dict) else hr_frames

    def __call__(self, frame: CodedFrame, boxes: np.ndarray, scale: int) -> list[HRPatch]:
        return crop_patches(self._lookup(frame.index), boxes, scale)
