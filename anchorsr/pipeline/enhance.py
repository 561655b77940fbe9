"""The sequential runner, and enhancement of one input into one output file with it:
decode -> plan -> SR -> reconstruct -> encode.

(The threaded, deadline-aware runner is ``live.py``, for live input and ``anchorsr serve``; this
is the straight path the CLI's ``enhance`` of a file, the demo and benchmarks use. Both drive
the step functions of ``steps.py``.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from ..errors import ConfigError, interrupt_in
from ..schedule import get_scheduler
from ..reuse import BicubicPatchSource, Reconstructor, ReuseConfig
from ..stream import EncodeSettings, VideoSource, VideoWriter, resize_yuv
from ..types import CodedFrame, HRFrame, HRPatchSource, PlannedFrame
from .options import PipelineOptions
from .steps import SRCounts, count, fetch_patches, make_patch_source, plan_groups, rebuild, size_changed

log = logging.getLogger(__name__)


@dataclass
class EnhanceSummary(SRCounts):
    frames: int = 0
    lost_frames: int = 0  # input frames lost to corrupt or missing data (see DecodeStats)
    transcoded: bool = False
    seconds: float = 0.0
    output: str = ""
    sr_engine: str = ""  # what made the anchors: "numpy" or "torch" (the SR network), or "bicubic"
    sizes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def enhance_frames(frames: Iterable[CodedFrame], options: PipelineOptions,
                   patch_source: HRPatchSource | None = None,
                   summary: EnhanceSummary | None = None) -> Iterator[HRFrame]:
    """The sequential runner: every step in turn, frame by frame; nothing is late or dropped.

    A resolution change restarts scheduling and reconstruction at the new size."""
    for _, hr in rebuild_frames(plan_groups(frames, options), options.reuse_config(),
                                patch_source or BicubicPatchSource(), summary):
        if summary is not None:
            summary.frames += 1
        yield hr


def rebuild_frames(groups: Iterable[list[PlannedFrame]], config: ReuseConfig, patch_source: HRPatchSource,
                   counts: SRCounts | None = None, reconstructor: Reconstructor | None = None
                   ) -> Iterator[tuple[PlannedFrame, HRFrame]]:
    """The sequential runner's reconstruction half: each planned frame (``plan_groups``, or
    ``planned_groups`` of ``plan_stream``'s output) rebuilt at HR in turn, its anchors' patches
    fetched from ``patch_source`` and pasted; yields the frame with its output.

    counts: LR and anchor pixels added up as frames are rebuilt. reconstructor: the closed
    loop's state to continue from (a fresh one when None; the quality benchmark restarts a
    chunk from a copy of the state at its start)."""
    rec = reconstructor if reconstructor is not None else Reconstructor(config)
    shape = None
    for group in groups:
        for pf in group:
            size_changed(shape, pf.frame)
            shape = pf.frame.y.shape
            patches = fetch_patches(patch_source, pf, config.scale)
            hr = rebuild(rec, pf, patches)
            if counts is not None:
                count(counts, pf, patches is not None)
            yield pf, hr


def enhance_file(source: str, output: str, options: PipelineOptions = PipelineOptions(),
                 on_frame: Callable[[EnhanceSummary], None] | None = None) -> EnhanceSummary:
    """Enhance ``source`` (file or URL) into the video file ``output``; returns a summary.

    The output is written under a temporary name and moved into place when complete; on
    Ctrl-C what was produced so far is finalised.
    """
    get_scheduler(options.scheduler)  # fail fast on an unknown name
    patch_source = make_patch_source(options.model, options.scale, options.device, options.sr_engine)
    summary = EnhanceSummary(output=output, sr_engine=getattr(getattr(patch_source, "model", None), "engine",
                                                              "bicubic"))
    src = VideoSource(source, transcode=options.transcode, timeout_s=options.timeout_s, fps=options.fps,
                      audio=options.audio)
    summary.transcoded = src.stats.transcoded
    writer: VideoWriter | None = None
    start = time.perf_counter()
    frames: Iterable[CodedFrame] = src
    if options.max_frames is not None:
        frames = (f for f in src if f.index < options.max_frames)
    try:
        for hr in enhance_frames(frames, options, patch_source, summary):
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
    except BaseException as exc:
        if interrupt_in(exc):  # a stop signal that a compiled library reported as its own error
            if writer is not None:
                writer.close()
            raise KeyboardInterrupt from exc
        if writer is not None:
            writer.abort()
        raise
    finally:
        src.close()
    summary.corrupt_packets = src.stats.corrupt_packets
    summary.lost_frames = src.stats.lost_frames
    summary.seconds = time.perf_counter() - start
    if writer is None:
        raise ConfigError(f"no frames decoded from {source!r}")
    writer.close()
    return summary
