"""Scheduling a whole stream chunk by chunk; plan files; budget parsing for the CLI."""

from __future__ import annotations

import logging
import math
import os
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np

from ..errors import ConfigError
from ..graph import DependencyGraph, GraphBuilder, carry_out
from ..types import AnchorPlan, Chunk, CodedFrame, PatchGrid
from .base import Scheduler, get_scheduler

log = logging.getLogger(__name__)


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


def chunks_of(frames: Iterable[CodedFrame], chunk_frames: int = 60,
              patch_px: int = 64) -> Iterator[Chunk]:
    """Cut decode-order frames into chunks of ``chunk_frames`` (the last one may be shorter).

    A change of frame size ends the current chunk early; the next chunk has the new size's grid
    and no reference frame before it."""
    if chunk_frames < 1:
        raise ConfigError(f"expected chunk_frames >= 1, got {chunk_frames}")
    grid: PatchGrid | None = None
    prev: CodedFrame | None = None
    buf: list[CodedFrame] = []
    for frame in frames:
        if buf and frame.y.shape != buf[0].y.shape:
            yield Chunk(tuple(buf), grid, prev)
            prev, buf = None, []
        if grid is None or (grid.height, grid.width) != frame.y.shape:
            grid = PatchGrid(patch_px, frame.height, frame.width)
        buf.append(frame)
        if len(buf) == chunk_frames:
            yield Chunk(tuple(buf), grid, prev)
            prev, buf = buf[-1], []
    if buf:
        yield Chunk(tuple(buf), grid, prev)


def plan_stream(frames: Iterable[CodedFrame], scheduler: Scheduler | str, budget_fraction: float,
                chunk_frames: int = 60, patch_px: int = 64, *, edge_weights: bool = True,
                texture: bool = True,
                skip_chunk: Callable[[], bool] | None = None) -> Iterator[tuple[Chunk, AnchorPlan]]:
    """Schedule a stream chunk by chunk, carrying the estimated error from chunk to chunk.

    scheduler: a Scheduler or a registered name. Yields each chunk with its plan as soon as the
    chunk is complete. Chunks are cut as ``chunks_of`` cuts them: a change of frame size ends a
    chunk early and starts a new schedule at the new size (no error carried over). The graph
    (with the ablation options) is built only for schedulers that need it, frame by frame as
    frames arrive (``GraphBuilder``), so a chunk's last frame leaves only the assembly and the
    scheduler to run.
    skip_chunk: asked as each chunk's first frame arrives; when it returns True the chunk gets an
    empty plan, no graph is built for it (its main cost) and no error is carried past it (a
    live pipeline shedding load).
    """
    if chunk_frames < 1:
        raise ConfigError(f"expected chunk_frames >= 1, got {chunk_frames}")
    if isinstance(scheduler, str):
        scheduler = get_scheduler(scheduler)
    options = {"edge_weights": edge_weights, "texture": texture}
    if scheduler.needs_graph:  # an ablation switches a part of the model off
        options.update({k: v and options[k] for k, v in scheduler.graph_options.items()})
    grid: PatchGrid | None = None
    prev: CodedFrame | None = None
    carry: np.ndarray | None = None
    builder: GraphBuilder | None = None
    skip = False
    buf: list[CodedFrame] = []

    def finish() -> tuple[Chunk, AnchorPlan, np.ndarray | None]:
        chunk = Chunk(tuple(buf), grid, prev)
        if skip:
            return chunk, AnchorPlan(chunk.start, len(chunk), grid), None
        graph: DependencyGraph | None = None if builder is None else builder.build()
        plan = scheduler.plan(chunk, budget_fraction, graph=graph, carry_in=carry)
        log.debug("chunk at %d: %d anchors (%.2f%%)", chunk.start, len(plan),
                  100 * plan.anchor_fraction())
        return chunk, plan, (None if graph is None else carry_out(graph, plan, carry))

    for frame in frames:
        if buf and frame.y.shape != buf[0].y.shape:
            chunk, plan, _ = finish()
            yield chunk, plan
            log.info("frame size changed to %dx%d at frame %d: a new schedule starts",
                     frame.width, frame.height, frame.index)
            buf, prev, carry = [], None, None
        if grid is None or (grid.height, grid.width) != frame.y.shape:
            grid = PatchGrid(patch_px, frame.height, frame.width)
        if not buf:
            skip = skip_chunk is not None and bool(skip_chunk())
            builder = GraphBuilder(grid, prev, **options) if scheduler.needs_graph and not skip else None
        if builder is not None:
            builder.add(frame)
        buf.append(frame)
        if len(buf) == chunk_frames:
            chunk, plan, carry = finish()
            yield chunk, plan
            prev, buf = buf[-1], []
    if buf:
        chunk, plan, _ = finish()
        yield chunk, plan


def plan_to_file(frames: Iterable[CodedFrame], dest: str | os.PathLike | BinaryIO,
                 scheduler: Scheduler | str = "dag-greedy", budget_fraction: float = 0.05,
                 chunk_frames: int = 60, patch_px: int = 64) -> int:
    """``anchorsr plan``: schedule ``frames`` and write one plan per chunk; returns the count."""
    return write_plans(dest, (plan for _, plan in plan_stream(
        frames, scheduler, budget_fraction, chunk_frames, patch_px)))


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
