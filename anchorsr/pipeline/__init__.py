"""Wiring of the stages: sequential file enhancement now; the live server later."""

from .enhance import EnhanceOptions, EnhanceSummary, enhance_file, psnr, reconstruct_stream

__all__ = ["EnhanceOptions", "EnhanceSummary", "enhance_file", "psnr", "reconstruct_stream"]
