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
from .nets import EDSRNet, PlainSRNet, RepSRNet

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
    """An untrained network of the architecture a contract names."""
    arch, scale = contract.get("arch"), int(contract.get("scale", 0))
    if scale not in (2, 3, 4):
        raise ModelError(f"contract scale must be 2, 3 or 4, got {contract.get('scale')!r}")
    if arch == "repsr-plain":
        return PlainSRNet(scale, int(contract["channels"]), int(contract["body"]))
    if arch == "repsr-train":
        return RepSRNet(scale, int(contract["channels"]), int(contract["body"]))
    if arch == "edsr":
        return EDSRNet(scale, str(contract["size"]))
    raise ModelError(f"contract arch must be 'repsr-plain', 'repsr-train' or 'edsr', got {arch!r}")


def arch_contract(net: nn.Module) -> dict:
    """The architecture fields of a contract for ``net``."""
    if isinstance(net, PlainSRNet):
        return {"arch": "repsr-plain", "scale": net.scale, "channels": net.channels, "body": net.body}
    if isinstance(net, RepSRNet):
        return {"arch": "repsr-train", "scale": net.scale, "channels": net.channels, "body": net.body}
    if isinstance(net, EDSRNet):
        return {"arch": "edsr", "scale": net.scale, "size": net.size}
    raise ModelError(f"expected a PlainSRNet, RepSRNet or EDSRNet, got {type(net).__name__}")


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

    device: where the network runs; default CUDA when present, else CPU.

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
    if int(contract.get("scale", 0)) != scale:
        raise ModelError(f"SR model {path}: expected scale {scale}, contract says {contract.get('scale')!r}")
    net = build_net(contract)
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
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    net.eval().to(device)
    for p in net.parameters():
        p.requires_grad_(False)
    return SRModel(net, scale, contract)
