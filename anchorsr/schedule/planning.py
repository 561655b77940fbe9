"""Scheduling a whole stream chunk by chunk; plan files and pairing them with frames; budget
parsing for the CLI."""

from __future__ import annotations

import logging
import math
import os
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np

from ..errors import ConfigError, PlanFormatError
from ..graph import DependencyGraph, GraphBuilder, carry_out
from ..types import AnchorPlan, Chunk, CodedFrame, PatchGrid, PlannedFrame, grid_for
from .base import Scheduler, get_scheduler

log = logging.getLogger(__name__)

# Put in a frame stream, it ends the chunk in progress now (a live input that paused: its
# frames are planned at once instead of waiting for frames that may not come).
CHUNK_END = object()


def parse_budget(text: str | float) -> float:
    """A budget as a fraction of LR pixels: ``"5%"`` -> 0.05, ``"0.05"`` -> 0.05.

    Raises ConfigError unless the value is a finite number in [0, 1] (0%..100%).
    """
    s = str(text).strip()
    try:
        value = float(s[:-1]) / 100.0 if s.endswith("%") else float(s)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ConfigError(f"expected a budget such as '5%' or '0.05' (0% to 100%), got {text!r}")
    return value


def _cut(frames: Iterable[CodedFrame], chunk_frames: int, patch_px: int | None
         ) -> Iterator[Chunk | tuple[CodedFrame, PatchGrid, CodedFrame | None, bool]]:
    """The chunking of ``chunks_of``, frame by frame: yields (frame, grid, prev, first) as each
    frame arrives (first: it opens a chunk, whose reference frame before it is prev), and each
    Chunk as soon as it is complete (after its last frame, before the first frame of a new
    size, or at a ``CHUNK_END`` in ``frames``). patch_px None: each size's default
    (``types.default_patch_px``)."""
    if chunk_frames < 1:
        raise ConfigError(f"expected chunk_frames >= 1, got {chunk_frames}")
    grid: PatchGrid | None = None
    prev: CodedFrame | None = None
    buf: list[CodedFrame] = []
    for frame in frames:
        if frame is CHUNK_END:
            if buf:  # a short chunk; the next one goes on from its last frame
                yield Chunk(tuple(buf), grid, prev)
                prev, buf = buf[-1], []
            continue
        if buf and frame.y.shape != buf[0].y.shape:
            yield Chunk(tuple(buf), grid, prev)
            log.info("frame size changed to %dx%d at frame %d: a new chunk and grid start",
                     frame.width, frame.height, frame.index)
            prev, buf = None, []
        if prev is not None and not buf and prev.y.shape != frame.y.shape:
            # the size changed exactly at a chunk boundary: the frame before is no reference
            log.info("frame size changed to %dx%d at frame %d: a new grid starts",
                     frame.width, frame.height, frame.index)
            prev = None
        if grid is None or (grid.height, grid.width) != frame.y.shape:
            grid = grid_for(patch_px, frame.height, frame.width)
        yield frame, grid, prev, not buf
        buf.append(frame)
        if len(buf) == chunk_frames:
            yield Chunk(tuple(buf), grid, prev)
            prev, buf = buf[-1], []
    if buf:
        yield Chunk(tuple(buf), grid, prev)


def chunks_of(frames: Iterable[CodedFrame], chunk_frames: int = 60,
              patch_px: int | None = None) -> Iterator[Chunk]:
    """Cut decode-order frames into chunks of ``chunk_frames`` (the last one may be shorter),
    on a grid of ``patch_px`` patches (None: the default for the frame size,
    ``types.default_patch_px``).

    A change of frame size ends the current chunk early (or falls on its end); the next chunk has
    the new size's grid and no reference frame before it."""
    return (item for item in _cut(frames, chunk_frames, patch_px) if isinstance(item, Chunk))


