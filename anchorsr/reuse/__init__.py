"""Reuse-based HR reconstruction from codec motion and residuals."""

from .gate import ReuseGate, gate_frames
from .reconstruct import Reconstructor, ReuseConfig, paste_patches, upscale_bicubic
from .sources import BicubicPatchSource, GroundTruthPatchSource, crop_patches

__all__ = ["ReuseGate", "gate_frames", "Reconstructor", "ReuseConfig", "paste_patches", "upscale_bicubic", "BicubicPatchSource",
           "GroundTruthPatchSource", "crop_patches"]
