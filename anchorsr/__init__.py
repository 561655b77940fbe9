"""anchorsr: UHD live video from LR streams by SR on anchor patches and codec-motion reuse."""

__version__ = "0.1.0"
