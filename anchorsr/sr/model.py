"""Shipped SR weights and their contracts: safe loading and saving.

Each model is two files side by side in ``anchorsr/sr/weights/`` (or anywhere else):

* ``NAME.safetensors``: the deployed network's tensors (safetensors: no pickle, no code).
* ``NAME.json``: the contract: architecture and sizes, scale, colour space ("Y, BT.601 video
  range, 4:2:0; chroma bicubic"), normalisation ("Y / 255, output clamped to [0, 255]"),
  training data list, seeds and settings, and measured PSNR.

Nothing is ever downloaded: a missing or unreadable file raises :class:`ModelError` naming
the path and what was expected.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from .nets import ARCHS, arch_of

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_CHANNELS = 16
DEFAULT_BODY = 2
COLOUR_SPACE = "Y plane of BT.601 video-range YUV 4:2:0; U and V upsampled bicubically"
NORMALISATION = "input Y/255 (float32); output *255, rounded, clamped to [0, 255]"


@dataclass
class SRModel:
    """A ready-to-run luma SR network and its contract.

    net: maps float (N, 1, h, w) Y/255 to (N, 1, scale*h, scale*w).
    contract: the JSON contract (dict) it was loaded with or trained under.
    """

    net: nn.Module
    scale: int
    contract: dict = field(default_factory=dict)

    @property
    def receptive_radius(self) -> int:
        return int(self.net.receptive_radius)


def default_path(scale: int) -> Path:
    return WEIGHTS_DIR / f"repsr_x{scale}.safetensors"


def build_net(contract: dict) -> nn.Module:
    """An untrained network of the registered architecture a contract names."""
    arch, scale = contract.get("arch"), contract.get("scale")
    if scale not in (2, 3, 4):
        raise ModelError(f"contract scale must be 2, 3 or 4, got {scale!r}")
    if arch not in ARCHS:
        raise ModelError(f"contract arch must be one of {', '.join(sorted(ARCHS))}, got {arch!r}")
    spec = ARCHS[arch]
    contract = {**spec.defaults, **contract}
    missing = [f for f in spec.fields if f not in contract]
    if missing:
        raise ModelError(f"contract of arch {arch!r} must give {', '.join(spec.fields)}; "
                         f"missing {', '.join(missing)}")
    try:
        return spec.build(scale, **{f: contract[f] for f in spec.fields})
    except (TypeError, ValueError) as exc:
        raise ModelError(f"contract of arch {arch!r}: invalid fields ({exc})") from None


def arch_contract(net: nn.Module) -> dict:
    """The architecture fields of a contract for ``net``."""
    try:
        spec = arch_of(net)
    except TypeError as exc:
        raise ModelError(str(exc)) from None
    return {"arch": spec.name, "scale": int(net.scale), **spec.params(net)}


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


def resolve_device(device: str | torch.device | None) -> torch.device:
    """'cpu', 'cuda' (or 'cuda:N') as a torch device; None means CPU.

    CUDA is never picked silently: asking for it where torch sees no CUDA device is an error.
    """
    name = "cpu" if device is None else str(device)
    if name != "cpu" and not name.startswith("cuda"):
        raise ModelError(f"device must be 'cpu' or 'cuda', got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {name!r} asked for, but torch {torch.__version__} sees no CUDA device")
    return torch.device(name)


def save_model(model: SRModel, path: str | Path) -> Path:
    """Write ``path`` (.safetensors) and its contract (.json next to it); return the path."""
    from safetensors.torch import save_file

    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    contract = {**model.contract, **arch_contract(model.net),
                "colour_space": COLOUR_SPACE, "normalisation": NORMALISATION}
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in model.net.state_dict().items()}
    save_file(tensors, str(path), metadata={"arch": contract["arch"], "scale": str(model.scale)})
    path.with_suffix(".json").write_text(json.dumps(contract, indent=2, sort_keys=True) + "\n")
    model.contract = contract
    return path


def load_model(scale: int, path: str | Path | None = None,
               device: str | torch.device | None = None) -> SRModel:
    """Load the default shipped model for ``scale``, or the model at ``path``.

    device: where the network runs, 'cpu' (the default) or 'cuda'.

    Raises ModelError when the file or its contract is missing, unreadable, for another
    scale, or does not hold the tensors its contract's architecture needs.
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
    net = build_net(contract)
    torch_device = resolve_device(device)
    try:
        from safetensors.torch import load_file

        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError kinds
        raise ModelError(f"SR model file {path}: expected a safetensors file, could not read it ({exc})") from None
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"SR model file {path}: tensors do not match {contract['arch']} "
                         f"x{scale} from its contract ({first})") from None
    net.eval().to(torch_device)
    for p in net.parameters():
        p.requires_grad_(False)
    return SRModel(net, scale, contract)
