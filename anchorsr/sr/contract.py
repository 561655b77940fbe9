"""SR model files and their contracts, without torch: what both inference engines share.

Each model is two files side by side in ``anchorsr/sr/weights/`` (or anywhere else):

* ``NAME.safetensors``: the deployed network's tensors (safetensors: no pickle, no code).
* ``NAME.json``: the contract: architecture and sizes, scale, colour space ("Y, BT.601 video
  range, 4:2:0; chroma bicubic"), normalisation ("Y / 255, output clamped to [0, 255]"),
  training data list, seeds and settings, and measured PSNR.

Nothing is ever downloaded: a missing or unreadable file raises :class:`ModelError` naming
the path and what was expected.

Two engines run a model (``--sr-engine``): ``torch`` (``model.py``: every registered
architecture, CPU or CUDA, training) and ``numpy`` (``engine.py``: the deployed plain 3x3 stack,
``repsr-plain``, on the CPU, without importing torch, which alone costs 2.5-3.5 s of CPU at
every start). :func:`open_model` reads the contract and picks one (:func:`resolve_engine`:
what "auto" means, and the measurements behind it). This module must not import torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_CHANNELS = 16
DEFAULT_BODY = 2
COLOUR_SPACE = "Y plane of BT.601 video-range YUV 4:2:0; U and V upsampled bicubically"
NORMALISATION = "input Y/255 (float32); output *255, rounded, clamped to [0, 255]"

SKIPS = ("nearest", "bicubic", "linear")  # what a RepSR network's output is a residual over
LINEAR_SKIP_PX = 7  # kernel side of the learnt linear skip (LR pixels)
PLAIN_ARCH = "repsr-plain"  # the deployed plain 3x3 stack: the one architecture both engines run

ENGINES = ("auto", "numpy", "torch")


@dataclass
class SRModel:
    """A ready-to-run luma SR network and its contract.

    net: maps float (N, 1, h, w) Y/255 to (N, 1, scale*h, scale*w): a torch ``nn.Module``
    (torch engine) or an ``engine.NumpyPlainNet`` (numpy engine).
    contract: the JSON contract (dict) it was loaded with or trained under.
    """

    net: Any
    scale: int
    contract: dict = field(default_factory=dict)

    @property
    def receptive_radius(self) -> int:
        return int(self.net.receptive_radius)

    @property
    def engine(self) -> str:
        """'numpy' or 'torch': which engine runs ``net``."""
        return getattr(self.net, "engine", "torch")


def default_path(scale: int) -> Path:
    return WEIGHTS_DIR / f"repsr_x{scale}.safetensors"


def check_contract(contract: dict, path: Path) -> None:
    """Raise ModelError unless ``contract`` states what the loader relies on.

    The colour space and normalisation are fixed by this package's patch source (Y/255 in,
    luma out, chroma bicubic): a weight file trained for anything else would load and run but
    give wrong pictures, so it is refused here instead.
    """
    for key, expected in (("colour_space", COLOUR_SPACE), ("normalisation", NORMALISATION)):
        if contract.get(key) != expected:
            raise ModelError(f"SR model contract {path}: expected {key} {expected!r}, "
                             f"got {contract.get(key)!r}")


def read_contract(scale: int, path: str | Path | None = None) -> tuple[Path, dict]:
    """(weights path, contract) of the default shipped model for ``scale`` or the one at ``path``.

    Raises ModelError when the file or its contract is missing, unreadable, for another scale,
    or not for this package's colour space and normalisation. The architecture fields are
    checked by the engine that builds the network.
    """
    path = default_path(scale) if path is None else Path(path)
    contract_path = path.with_suffix(".json")
    if not path.is_file():
        raise ModelError(f"SR model file {path} not found: expected a safetensors file of an "
                         f"x{scale} network with its contract {contract_path.name} next to it")
    try:
        contract = json.loads(contract_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"SR model contract {contract_path}: expected readable JSON, got {exc}") from None
    if not isinstance(contract, dict):
        raise ModelError(f"SR model contract {contract_path}: expected a JSON object, got "
                         f"{type(contract).__name__}")
    if contract.get("scale") != scale:
        raise ModelError(f"SR model {path}: expected scale {scale}, contract says {contract.get('scale')!r}")
    check_contract(contract, contract_path)
    return path, contract


def read_tensors(path: Path, framework: str = "numpy") -> dict:
    """The tensors of a safetensors file, as numpy arrays (or torch tensors: ``framework="pt"``)."""
    try:
        if framework == "numpy":
            from safetensors.numpy import load_file
        else:
            from safetensors.torch import load_file
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError kinds
        raise ModelError(f"SR model file {path}: expected a safetensors file, could not read it ({exc})") from None


def tensor_mismatch(path: Path, contract: dict, scale: int, detail: str) -> ModelError:
    """The error for a file whose tensors are not those its contract's architecture needs."""
    return ModelError(f"SR model file {path}: tensors do not match {contract['arch']} "
                      f"x{scale} from its contract ({detail})")


def torch_available() -> bool:
    """Whether torch is installed (looked up, not imported)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def resolve_engine(engine: str, contract: dict | None, device: str | None = "cpu", realtime: bool = False) -> str:
    """The engine that runs a model: ``engine`` itself, or what "auto" means, measured on this
    project's 2-core CPU (``anchorsr bench engines``, README "Start-up"):

    * a ``repsr-plain`` network on the CPU, for a run that ends (``enhance`` of a file, ``plan``,
      the demo): numpy. Such a process starts seconds sooner without torch (first frame 1.8 vs
      4.2 s warm; a 90-frame 720p ``enhance`` took 0.73x torch's wall time) and numpy runs the
      network at 0.88-0.90x torch's patch throughput.
    * the same network in a real-time live run (``realtime``: ``serve``, ``enhance`` of a live
      URL), which starts once and then runs for hours: torch where it is installed, for its
      patch throughput (1.14x numpy's with one thread, what a live SR worker uses); numpy where
      it is not.
    * CUDA, or another architecture (EDSR, the training form): torch, the only engine for them.
    """
    if engine not in ENGINES:
        raise ConfigError(f"SR engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    on_cpu = device in (None, "cpu")
    if engine == "numpy" and not on_cpu:
        raise ConfigError(f"the numpy SR engine runs on the CPU only, got device {device!r}; "
                          "expected --sr-engine torch (or auto) for CUDA")
    if engine != "auto":
        return engine
    plain = contract is None or contract.get("arch") == PLAIN_ARCH
    if not (on_cpu and plain):
        return "torch"
    return "torch" if realtime and torch_available() else "numpy"


def open_model(scale: int, path: str | Path | None = None, device: str | None = "cpu",
               engine: str = "auto", realtime: bool = False) -> SRModel:
    """Load a model for inference with the engine ``engine`` names (see :func:`resolve_engine`;
    ``realtime``: for a real-time live run).

    The numpy engine never imports torch; the torch engine is ``model.load_model``.
    """
    if engine not in ENGINES:
        raise ConfigError(f"SR engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    resolve_engine(engine, None, device)  # an impossible engine/device pair fails before any file is read
    weights, contract = read_contract(scale, path)
    if resolve_engine(engine, contract, device, realtime) == "numpy":
        from .engine import load_numpy_model

        return load_numpy_model(scale, weights, contract)
    from .model import load_model

    return load_model(scale, weights, device=device)
