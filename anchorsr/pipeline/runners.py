"""Entry points around the live pipeline: kernel warm-up, and ``anchorsr enhance`` of a live
URL or into HLS/URL outputs."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..reuse import Reconstructor, ReuseGate
from ..schedule import get_scheduler, plan_stream
from ..types import COARSE_PATCH_PX, CodedFrame, HRPatchSource, MotionField, PatchGrid
from .live import LivePipeline, LiveStats
from .options import PipelineOptions
from .srpool import SRPool


def warm_up(options: PipelineOptions, patch_source: HRPatchSource) -> None:
    """Run every compiled kernel once on a tiny synthetic stream (the first call compiles or
    loads them, seconds that would otherwise land on the first live frames' deadlines)."""
    rng = np.random.default_rng(0)
    px = options.patch_px or COARSE_PATCH_PX
    h = w = 2 * px
    frames = []
    for i, kind in enumerate("IP"):
        y = rng.integers(0, 256, (h, w), np.uint8)
        u, v = (rng.integers(0, 256, (h // 2, w // 2), np.uint8) for _ in range(2))
        motion = MotionField.all_intra(h, w) if kind == "I" else MotionField(
            np.ones((h // 4, w // 4, 2), np.int16), np.zeros((h // 4, w // 4), bool))
        frames.append(CodedFrame(i, i, i / 30, kind, 1000, y, u, v, motion))
    grid = PatchGrid(px, h, w)
    gate = ReuseGate()
    for f in frames:
        gate(f)
    if options.plan_path is None:
        for _ in plan_stream(frames, options.scheduler, 0.25, len(frames), px,
                             scale=options.scale, anchor_weight=options.reuse_config().anchor_weight):
            pass
    rec, boxes = Reconstructor(options.reuse_config()), grid.boxes()[:1]
    for f in frames:
        rec.step(f, boxes, patch_source(f, boxes, options.scale))


def enhance_stream(source: str, output: str, options: PipelineOptions, *, model: str = "default",
                   transcode: bool = True, timeout_s: float = 10.0,
                   on_frame: Callable[[LiveStats], None] | None = None) -> dict:
    """``anchorsr enhance`` through the live pipeline (URL input, or HLS/URL output).

    ``options.audio``: the input's audio passes through (its packets come from the video's
    demuxer); ``options.fps``: overrides the input's frame rate.

    Returns the stream's figures (``LivePipeline.snapshot``) once the input ends.
    """
    from ..stream import VideoSource, open_sink
    from ..stream.sinks import check_target
    from .steps import make_patch_source

    check_target(output)
    if options.plan_path is None:
        get_scheduler(options.scheduler)  # fail fast on an unknown name, before connecting
    patch_source = make_patch_source(model, options.scale, options.device, options.sr_engine, options.realtime)
    # fail fast, then warm up
    src = VideoSource(source, transcode=transcode, timeout_s=timeout_s, fps=options.fps, audio=options.audio)
    pool = None
    try:
        warm_up(options, patch_source)
        pool = SRPool(patch_source)
        pipeline = LivePipeline(src, src.fps, lambda w, h, s: open_sink(output, w, h, s, options.segment_s, src.audio),
                                pool, options, name=source, on_frame=on_frame)
        pipeline.run()
        return pipeline.snapshot()
    finally:
        if pool is not None:
            pool.close()
        src.close()
