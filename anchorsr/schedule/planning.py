"""Scheduling a whole stream chunk by chunk; plan files; budget parsing for the CLI."""

from __future__ import annotations

import logging
import math
import os
from typing import BinaryIO, Iterable, Iterator

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
    """Cut decode-order frames into chunks of ``chunk_frames`` (the last one may be shorter)."""
    if chunk_frames < 1:
        raise ConfigError(f"expected chunk_frames >= 1, got {chunk_frames}")
    grid: PatchGrid | None = None
    prev: CodedFrame | None = None
    buf: list[CodedFrame] = []
    for frame in frames:
        if grid is None:
            grid = PatchGrid(patch_px, frame.height, frame.width)
        buf.append(frame)
        if len(buf) == chunk_frames:
            yield Chunk(tuple(buf), grid, prev)
            prev, buf = buf[-1], []
    if buf:
        yield Chunk(tuple(buf), grid, prev)


class _LiveGraph:
    """Builds each chunk's graph frame by frame as frames pass through (``GraphBuilder``), so
    that when a chunk's last frame arrives only the final assembly is left."""

    def __init__(self, patch_px: int, **options) -> None:
        self.patch_px, self.options = patch_px, options
        self.grid: PatchGrid | None = None
        self.prev: CodedFrame | None = None
        self.builder: GraphBuilder | None = None

    def feed(self, frames: Iterable[CodedFrame]) -> Iterator[CodedFrame]:
        for frame in frames:
            if self.grid is None:  # as chunks_of: the first frame's size
                self.grid = PatchGrid(self.patch_px, frame.height, frame.width)
            if self.builder is None:
                self.builder = GraphBuilder(self.grid, self.prev, **self.options)
            self.builder.add(frame)
            yield frame

    def take(self, chunk: Chunk) -> DependencyGraph:
        """The graph of ``chunk``, whose frames have all been fed; starts the next chunk's."""
        graph = self.builder.build()
        self.builder, self.prev = None, chunk.frames[-1]
        return graph


def plan_stream(frames: Iterable[CodedFrame], scheduler: Scheduler | str, budget_fraction: float,
                chunk_frames: int = 60, patch_px: int = 64, *, edge_weights: bool = True,
                texture: bool = True) -> Iterator[tuple[Chunk, AnchorPlan]]:
    """Schedule a stream chunk by chunk, carrying the estimated error from chunk to chunk.

    scheduler: a Scheduler or a registered name. Yields each chunk with its plan as soon as the
    chunk is complete. The graph (with the ablation options) is built only for schedulers that
    need it, frame by frame as frames arrive.
    """
    if isinstance(scheduler, str):
        scheduler = get_scheduler(scheduler)
    options = {"edge_weights": edge_weights, "texture": texture}
    if scheduler.needs_graph:  # an ablation switches a part of the model off
        options.update({k: v and options[k] for k, v in scheduler.graph_options.items()})
    live = _LiveGraph(patch_px, **options) if scheduler.needs_graph else None
    carry: np.ndarray | None = None
    for chunk in chunks_of(frames if live is None else live.feed(frames), chunk_frames, patch_px):
        graph: DependencyGraph | None = None if live is None else live.take(chunk)
        plan = scheduler.plan(chunk, budget_fraction, graph=graph, carry_in=carry)
        if graph is not None:
            carry = carry_out(graph, plan, carry)
        log.debug("chunk at %d: %d anchors (%.2f%%)", chunk.start, len(plan),
                  100 * plan.anchor_fraction())
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
