"""Frozen data types that the pipeline stages pass to one another.

    source -> decode -> chunk -> graph -> schedule -> sr -> reconstruct -> sink

Conventions used throughout:

* Planes are YUV 4:2:0, uint8, row-major ``(height, width)``. For an LR luma plane of
  ``(H, W)`` the chroma planes are ``(ceil(H/2), ceil(W/2))``.
* HR planes are exactly ``scale`` times their LR plane in each dimension (chroma included), so
  every LR sample owns a ``scale x scale`` cell of HR samples. A sink crops/pads to even sizes.
* Motion vectors are in quarter pels of the LR luma plane, one per 4x4 luma block, and point
  from the current frame to the reference: the block at ``(x, y)`` is predicted from
  ``(x + dx/4, y + dy/4)`` of the previous frame.
* Boxes are ``(y0, y1, x0, x1)``, half-open, in LR luma pixels.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .errors import ConfigError, PlanFormatError

MV_BLOCK_PX = 4  # motion field granularity, LR luma pixels
MV_UNITS_PER_PX = 4  # quarter pels
# The closed loop's models of how an LR frame was made from the HR one (ReuseConfig.down_filter,
# --lr-model): an antialiased bicubic reduction (the default) or the mean of each HR cell.
LR_MODELS = ("bicubic", "box")


@dataclass(frozen=True)
class MotionField:
    """Per 4x4 luma block motion of one frame.

    mv: int16 (ceil(H/4), ceil(W/4), 2), (dx, dy) in quarter pels of LR luma, towards the
        reference (previous frame).
    intra: bool (ceil(H/4), ceil(W/4)); True where the block has no motion vector (intra coded).
    fresh: float32 (ceil(H/4), ceil(W/4)) in [0, 1], or None where not measured: per inter
        block, the error that one reuse step adds there beyond what it carries from the
        reference, as a share of plain upsampling's error (the reuse gate measures it,
        ``anchorsr.reuse.gate``; the ``intra`` node bias counts it, docs/method.md §2.6); 0 on
        intra blocks.
    """

    mv: np.ndarray
    intra: np.ndarray
    fresh: np.ndarray | None = None

    @staticmethod
    def all_intra(height: int, width: int) -> "MotionField":
        bh, bw = -(-height // MV_BLOCK_PX), -(-width // MV_BLOCK_PX)
        return MotionField(np.zeros((bh, bw, 2), np.int16), np.ones((bh, bw), bool))

    @property
    def intra_fraction(self) -> float:
        return float(self.intra.mean()) if self.intra.size else 1.0


@dataclass(frozen=True, eq=False)
class CodedFrame:
    """One decoded LR frame with what the codec said about it.

    index: decode-order index from the start of the stream (0-based).
    pts / time: presentation timestamp in ``time_base`` units / seconds (None when unknown).
    kind: "I" (key/intra frame: no reference) or "P" (predicted from the previous frame).
    size_bytes: coded size of the frame's packet (the NeuroScaler residual proxy).
    y, u, v: uint8 planes, y (H, W), u and v (ceil(H/2), ceil(W/2)).
    motion: the frame's MotionField (all intra for I frames).
    """

    index: int
    pts: int | None
    time: float | None
    kind: str
    size_bytes: int
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    motion: MotionField

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def is_key(self) -> bool:
        return self.kind == "I"


@dataclass(frozen=True, eq=False)
class HRFrame:
    """A reconstructed HR frame: planes ``scale`` times the LR planes, uint8."""

    index: int
    pts: int | None
    time: float | None
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray


# The default patch size (``patch_px`` None, "auto"): COARSE_PATCH_PX, or FINE_PATCH_PX where
# coarse patches would cut the frame into fewer than FINE_BELOW_PATCHES. The scheduler's graph
# is sized for about that many patches a frame (1080p LR at 64 px has 510, where the scheduler's
# cost per chunk is measured). A patch is one node of the graph, and the graph keeps one error per
# node: where a moving object's intra blocks cover a tenth of a static patch, the model drops a
# tenth of that patch's anchored detail in every frame although the same pixels are lost each
# time. Measured (CRF 23, 60 frames, five clips from 320x136 to 960x540 LR), 32 px against 64 px
# patches lifted the gain kept over bicubic at 5% from 61.5% to 64.5% and the saving against
# NeuroScaler from 36% to 50%. Below 32 px the halo (the network's receptive radius, 4 px) makes
# the network see 1.56x the patch's pixels or more.
COARSE_PATCH_PX = 64
FINE_PATCH_PX = 32
FINE_BELOW_PATCHES = 500


def default_patch_px(height: int, width: int) -> int:
    """The patch size the pipeline uses for an LR frame of ``width`` x ``height`` when none is
    given: 64, or 32 where a 64 px grid has fewer than 500 patches (below 1080p)."""
    coarse = -(-height // COARSE_PATCH_PX) * -(-width // COARSE_PATCH_PX)
    return FINE_PATCH_PX if coarse < FINE_BELOW_PATCHES else COARSE_PATCH_PX


def grid_for(patch_px: int | None, height: int, width: int) -> "PatchGrid":
    """The patch grid of a frame: ``patch_px``, or the default for its size when None."""
    return PatchGrid(default_patch_px(height, width) if patch_px is None else patch_px, height, width)


@dataclass(frozen=True)
class PatchGrid:
    """The LR luma plane cut into ``patch_px`` x ``patch_px`` patches, row-major.

    Edge patches are smaller (never dropped). ``patch_px`` is even so every box starts on a
    chroma sample. Patch ``p`` sits at row ``p // cols`` and column ``p % cols``.
    """

    patch_px: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.patch_px < 2 or self.patch_px % 2:
            raise ConfigError(f"patch_px must be an even number >= 2, got {self.patch_px}")
        if self.height < 1 or self.width < 1:
            raise ConfigError(f"frame size must be positive, got {self.width}x{self.height}")

    @property
    def rows(self) -> int:
        return -(-self.height // self.patch_px)

    @property
    def cols(self) -> int:
        return -(-self.width // self.patch_px)

    @property
    def n_patches(self) -> int:
        return self.rows * self.cols

    def boxes(self) -> np.ndarray:
        """int64 (N, 4): (y0, y1, x0, x1) of every patch in LR luma pixels."""
        r, c = np.divmod(np.arange(self.n_patches), self.cols)
        y0, x0 = r * self.patch_px, c * self.patch_px
        y1 = np.minimum(y0 + self.patch_px, self.height)
        x1 = np.minimum(x0 + self.patch_px, self.width)
        return np.stack([y0, y1, x0, x1], axis=1).astype(np.int64)

    def areas(self) -> np.ndarray:
        """int64 (N,): luma pixels in each patch (edge patches are smaller)."""
        b = self.boxes()
        return (b[:, 1] - b[:, 0]) * (b[:, 3] - b[:, 2])

    def patch_index_map(self) -> np.ndarray:
        """int32 (H, W): the patch each LR luma pixel belongs to."""
        rows = np.arange(self.height) // self.patch_px
        cols = np.arange(self.width) // self.patch_px
        return (rows[:, None] * self.cols + cols[None, :]).astype(np.int32)


def chroma_box(box: Sequence[int]) -> tuple[int, int, int, int]:
    """The 4:2:0 chroma box covering an LR luma box whose origin is even."""
    y0, y1, x0, x1 = (int(b) for b in box)
    return y0 // 2, -(-y1 // 2), x0 // 2, -(-x1 // 2)


# An HR patch source: given a frame and K LR luma boxes (int (K, 4)) and the scale, return K
# (Y, U, V) uint8 triples, Y of shape (scale*(y1-y0), scale*(x1-x0)) and U, V of
# scale x the chroma_box size. The SR network is one; a bicubic stand-in or the ground truth in
# tests are others.
HRPatch = tuple[np.ndarray, np.ndarray, np.ndarray]
HRPatchSource = Callable[[CodedFrame, np.ndarray, int], list[HRPatch]]


@dataclass(frozen=True, eq=False)
class Chunk:
    """Consecutive CodedFrames (decode order) scheduled together, and their patch grid."""

    frames: tuple[CodedFrame, ...]
    grid: PatchGrid
    prev: CodedFrame | None = None  # the frame before frames[0] (None at stream start)

    @property
    def start(self) -> int:
        return self.frames[0].index

    def __len__(self) -> int:
        return len(self.frames)


_PLAN_MAGIC = b"ASRP"
_PLAN_VERSION = 1
_PLAN_HEADER = struct.Struct("<4sBxxxQIHHHI")


@dataclass(frozen=True, eq=False)
class AnchorPlan:
    """The ordered anchors of one chunk: every smaller budget is a prefix of the same plan.

    chunk_start: stream index of the chunk's first frame.
    n_frames: frames in the chunk.
    grid: the patch grid the patch indices refer to.
    frames: int32 (K,) frame offsets within the chunk (0..n_frames-1), in pick order.
    patches: int32 (K,) patch indices (0..grid.n_patches-1), in pick order.
    """

    chunk_start: int
    n_frames: int
    grid: PatchGrid
    frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    patches: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def __post_init__(self) -> None:
        f = np.asarray(self.frames, np.int32).reshape(-1)
        p = np.asarray(self.patches, np.int32).reshape(-1)
        if f.shape != p.shape:
            raise ConfigError(f"plan frames and patches differ in length: {f.size} vs {p.size}")
        if f.size and (f.min() < 0 or f.max() >= self.n_frames):
            raise ConfigError(f"plan frame offsets must lie in 0..{self.n_frames - 1}")
        if p.size and (p.min() < 0 or p.max() >= self.grid.n_patches):
            raise ConfigError(f"plan patch indices must lie in 0..{self.grid.n_patches - 1}")
        object.__setattr__(self, "frames", f)
        object.__setattr__(self, "patches", p)

    def __len__(self) -> int:
        return int(self.frames.size)

    def prefix(self, k: int) -> "AnchorPlan":
        """The plan of the first ``k`` anchors."""
        return AnchorPlan(self.chunk_start, self.n_frames, self.grid, self.frames[:k], self.patches[:k])

    def prefix_for_budget(self, budget_fraction: float) -> "AnchorPlan":
        """The longest prefix whose anchor area is at most ``budget_fraction`` of the chunk's LR pixels."""
        areas = self.grid.areas()[self.patches]
        limit = budget_fraction * self.n_frames * self.grid.height * self.grid.width
        k = int(np.searchsorted(np.cumsum(areas), limit + 1e-9, side="right"))
        return self.prefix(k)

    def at(self, t: int) -> np.ndarray:
        """int32 (K,): the patch indices anchored at frame offset ``t``, in pick order."""
        return self.patches[self.frames == t]

    def boxes_at(self, t: int) -> np.ndarray:
        """int64 (K, 4): the LR luma boxes of the anchors at frame offset ``t``, in pick order."""
        return self.grid.boxes()[self.at(t)]

    def area_at(self, t: int) -> int:
        """LR luma pixels anchored at frame offset ``t``."""
        return int(self.grid.areas()[self.at(t)].sum())

    def mask(self) -> np.ndarray:
        """bool (n_frames, N): True at anchored (frame, patch) nodes."""
        m = np.zeros((self.n_frames, self.grid.n_patches), bool)
        m[self.frames, self.patches] = True
        return m

    def anchor_fraction(self) -> float:
        """Share of the chunk's LR luma pixels that are anchors."""
        area = float(self.grid.areas()[self.patches].sum())
        return area / (self.n_frames * self.grid.height * self.grid.width)

    def to_bytes(self) -> bytes:
        head = _PLAN_HEADER.pack(
            _PLAN_MAGIC, _PLAN_VERSION, self.chunk_start, self.n_frames,
            self.grid.patch_px, self.grid.height, self.grid.width, len(self),
        )
        return head + self.frames.astype("<u2").tobytes() + self.patches.astype("<u4").tobytes()

    @staticmethod
    def from_bytes(data: bytes) -> "AnchorPlan":
        plan, used = AnchorPlan.read_from(data, 0)
        if used != len(data):
            raise PlanFormatError(f"expected one plan of {used} bytes, got {len(data)} bytes")
        return plan

    @staticmethod
    def read_from(data: bytes, offset: int) -> tuple["AnchorPlan", int]:
        """Parse one plan at ``offset``; return it and the offset just past it."""
        if len(data) - offset < _PLAN_HEADER.size:
            raise PlanFormatError(
                f"expected a {_PLAN_HEADER.size}-byte plan header, got {len(data) - offset} bytes")
        magic, version, start, n_frames, patch_px, h, w, k = _PLAN_HEADER.unpack_from(data, offset)
        if magic != _PLAN_MAGIC:
            raise PlanFormatError(f"expected plan magic {_PLAN_MAGIC!r}, got {magic!r}")
        if version != _PLAN_VERSION:
            raise PlanFormatError(f"expected plan version {_PLAN_VERSION}, got {version}")
        body = offset + _PLAN_HEADER.size
        end = body + 6 * k
        if end > len(data):
            raise PlanFormatError(f"plan lists {k} anchors but only {len(data) - body} bytes follow")
        frames = np.frombuffer(data, "<u2", k, body).astype(np.int32)
        patches = np.frombuffer(data, "<u4", k, body + 2 * k).astype(np.int32)
        try:
            grid = PatchGrid(patch_px, h, w)
            return AnchorPlan(start, n_frames, grid, frames, patches), end
        except ConfigError as exc:
            raise PlanFormatError(f"invalid plan: {exc}") from None


@dataclass(frozen=True, eq=False)
class PlannedFrame:
    """A frame with the plan of its chunk: its anchors are the plan's at offset ``t``.

    A frame that no plan covers (client mode) has an empty one-frame plan on its own grid.
    """

    frame: CodedFrame
    plan: AnchorPlan
    t: int

    @property
    def boxes(self) -> np.ndarray:
        """int64 (K, 4): LR luma boxes of the frame's anchors."""
        return self.plan.boxes_at(self.t)

    @property
    def anchor_area(self) -> int:
        return self.plan.area_at(self.t)
