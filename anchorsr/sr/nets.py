"""SR networks: the fast re-parameterisable default (RepSR) and an EDSR-style reference.

All networks here map a batch of LR luma planes to HR luma planes:

    x: float (N, 1, h, w), Y / 255 (so roughly [16, 235] / 255 for video-range luma)
    -> float (N, 1, scale*h, scale*w), same normalisation, not clamped

Why luma only: the SR budget goes to anchors, and a patch's detail lives in Y; chroma is
half-resolution in 4:2:0 and is upsampled bicubically (see ``anchorsr.sr.patches``). This
cuts the network's input and output to one channel, which is what makes >1000 patches/s
possible on a 2-core CPU.

RepSR (training form): every 3x3 convolution is an *edge-oriented re-parameterisable block*
in the spirit of ECBSR (Zhang et al., ACM MM 2021): parallel branches (3x3, 1x1, 1x1->3x3
expand/squeeze, 1x1->fixed Sobel-x/Sobel-y/Laplacian with learnt per-channel scales) whose
outputs are summed. Each branch is linear, so after training they fold into one 3x3 kernel
and bias (:meth:`RepSRNet.deploy`), leaving a plain stack of 3x3 convolutions
(:class:`PlainSRNet`): the same function at the cost of the plain stack.

Both forms add the input to every one of the ``scale**2`` output channels before the pixel
shuffle, i.e. they predict a residual over nearest-neighbour upsampling (as ECBSR does): a
free, strictly local skip, so a patch's output depends only on its receptive field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .contract import LINEAR_SKIP_PX, SKIPS
from .resample import BICUBIC_RADIUS_PX, bicubic_planes

_SOBEL_X = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
_SOBEL_Y = _SOBEL_X.t().contiguous()
_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def _pad_with_bias(y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Pad by one pixel with each channel's bias: what a 1x1 conv gives on zero padding.

    This keeps the sequential 1x1 -> 3x3 branches exactly foldable into one 3x3 conv applied
    to the zero-padded input, borders included.
    """
    b = bias.view(1, -1, 1, 1)
    return F.pad(y - b, (1, 1, 1, 1)) + b


