"""The torch engine: loading SR models as torch networks, and saving trained ones.

The files, their contracts and the checks both engines share are in ``contract.py`` (no torch);
this module builds the registered architecture a contract names (``nets.ARCHS``) and loads its
tensors. ``contract.open_model`` picks between this and the numpy engine (``engine.py``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from .contract import (COLOUR_SPACE, DEFAULT_BODY, DEFAULT_CHANNELS, NORMALISATION, WEIGHTS_DIR,  # noqa: F401
                       SRModel, check_contract, default_path, read_contract, read_tensors, tensor_mismatch)
from .nets import ARCHS, arch_of

log = logging.getLogger(__name__)


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
    path, contract = read_contract(scale, path)
    net = build_net(contract)
    torch_device = resolve_device(device)
    state = read_tensors(path, "pt")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise tensor_mismatch(path, contract, scale, str(exc).splitlines()[0]) from None
    net.eval().to(torch_device)
    for p in net.parameters():
        p.requires_grad_(False)
    return SRModel(net, scale, contract)
