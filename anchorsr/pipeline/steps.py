"""The pipeline's stages as step functions over the frozen data types (``anchorsr.types``).

    CodedFrame --plan_groups--> [PlannedFrame] --fetch_patches--> HR patches --rebuild--> HRFrame

Two runners drive them: the sequential one (``enhance.py``: files, the demo, benchmarks) and the
threaded real-time one (``live.py``: live input, ``serve``). Neither chunks, schedules, pairs
plans with frames or pastes anchors in its own way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator

from ..reuse import BicubicPatchSource, Reconstructor, gate_frames
from ..schedule import pair_plans, plan_stream, read_plans
from ..types import AnchorPlan, Chunk, CodedFrame, HRFrame, HRPatch, HRPatchSource, PlannedFrame
from .options import PipelineOptions

log = logging.getLogger(__name__)


@dataclass
class SRCounts:
    """LR pixels seen, those enhanced by the SR network, and corrupt packets skipped."""

    anchor_pixels: int = 0
    lr_pixels: int = 0
    corrupt_packets: int = 0

    @property
    def sr_share(self) -> float:
        return self.anchor_pixels / self.lr_pixels if self.lr_pixels else 0.0


def make_patch_source(model: str, scale: int, device: str = "cpu", engine: str = "auto",
                      realtime: bool = False) -> HRPatchSource:
    """The HR patch source named by ``--model`` (the SR network on ``device``, run by the
    ``--sr-engine`` ``engine``; "auto" depends on whether this is a real-time live run,
    ``realtime``: see ``anchorsr.sr.contract.resolve_engine``), or the bicubic stand-in."""
    if model == "bicubic":
        return BicubicPatchSource()
    from ..sr import SRPatchSource, open_model

    return SRPatchSource(open_model(scale, None if model == "default" else model, device=device, engine=engine,
                                    realtime=realtime))


def plan_groups(frames: Iterable[CodedFrame], options: PipelineOptions, *,
                plans: list[AnchorPlan] | None = None,
                skip_chunk: Callable[[], bool] | None = None,
                scheduler=None) -> Iterator[list[PlannedFrame]]:
    """Frames with their anchors, one group per plan as soon as it is known.

    From the scheduler, a chunk at a time (its frames wait for its last one; a size change starts
    a new schedule, see ``plan_stream``); in client mode (``plans``, else read from
    ``options.plan_path`` now, so a bad plan file fails before any frame), a frame at a time.
    skip_chunk: as ``plan_stream``'s (a live runner shedding load).
    scheduler: the Scheduler object to plan with (None: ``options.scheduler`` by name), so that
    the caller can read what it leaves after each plan (``last_gains``).
    The reuse gate (``options.gate``) is applied to the frames first, so the graph the scheduler
    plans on and the reconstruction of the PlannedFrames see the same gated motion fields.
    """
    frames = gate_frames(frames, options.gate)
    if plans is None and options.plan_path is not None:
        plans = read_plans(options.plan_path)
    if plans is not None:
        return ([pf] for pf in pair_plans(frames, plans, options.patch_px))
    scheduler = options.scheduler if scheduler is None else scheduler
    return planned_groups(plan_stream(frames, scheduler, options.budget_fraction,
                                      options.chunk_frames, options.patch_px, skip_chunk=skip_chunk,
                                      node_bias=graph_node_bias(options), scale=options.scale,
                                      anchor_weight=options.reuse_config().anchor_weight))


def planned_groups(chunk_plans: Iterable[tuple[Chunk, AnchorPlan]]) -> Iterator[list[PlannedFrame]]:
    """Each chunk's frames with its plan (``plan_stream``'s output), one group per chunk."""
    return ([PlannedFrame(f, plan, t) for t, f in enumerate(chunk.frames)] for chunk, plan in chunk_plans)


def graph_node_bias(options: PipelineOptions):
    """The node bias the stream's graphs use (``options.node_bias``): the predictor fitted to the
    model's weights (the shipped ones for "default" and "bicubic"), the intra pixels' texture, or
    None (the texture term)."""
    from ..graph import node_bias_for

    if options.node_bias != "predictor":
        return node_bias_for(options.node_bias, options.scale)

    weights = None if options.model in ("default", "bicubic") else options.model
    return node_bias_for("predictor", options.scale, weights)


def with_budget(group: list[PlannedFrame], plan: AnchorPlan) -> list[PlannedFrame]:
    """The group with ``plan`` (a prefix of its own, cut to a live budget) in place of its plan."""
    return [replace(pf, plan=plan) for pf in group]


def fetch_patches(source: HRPatchSource, pf: PlannedFrame, scale: int) -> list[HRPatch] | None:
    """The HR patches of the frame's anchors (None when it has none)."""
    boxes = pf.boxes
    return source(pf.frame, boxes, scale) if len(boxes) else None


def rebuild(rec: Reconstructor, pf: PlannedFrame, patches: list[HRPatch] | None,
            down_filter: str | None = None) -> HRFrame:
    """Reconstruct the frame at HR, pasting ``patches`` over its anchors (None: reuse alone).
    down_filter: as ``Reconstructor.step``'s (a live pipeline's light reconstruction)."""
    return rec.step(pf.frame, pf.boxes if patches is not None else None, patches, down_filter)


def count(counts: SRCounts, pf: PlannedFrame, anchored: bool) -> None:
    """Add the frame's LR pixels, and its anchors' when their patches were pasted."""
    counts.lr_pixels += pf.frame.height * pf.frame.width
    counts.anchor_pixels += pf.anchor_area if anchored else 0


def size_changed(last: tuple[int, int] | None, frame: CodedFrame, name: str = "stream") -> bool:
    """Whether ``frame`` has another size than the frame before (``last``, its luma shape);
    logs the restart a change means (a new schedule, a reconstruction without reference)."""
    if last is None or last == frame.y.shape:
        return False
    log.warning("%s: resolution changed to %dx%d at frame %d: restarting its pipeline",
                name, frame.width, frame.height, frame.index)
    return True
