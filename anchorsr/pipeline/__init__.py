"""Wiring of the stages: step functions (``steps``) driven by the sequential runner (``enhance``:
files, demo, benchmarks) and the threaded real-time runner (``live``: live input, ``serve``)."""

from ..metrics import psnr
from .enhance import EnhanceSummary, enhance_file, enhance_frames, rebuild_frames
from .control import BudgetController, LoadReport, next_budget
from .live import LivePipeline, LiveStats
from .options import EnhanceOptions, LiveOptions, PipelineOptions
from .runners import enhance_stream, warm_up
from .srpool import SRJob, SRPool
from .steps import SRCounts, count, fetch_patches, make_patch_source, plan_groups, planned_groups, rebuild

__all__ = ["EnhanceSummary", "enhance_file", "enhance_frames", "rebuild_frames", "psnr", "BudgetController", "LoadReport",
           "next_budget", "LivePipeline", "LiveStats", "EnhanceOptions", "LiveOptions", "PipelineOptions",
           "enhance_stream", "warm_up", "SRJob", "SRPool", "SRCounts", "count", "fetch_patches",
           "make_patch_source", "plan_groups", "planned_groups", "rebuild"]
