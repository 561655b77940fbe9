"""Reuse-based HR reconstruction from codec motion and residuals."""

from .reconstruct import Reconstructor, ReuseConfig, paste_patches, upscale_bicubic
from .sources import BicubicPatchSource, GroundTruthPatchSource, crop_patches

__all__ = ["Reconstructor", "ReuseConfig", "paste_patches", "upscale_bicubic", "BicubicPatchSource",
           "GroundTruthPatchSource", "crop_patches"]
