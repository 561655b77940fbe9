"""Sequential enhancement of one input into one output file: decode -> reconstruct -> encode.

(The live, pipelined and deadline-aware version belongs to ``anchorsr serve``; this is the
straight path the CLI's ``enhance`` and the demo use.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import ConfigError, PlanFormatError
from ..schedule import get_scheduler, plan_stream, read_plans
from ..reuse import BicubicPatchSource, Reconstructor, ReuseConfig
from ..stream import EncodeSettings, VideoSource, VideoWriter, resize_yuv
from ..types import AnchorPlan, CodedFrame, HRFrame, HRPatchSource, PatchGrid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnhanceOptions:
    """What ``anchorsr enhance`` does. ``plan_path`` (client mode) replaces the scheduler.

    model: "default" (the shipped SR network for ``scale``), "bicubic" (stand-in, no network),
    or a path to a model file.
    """

    scale: int = 2
    loop: str = "closed"
    scheduler: str = "dag-greedy"
    budget_fraction: float = 0.05
    chunk_frames: int = 60
    patch_px: int = 64
    model: str = "default"
    plan_path: str | None = None
    transcode: bool = True
    crf: float = 18.0
    timeout_s: float = 10.0
    max_frames: int | None = None
    audio: bool = True  # pass the input's audio through (copied, or encoded to AAC)
    fps: float | None = None  # override the input's frame rate (frames re-timed at it)

    def __post_init__(self) -> None:
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"fps must be > 0, got {self.fps}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"max_frames must be >= 1, got {self.max_frames}")
        if not 0.0 <= self.budget_fraction <= 1.0:
            raise ConfigError(f"budget must lie in 0..1, got {self.budget_fraction}")
        if self.chunk_frames < 1:
            raise ConfigError(f"chunk_frames must be >= 1, got {self.chunk_frames}")


@dataclass
class SRCounts:
    """LR pixels seen, those enhanced by the SR network, and corrupt packets skipped."""

    anchor_pixels: int = 0
    lr_pixels: int = 0
    corrupt_packets: int = 0

    @property
    def sr_share(self) -> float:
        return self.anchor_pixels / self.lr_pixels if self.lr_pixels else 0.0


@dataclass
class EnhanceSummary(SRCounts):
    frames: int = 0
    transcoded: bool = False
    seconds: float = 0.0
    output: str = ""
    sizes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


Anchored = tuple[CodedFrame, PatchGrid, AnchorPlan, int]


def make_patch_source(model: str, scale: int) -> HRPatchSource:
    """The HR patch source named by ``--model`` (the SR network, or the bicubic stand-in)."""
    if model == "bicubic":
        return BicubicPatchSource()
    from ..sr import SRPatchSource, load_model

    return SRPatchSource(load_model(scale, None if model == "default" else model))


def _planned(frames: Iterable[CodedFrame], scheduler: str, budget: float, chunk_frames: int,
             patch_px: int) -> Iterator[Anchored]:
    """(frame, grid, plan of its chunk, offset in the chunk); a new size starts a new schedule."""
    for chunk, plan in plan_stream(frames, scheduler, budget, chunk_frames, patch_px):
        for t, frame in enumerate(chunk.frames):
            yield frame, chunk.grid, plan, t


def _from_plans(frames: Iterable[CodedFrame], plans: list[AnchorPlan]) -> Iterator[Anchored]:
    """Client mode: anchors from a plan file, matched by stream index (uncovered frames: none)."""
    by_start = {p.chunk_start: p for p in plans}
    current: AnchorPlan | None = None
    for frame in frames:
        current = by_start.get(frame.index, current)
        if current is None or not current.chunk_start <= frame.index < current.chunk_start + current.n_frames:
            grid = PatchGrid(plans[0].grid.patch_px if plans else 64, frame.height, frame.width)
            yield frame, grid, AnchorPlan(frame.index, 1, grid), 0
        elif (current.grid.height, current.grid.width) != (frame.height, frame.width):
            raise PlanFormatError(f"plan for frames {current.chunk_start}.. expects "
                                  f"{current.grid.width}x{current.grid.height}, the stream has "
                                  f"{frame.width}x{frame.height}")
        else:
            yield frame, current.grid, current, frame.index - current.chunk_start


def anchored_frames(frames: Iterable[CodedFrame], options: EnhanceOptions) -> Iterator[Anchored]:
    """Frames paired with their anchors: from ``options.plan_path`` or from the scheduler."""
    if options.plan_path is not None:
        return _from_plans(frames, read_plans(options.plan_path))
    return _planned(frames, options.scheduler, options.budget_fraction, options.chunk_frames,
                    options.patch_px)


def reconstruct_stream(anchored: Iterable[Anchored], config: ReuseConfig,
                       patch_source: HRPatchSource | None = None,
                       summary: EnhanceSummary | None = None) -> Iterator[HRFrame]:
    """Rebuild every frame at HR with its plan's anchors; a resolution change restarts it."""
    rec = Reconstructor(config)
    source = patch_source or BicubicPatchSource()
    shape = None
    for frame, grid, plan, t in anchored:
        if shape is not None and shape != frame.y.shape:
            # Reconstructor.step takes no reference of another size: the frame is rebuilt whole.
            log.warning("resolution changed to %dx%d at frame %d: restarting reconstruction",
                        frame.width, frame.height, frame.index)
        shape = frame.y.shape
        patches = plan.patches[plan.frames == t]
        boxes = grid.boxes()[patches] if len(patches) else None
        hr = rec.step(frame, boxes, source)
        if summary is not None:
            summary.frames += 1
            summary.lr_pixels += frame.height * frame.width
            summary.anchor_pixels += int(grid.areas()[patches].sum())
        yield hr


