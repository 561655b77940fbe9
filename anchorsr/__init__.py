"""anchorsr: UHD live video from LR streams by SR on anchor patches and codec-motion reuse."""

import os as _os

# The compiled kernels run on OpenMP threads. Idle OpenMP threads spin by default, which burns
# the CPU that decoding, SR and encoding threads of a live pipeline need; measured on a loaded
# 2-core machine, passive waiting cut reuse CPU time per frame by about a third and wall time
# by a quarter. An explicit setting in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
