"""anchorsr.sr: super-resolution of anchor patches.

Public API:

* :func:`load_model` (scale, path=None) -> :class:`SRModel`: the shipped default network for
  x2/x3/x4 (``weights/repsr_x{scale}.safetensors`` + its JSON contract), or a model file.
* :class:`SRPatchSource` (model, halo_px=8, precision="auto"): an ``HRPatchSource``
  (``anchorsr.types``): ``source(frame, boxes, scale) -> [(Y, U, V), ...]`` uint8 HR patches.
* :class:`SRRunner` / :func:`upscale_frame`: whole-plane / whole-frame SR.
* Networks (``nets``): :class:`RepSRNet` (training form), :class:`PlainSRNet` (deployed),
  :class:`EDSRNet` (reference). Training: ``anchorsr.sr.train``; benchmark:
  ``anchorsr.sr.bench.run_sr_bench``; CLI: ``anchorsr.sr.cli.add_parsers``.

Colour handling: the network works on luma (Y/255); chroma is bicubic. See ``nets``.
"""

from .model import SRModel, load_model, save_model
from .nets import EDSRNet, PlainSRNet, RepSRNet
from .patches import SRPatchSource, SRRunner, upscale_frame

__all__ = ["SRModel", "load_model", "save_model", "EDSRNet", "PlainSRNet", "RepSRNet",
           "SRPatchSource", "SRRunner", "upscale_frame"]
