"""Wiring of the stages: sequential file enhancement, the live pipeline and the live server."""

from .enhance import (EnhanceOptions, EnhanceSummary, anchored_frames, enhance_file, make_patch_source, psnr,
                      reconstruct_stream)
from .control import BudgetController, LoadReport, next_budget
from .live import LiveOptions, LivePipeline, LiveStats
from .runners import enhance_stream, warm_up
from .srpool import SRJob, SRPool

__all__ = ["EnhanceOptions", "EnhanceSummary", "anchored_frames", "enhance_file", "make_patch_source", "psnr",
           "reconstruct_stream", "BudgetController", "LoadReport", "next_budget", "LiveOptions", "LivePipeline",
           "LiveStats", "enhance_stream", "warm_up", "SRJob", "SRPool"]