class _SeqConv(nn.Module):
    """1x1 conv followed by a 3x3 conv (learnt, or a fixed depthwise mask with learnt scale)."""

    def __init__(self, c_in: int, c_out: int, mask: torch.Tensor | None, mid: int):
        super().__init__()
        self.mask_mode = mask is not None
        c_mid = c_out if self.mask_mode else mid
        self.k0 = nn.Parameter(torch.randn(c_mid, c_in, 1, 1) * (1.0 / c_in) ** 0.5)
        self.b0 = nn.Parameter(torch.zeros(c_mid))
        if self.mask_mode:
            self.register_buffer("mask", mask.view(1, 1, 3, 3).repeat(c_out, 1, 1, 1))
            self.scale = nn.Parameter(torch.randn(c_out, 1, 1, 1) * 1e-3)
            self.b1 = nn.Parameter(torch.zeros(c_out))
        else:
            self.k1 = nn.Parameter(torch.randn(c_out, c_mid, 3, 3) * (1.0 / (9 * c_mid)) ** 0.5)
            self.b1 = nn.Parameter(torch.zeros(c_out))

    def _k1(self) -> torch.Tensor:
        """The 3x3 kernel as a dense (c_out, c_mid, 3, 3) tensor."""
        if not self.mask_mode:
            return self.k1
        depthwise = self.scale * self.mask  # (c_out, 1, 3, 3)
        return torch.diag_embed(depthwise.squeeze(1).permute(1, 2, 0)).permute(2, 3, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _pad_with_bias(F.conv2d(x, self.k0, self.b0), self.b0)
        return F.conv2d(y, self._k1(), self.b1)

    def fold(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(k, b): the 3x3 kernel (c_out, c_in, 3, 3) and bias (c_out,) of this branch."""
        k1 = self._k1()
        k = torch.einsum("omyx,mi->oiyx", k1, self.k0[:, :, 0, 0])
        b = torch.einsum("omyx,m->o", k1, self.b0) + self.b1
        return k, b


class ECB(nn.Module):
    """Edge-oriented re-parameterisable 3x3 conv block (training form)."""

    def __init__(self, c_in: int, c_out: int, expand: int = 2, identity: bool = True):
        super().__init__()
        self.conv3 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv1 = nn.Conv2d(c_in, c_out, 1)
        self.seq = nn.ModuleList([
            _SeqConv(c_in, c_out, None, expand * c_out),
            _SeqConv(c_in, c_out, _SOBEL_X, 0),
            _SeqConv(c_in, c_out, _SOBEL_Y, 0),
            _SeqConv(c_in, c_out, _LAPLACE, 0),
        ])
        self.identity = identity and c_in == c_out

    def forward(self, x: torch.Tensor, branches: bool = False) -> torch.Tensor:
        """Sum of the branches. By default computed *online*: the branches are folded into one
        3x3 kernel on every call (differentiably, so gradients reach every branch exactly as
        in the multi-branch graph; cf. OREPA, CVPR 2022), which trains ~5x faster on CPU.
        ``branches=True`` evaluates each branch separately (the literal training form)."""
        if not branches:
            k, b = self.fold()
            return F.conv2d(x, k, b, padding=1)
        y = self.conv3(x) + self.conv1(x)
        for branch in self.seq:
            y = y + branch(x)
        return y + x if self.identity else y

    def fold(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(k, b): the single 3x3 conv equal to the sum of all branches."""
        k = self.conv3.weight.clone()
        b = self.conv3.bias.clone()
        k = k + F.pad(self.conv1.weight, (1, 1, 1, 1))
        b = b + self.conv1.bias
        for branch in self.seq:
            kb, bb = branch.fold()
            k, b = k + kb, b + bb
        if self.identity:
            eye = torch.zeros_like(k)
            idx = torch.arange(k.shape[0])
            eye[idx, idx, 1, 1] = 1.0
            k = k + eye
        return k, b


class Skip(nn.Module):
    """The upsampling the network's output is a residual over.

    "nearest": the LR input added to every sub-pixel channel (ECBSR's form; no parameters).
    "bicubic": bicubic upsampling of the input (no parameters).
    "linear": a learnt linear filter, one ``LINEAR_SKIP_PX``-square kernel per sub-pixel phase
    on the edge-replicated input, then pixel shuffle: one plain convolution. Training starts it
    at the least-squares filter for the training data (``anchorsr.sr.linear``), so the
    untrained network already beats bicubic and the 3x3 stack learns only what no linear
    filter can restore.

    The skip is computed in float32 outside autocast (the LR signal is never rounded to bf16)
    and on contiguous tensors (pixel_shuffle on channels-last is several times slower).
    """

    def __init__(self, kind: str, scale: int):
        super().__init__()
        if kind not in SKIPS:
            raise ValueError(f"skip must be one of {SKIPS}, got {kind!r}")
        self.kind, self.scale = kind, scale
        if kind == "linear":
            k = LINEAR_SKIP_PX
            self.weight = nn.Parameter(torch.zeros(scale * scale, 1, k, k))
            self.bias = nn.Parameter(torch.zeros(scale * scale))
            with torch.no_grad():  # start as nearest upsampling until a fitted filter is loaded
                self.weight[:, 0, k // 2, k // 2] = 1.0

    @property
    def radius(self) -> int:
        return {"nearest": 0, "bicubic": BICUBIC_RADIUS_PX, "linear": LINEAR_SKIP_PX // 2}[self.kind]

    def combine(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Shuffle the network's ``scale**2`` channels ``y`` and add the upsampled input ``x``."""
        s = self.scale
        if self.kind == "nearest":
            return F.pixel_shuffle(y.contiguous().to(x.dtype) + x.contiguous(), s)
        with torch.autocast(x.device.type, enabled=False):
            x = x.contiguous().float()
            if self.kind == "bicubic":
                base = bicubic_planes(x, s)
            else:
                r = LINEAR_SKIP_PX // 2
                base = F.pixel_shuffle(F.conv2d(F.pad(x, (r, r, r, r), mode="replicate"),
                                                self.weight.float(), self.bias.float()), s)
        return F.pixel_shuffle(y.contiguous().float(), s) + base


class PlainSRNet(nn.Module):
    """Deployed RepSR: ``body + 2`` plain 3x3 convs, ReLU between, pixel shuffle at the end.

    Receptive radius: ``body + 2`` LR pixels (one per conv), the minimum seam-free halo.
    """

    def __init__(self, scale: int, channels: int = 16, body: int = 3, skip: str = "nearest"):
        super().__init__()
        self.scale, self.channels, self.body, self.skip = scale, channels, body, skip
        self.skip_path = Skip(skip, scale)
        widths = [1] + [channels] * (body + 1) + [scale * scale]
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths[:-1], widths[1:]))

    @property
    def receptive_radius(self) -> int:
        return max(len(self.convs), self.skip_path.radius)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for i, conv in enumerate(self.convs):
            y = conv(y)
            if i < len(self.convs) - 1:
                y = F.relu(y)
        return self.skip_path.combine(y, x)


class RepSRNet(nn.Module):
    """RepSR training form: the same layout as :class:`PlainSRNet`, each conv an :class:`ECB`."""

    def __init__(self, scale: int, channels: int = 16, body: int = 3, skip: str = "nearest"):
        super().__init__()
        self.scale, self.channels, self.body, self.skip = scale, channels, body, skip
        widths = [1] + [channels] * (body + 1) + [scale * scale]
        # No identity branch in the tail: its output is sub-pixel residuals, not features (at
        # x4 with 16 channels, 16 -> 16 would qualify, and the skip made training collapse).
        self.blocks = nn.ModuleList(ECB(a, b, identity=i < body + 1)
                                    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])))
        self.branches = False  # True: evaluate every branch separately (see ECB.forward)
        with torch.no_grad():
            tail = self.blocks[-1]
            if skip == "nearest":  # start near the nearest-upsampling identity
                for p in tail.parameters():
                    p.mul_(0.1)
            else:  # start exactly at the skip: the tail's output is zero, every branch still
                # gets gradients (the second factor of each two-factor branch is the zero one)
                for p in (tail.conv3.weight, tail.conv3.bias, tail.conv1.weight, tail.conv1.bias):
                    p.zero_()
                for branch in tail.seq:
                    branch.b1.zero_()
                    (branch.scale if branch.mask_mode else branch.k1).zero_()
        self.skip_path = Skip(skip, scale)

    @property
    def receptive_radius(self) -> int:
        return max(len(self.blocks), self.skip_path.radius)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for i, block in enumerate(self.blocks):
            y = block(y, self.branches)
            if i < len(self.blocks) - 1:
                y = F.relu(y)
        return self.skip_path.combine(y, x)

    @torch.no_grad()
    def load_plain(self, plain: PlainSRNet) -> "RepSRNet":
        """Warm start from a deployed net: the 3x3 branch takes its kernels, every other
        branch starts at zero output (its second factor zeroed, so it still gets gradients).
        The result computes exactly ``plain``'s function; returns self."""
        self.skip_path.load_state_dict(plain.skip_path.state_dict())
        for block, conv in zip(self.blocks, plain.convs):
            k = conv.weight.clone()
            if block.identity:
                idx = torch.arange(k.shape[0])
                k[idx, idx, 1, 1] -= 1.0
            block.conv3.weight.copy_(k)
            block.conv3.bias.copy_(conv.bias)
            for p in (block.conv1.weight, block.conv1.bias):
                p.zero_()
            for branch in block.seq:
                branch.b0.zero_()
                branch.b1.zero_()
                (branch.scale if branch.mask_mode else branch.k1).zero_()
        return self

    @torch.no_grad()
    def deploy(self) -> PlainSRNet:
        """The plain 3x3 stack computing the same function (to float rounding)."""
        plain = PlainSRNet(self.scale, self.channels, self.body, self.skip)
        plain.skip_path.load_state_dict(self.skip_path.state_dict())
        for block, conv in zip(self.blocks, plain.convs):
            k, b = block.fold()
            conv.weight.copy_(k)
            conv.bias.copy_(b)
        return plain.to(next(self.parameters()).device)