def enhance_file(source: str, output: str, options: EnhanceOptions = EnhanceOptions(),
                 on_frame: Callable[[EnhanceSummary], None] | None = None) -> EnhanceSummary:
    """Enhance ``source`` (file or URL) into the video file ``output``; returns a summary.

    The output is written under a temporary name and moved into place when complete; on
    Ctrl-C what was produced so far is finalised.
    """
    config = ReuseConfig(options.scale, options.loop)
    get_scheduler(options.scheduler)  # fail fast on an unknown name
    patch_source = make_patch_source(options.model, options.scale)
    summary = EnhanceSummary(output=output)
    src = VideoSource(source, transcode=options.transcode, timeout_s=options.timeout_s, fps=options.fps,
                      audio=options.audio)
    summary.transcoded = src.stats.transcoded
    writer: VideoWriter | None = None
    start = time.perf_counter()
    frames: Iterable[CodedFrame] = src
    if options.max_frames is not None:
        frames = (f for f in src if f.index < options.max_frames)
    try:
        for hr in reconstruct_stream(anchored_frames(frames, options), config, patch_source, summary):
            if writer is None:
                settings = EncodeSettings(fps=src.fps, crf=options.crf, keyint=max(int(round(src.fps * 2)), 1),
                                          time_base=src.time_base, key_interval_s=2.0)
                writer = VideoWriter(output, hr.y.shape[1], hr.y.shape[0], settings, audio=src.audio)
                summary.sizes.append((hr.y.shape[1], hr.y.shape[0]))
            planes = (hr.y, hr.u, hr.v)
            if (hr.y.shape[1], hr.y.shape[0]) != summary.sizes[0]:
                # A file keeps one size: frames after a resolution change are rescaled to it.
                if (hr.y.shape[1], hr.y.shape[0]) not in summary.sizes:
                    log.warning("input resolution changed; output frames rescaled to %dx%d", *summary.sizes[0])
                    summary.sizes.append((hr.y.shape[1], hr.y.shape[0]))
                planes = resize_yuv(*planes, *summary.sizes[0])
            writer.write(*planes, time=hr.time)  # the input's timestamps, so VFR and audio sync hold
            summary.seconds = time.perf_counter() - start
            if on_frame is not None:
                on_frame(summary)
            if options.max_frames is not None and summary.frames >= options.max_frames:
                break
    except KeyboardInterrupt:
        if writer is not None:
            writer.close()
        raise
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        src.close()
    summary.corrupt_packets = src.stats.corrupt_packets
    summary.seconds = time.perf_counter() - start
    if writer is None:
        raise ConfigError(f"no frames decoded from {source!r}")
    writer.close()
    return summary


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays of one shape."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
