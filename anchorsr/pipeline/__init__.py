"""Wiring of the stages: sequential file enhancement now; the live server later."""

from .enhance import (EnhanceOptions, EnhanceSummary, anchored_frames, enhance_file, make_patch_source, psnr,
                      reconstruct_stream)

__all__ = ["EnhanceOptions", "EnhanceSummary", "anchored_frames", "enhance_file", "make_patch_source", "psnr",
           "reconstruct_stream"]
