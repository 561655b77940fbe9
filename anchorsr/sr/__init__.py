"""anchorsr.sr: super-resolution of anchor patches.

Public API:

* :func:`open_model` (scale, path=None, device="cpu", engine="auto") -> :class:`SRModel`: the
  shipped default network for x2/x3/x4 (``weights/repsr_x{scale}.safetensors`` + its JSON
  contract), or a model file, on the numpy engine (``engine``: no torch import) or the torch
  one (``model``); :func:`load_model` is the torch engine's loader.
* :class:`SRPatchSource` (model, halo_px=None: the network's receptive radius,
  precision="auto"): an ``HRPatchSource`` (``anchorsr.types``):
  ``source(frame, boxes, scale) -> [(Y, U, V), ...]`` uint8 HR patches.
* :class:`SRRunner` / :func:`upscale_frame`: whole-plane / whole-frame SR.
* Networks (``nets``): :class:`RepSRNet` (training form), :class:`PlainSRNet` (deployed),
  :class:`EDSRNet` (reference). Training: ``anchorsr.sr.train``; benchmark:
  ``anchorsr.sr.bench.run_sr_bench``; CLI: ``anchorsr.sr.cli.add_parsers``.

Colour handling: the network works on luma (Y/255); chroma is bicubic. See ``nets``.

The names are imported on first use (PEP 562): importing ``anchorsr.sr.cli`` to register the
``train`` sub-command must not import torch, which costs seconds at every CLI start even when
no network runs (``--model bicubic``, ``plan``, ``inspect``) or the numpy engine runs it.
"""

import importlib

_WHERE = {"SRModel": "contract", "open_model": "contract", "load_model": "model", "save_model": "model",
          "NumpyPlainNet": "engine", "EDSRNet": "nets",
          "PlainSRNet": "nets", "RepSRNet": "nets", "SRPatchSource": "patches", "SRRunner": "patches",
          "upscale_frame": "patches"}


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SRModel", "open_model", "load_model", "save_model", "NumpyPlainNet", "EDSRNet", "PlainSRNet", "RepSRNet",
           "SRPatchSource", "SRRunner", "upscale_frame"]