# ---------------------------------------------------------------------------------------------
# Reference network: EDSR-style residual blocks, sized like NEMO / Palantír's "low / medium /
# high" quality levels (Palantír Sec. 6 uses NEMO's medium model as its SR network).

EDSR_SIZES: dict[str, tuple[int, int]] = {  # name -> (residual blocks, channels)
    "low": (4, 32),
    "medium": (8, 48),
    "high": (8, 64),
}


class _ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class EDSRNet(nn.Module):
    """EDSR-like reference (no batch norm): head, residual blocks, long skip, shuffle tail.

    Luma in, luma out, same normalisation and nearest residual as the default, so the two
    are interchangeable behind :class:`anchorsr.sr.patches.SRPatchSource`.
    """

    def __init__(self, scale: int, size: str = "medium"):
        super().__init__()
        if size not in EDSR_SIZES:
            raise ValueError(f"EDSR size must be one of {sorted(EDSR_SIZES)}, got {size!r}")
        blocks, channels = EDSR_SIZES[size]
        self.scale, self.size = scale, size
        self.head = nn.Conv2d(1, channels, 3, padding=1)
        self.blocks = nn.Sequential(*(_ResBlock(channels) for _ in range(blocks)))
        self.body_tail = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, scale * scale, 3, padding=1)
        self.skip_path = Skip("nearest", scale)  # no parameters: older EDSR files still load

    @property
    def receptive_radius(self) -> int:
        return 3 + 2 * len(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        h = h + self.body_tail(self.blocks(h))
        return self.skip_path.combine(self.tail(h), x)


# ---------------------------------------------------------------------------------------------
# Registry: every architecture a weight file's contract may name. A contract's architecture
# fields are ``{"arch": NAME, "scale": s, **params}``; ``build`` makes an untrained network from
# them and ``params`` reads them back off a network. New networks register here, nothing else
# dispatches on their type.


@dataclass(frozen=True)
class Arch:
    """One registered architecture: how to build it from contract fields and describe it back."""

    name: str
    cls: type
    fields: tuple[str, ...]  # contract fields besides "arch" and "scale"
    build: Callable[..., nn.Module]
    params: Callable[[nn.Module], dict]
    defaults: dict  # values of fields that contracts written before the field existed omit


ARCHS: dict[str, Arch] = {}


def register_arch(name: str, cls: type, fields: tuple[str, ...], build: Callable[..., nn.Module],
                  params: Callable[[nn.Module], dict], defaults: dict | None = None) -> Arch:
    """Add an architecture under ``name``; a second registration of a name is an error."""
    if name in ARCHS:
        raise ValueError(f"SR architecture {name!r} is already registered")
    ARCHS[name] = arch = Arch(name, cls, fields, build, params, defaults or {})
    return arch


def arch_of(net: nn.Module) -> Arch:
    """The registered architecture of a network instance (exact class match)."""
    for arch in ARCHS.values():
        if type(net) is arch.cls:
            return arch
    raise TypeError(f"expected a network of a registered SR architecture ({', '.join(ARCHS)}), "
                    f"got {type(net).__name__}")


def _repsr_params(net) -> dict:
    return {"channels": int(net.channels), "body": int(net.body), "skip": net.skip}


_REPSR_FIELDS = ("channels", "body", "skip")
_REPSR_DEFAULTS = {"skip": "nearest"}  # contracts before the bicubic skip existed
register_arch("repsr-plain", PlainSRNet, _REPSR_FIELDS,
              lambda scale, channels, body, skip: PlainSRNet(scale, int(channels), int(body), str(skip)),
              _repsr_params, _REPSR_DEFAULTS)
register_arch("repsr-train", RepSRNet, _REPSR_FIELDS,
              lambda scale, channels, body, skip: RepSRNet(scale, int(channels), int(body), str(skip)),
              _repsr_params, _REPSR_DEFAULTS)
register_arch("edsr", EDSRNet, ("size",),
              lambda scale, size: EDSRNet(scale, str(size)), lambda net: {"size": net.size})
