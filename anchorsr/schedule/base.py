"""The scheduler seam: one small base class and a registry of schedulers by name."""

from __future__ import annotations

import abc
from typing import Callable, ClassVar

import numpy as np

from ..errors import ConfigError
from ..graph import DependencyGraph, build_graph
from ..types import AnchorPlan, Chunk

_REGISTRY: dict[str, type["Scheduler"]] = {}


class Scheduler(abc.ABC):
    """Chooses the anchors of one chunk: ``chunk metadata, budget -> ordered anchor plan``.

    ``budget_fraction`` is the share of the chunk's LR luma pixels that may go through the SR
    network. Schedulers whose plan is a greedy order return nested plans: the plan for a smaller
    budget is a prefix (``AnchorPlan.prefix_for_budget``) of the plan for a larger one.

    ``graph`` and ``carry_in`` are given to schedulers that set ``needs_graph``; a caller that
    already built the chunk's graph passes it so it is built once.
    """

    name: ClassVar[str] = ""
    needs_graph: ClassVar[bool] = False
    # build_graph options the scheduler's graph is built with (the ablations turn terms off:
    # False, or None for the anchor weight).
    graph_options: ClassVar[dict[str, object]] = {}
    # True: the scheduler plans on the texture term whatever node bias the caller gives (a
    # published model that is compared as published).
    published_bias: ClassVar[bool] = False

    @abc.abstractmethod
    def plan(self, chunk: Chunk, budget_fraction: float, *, graph: DependencyGraph | None = None,
             carry_in: np.ndarray | None = None) -> AnchorPlan:
        """The ordered anchors of ``chunk`` within ``budget_fraction`` of its LR pixels."""

    def _graph(self, chunk: Chunk, graph: DependencyGraph | None) -> DependencyGraph:
        return build_graph(chunk, **self.graph_options) if graph is None else graph


def register(name: str) -> Callable[[type[Scheduler]], type[Scheduler]]:
    """Class decorator: make a Scheduler available under ``name`` (duplicates rejected)."""

    def add(cls: type[Scheduler]) -> type[Scheduler]:
        if name in _REGISTRY:
            raise ConfigError(f"a scheduler named {name!r} is already registered "
                              f"({_REGISTRY[name].__qualname__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return add


def available_schedulers() -> list[str]:
    """Registered scheduler names, sorted."""
    return sorted(_REGISTRY)


def get_scheduler(name: str, **options) -> Scheduler:
    """A new scheduler registered as ``name``, constructed with ``options``."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"expected a scheduler name in {available_schedulers()}, got {name!r}") from None
    return cls(**options)


def check_budget(budget_fraction: float) -> float:
    """``budget_fraction`` as a float in [0, 1], or ConfigError."""
    b = float(budget_fraction)
    if not 0.0 <= b <= 1.0:  # also rejects NaN
        raise ConfigError(f"expected a budget fraction in [0, 1], got {budget_fraction!r}")
    return b


def budget_area(chunk: Chunk, budget_fraction: float) -> float:
    """The anchor area (LR luma pixels) a budget allows in ``chunk``."""
    g = chunk.grid
    return check_budget(budget_fraction) * len(chunk) * g.height * g.width


def make_plan(chunk: Chunk, frames, patches) -> AnchorPlan:
    return AnchorPlan(chunk.start, len(chunk), chunk.grid, np.asarray(frames, np.int32),
                      np.asarray(patches, np.int32))


def whole_frames_plan(chunk: Chunk, frame_offsets) -> AnchorPlan:
    """A plan anchoring every patch of the given frames, in the given frame order."""
    n = chunk.grid.n_patches
    f = np.asarray(frame_offsets, np.int64)
    return make_plan(chunk, np.repeat(f, n), np.tile(np.arange(n), f.size))


def frames_for_budget(chunk: Chunk, budget_fraction: float) -> int:
    """How many whole frames a budget buys (budget pixels / frame pixels, rounded down)."""
    return int(np.floor(check_budget(budget_fraction) * len(chunk) + 1e-9))


def key_offsets(chunk: Chunk) -> np.ndarray:
    """int64: offsets of the chunk's key frames."""
    return np.flatnonzero([f.is_key for f in chunk.frames])