def plan_stream(frames: Iterable[CodedFrame], scheduler: Scheduler | str, budget_fraction: float,
                chunk_frames: int = 60, patch_px: int | None = None, *, edge_weights: bool = True,
                texture: bool = True, scale: int | None = None,
                skip_chunk: Callable[[], bool] | None = None,
                node_bias: Callable | None = None,
                graphs: Callable[[Chunk, dict], DependencyGraph] | None = None,
                anchor_weight: float | None = None
                ) -> Iterator[tuple[Chunk, AnchorPlan]]:
    """Schedule a stream chunk by chunk, carrying the estimated error from chunk to chunk.

    scheduler: a Scheduler or a registered name. Yields each chunk with its plan as soon as the
    chunk is complete. Chunks are cut as ``chunks_of`` cuts them: a change of frame size ends a
    chunk early and starts a new schedule at the new size (no error carried over). The graph
    (with the ablation options) is built only for schedulers that need it, frame by frame as
    frames arrive (``GraphBuilder``), so a chunk's last frame leaves only the assembly and the
    scheduler to run. A ``CHUNK_END`` among the frames ends the chunk in progress early.
    skip_chunk: asked as each chunk's first frame arrives; when it returns True the chunk gets an
    empty plan, no graph is built for it (its main cost) and no error is carried past it (a
    live pipeline shedding load).
    node_bias: the graph's node bias, ``(frame, ref, grid) -> (N,)`` (``graph.node_bias_for``);
    None: the texture term (always, for a scheduler with ``published_bias``). scale: the output
    scale, for the edges' detail retention (``build_graph``); None: edges without it.
    anchor_weight: the reconstruction's blend of P-frame anchors with reuse
    (``ReuseConfig.anchor_weight``), which the graph then models (``build_graph``); None: the
    graph takes an anchor to replace its node's whole error.
    graphs: ``(chunk, options) -> graph``, called when a chunk is complete instead of building its
    graph frame by frame; it must give what ``build_graph(chunk, **options)`` gives (options:
    edge_weights, texture, retention, node_bias, scale, anchor_weight). For a caller that plans the same stream many times (the
    quality benchmark) and builds each graph once.
    """
    if isinstance(scheduler, str):
        scheduler = get_scheduler(scheduler)
    options = {"edge_weights": edge_weights, "texture": texture, "retention": True,
               "anchor_weight": anchor_weight}
    if scheduler.needs_graph:  # an ablation switches a part of the model off (False or None)
        options.update({k: v and options[k] for k, v in scheduler.graph_options.items()})
    options["node_bias"] = None if scheduler.published_bias else node_bias
    options["scale"] = scale
    carry: np.ndarray | None = None
    builder: GraphBuilder | None = None
    skip = False
    for item in _cut(frames, chunk_frames, patch_px):
        if not isinstance(item, Chunk):
            frame, grid, prev, first = item
            if first:
                skip = skip_chunk is not None and bool(skip_chunk())
                incremental = scheduler.needs_graph and not skip and graphs is None
                builder = GraphBuilder(grid, prev, **options) if incremental else None
            if builder is not None:
                builder.add(frame)
            continue
        chunk = item
        if skip:
            carry = None
            yield chunk, AnchorPlan(chunk.start, len(chunk), chunk.grid)
            continue
        graph: DependencyGraph | None = None
        if builder is not None:
            graph = builder.build()
        elif graphs is not None and scheduler.needs_graph:
            graph = graphs(chunk, dict(options))
        carry_in = carry if chunk.prev is not None else None  # a new size starts afresh
        plan = scheduler.plan(chunk, budget_fraction, graph=graph, carry_in=carry_in)
        log.debug("chunk at %d: %d anchors (%.2f%%)", chunk.start, len(plan),
                  100 * plan.anchor_fraction())
        yield chunk, plan
        # The error this chunk hands on, worked out after its plan has gone downstream (only a
        # full chunk has a successor of the same size).
        full = len(chunk) == chunk_frames and graph is not None
        carry = carry_out(graph, plan, carry_in) if full else None


def plan_to_file(frames: Iterable[CodedFrame], dest: str | os.PathLike | BinaryIO,
                 scheduler: Scheduler | str = "dag-greedy", budget_fraction: float = 0.05,
                 chunk_frames: int = 60, patch_px: int | None = None, scale: int | None = None,
                 anchor_weight: float | None = None) -> int:
    """``anchorsr plan``: schedule ``frames`` and write one plan per chunk; returns the count."""
    return write_plans(dest, (plan for _, plan in plan_stream(
        frames, scheduler, budget_fraction, chunk_frames, patch_px, scale=scale,
        anchor_weight=anchor_weight)))


def write_plans(dest: str | os.PathLike | BinaryIO, plans: Iterable[AnchorPlan]) -> int:
    """Write plans back to back (``AnchorPlan.to_bytes``); returns the number written."""
    if hasattr(dest, "write"):
        count = 0
        for plan in plans:
            dest.write(plan.to_bytes())
            count += 1
        return count
    with open(dest, "wb") as fh:
        return write_plans(fh, plans)


def read_plans(source: str | os.PathLike | bytes) -> list[AnchorPlan]:
    """All plans of a plan file (or of its bytes), in order. Raises PlanFormatError."""
    if not isinstance(source, (bytes, bytearray)):
        with open(source, "rb") as fh:
            source = fh.read()
    plans, offset = [], 0
    while offset < len(source):
        plan, offset = AnchorPlan.read_from(source, offset)
        plans.append(plan)
    return plans


def pair_plans(frames: Iterable[CodedFrame], plans: list[AnchorPlan],
               patch_px: int | None = None) -> Iterator[PlannedFrame]:
    """Client mode: each frame with the plan (of a plan file) that covers it, matched by stream
    index. A frame no plan covers gets an empty one-frame plan; a plan whose frame size is not
    the frame's raises PlanFormatError."""
    by_start = {p.chunk_start: p for p in plans}
    px = plans[0].grid.patch_px if plans else patch_px
    current: AnchorPlan | None = None
    for frame in frames:
        current = by_start.get(frame.index, current)
        if current is None or not current.chunk_start <= frame.index < current.chunk_start + current.n_frames:
            yield PlannedFrame(frame, AnchorPlan(frame.index, 1, grid_for(px, frame.height, frame.width)), 0)
        elif (current.grid.height, current.grid.width) != frame.y.shape:
            raise PlanFormatError(f"plan for frames {current.chunk_start}.. expects "
                                  f"{current.grid.width}x{current.grid.height}, the stream has "
                                  f"{frame.width}x{frame.height}")
        else:
            yield PlannedFrame(frame, current, frame.index - current.chunk_start)
