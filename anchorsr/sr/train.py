"""Training the default RepSR network on real photographs, and per-stream fine-tuning.

Training: RepSR's multi-branch form (``nets.RepSRNet``), L1 loss on Y/255, Adam with a cosine
learning rate over the run (by iterations or wall-clock, whichever ends first), random aligned
crops with flips/transposes from photo pairs degraded as the pipeline sees them (``data``):
clean LR plus H.264-coded LR at several CRFs. At the end the network is folded into its plain
form and measured on the held-out photos; everything needed to reproduce it (data list,
seeds, settings, torch version) goes into the contract.

Fine-tuning (content-aware, as NEMO/Palantír do per video): a few hundred steps of the plain
network on LR/HR pairs from the stream's own first frames.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from . import data
from .model import SRModel
from .nets import EDSR_SIZES, EDSRNet, RepSRNet
from .patches import SRRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    scale: int = 2
    channels: int = 16
    body: int = 2
    photos: tuple[str, ...] = data.TRAIN_PHOTOS
    eval_photos: tuple[str, ...] = data.EVAL_PHOTOS
    crfs: tuple[int | None, ...] = (None, 18, 23, 28)  # None: clean LR
    eval_crf: int = 23
    iterations: int = 6000
    time_budget_s: float = 1e9
    batch: int = 16
    lr_px: int = 48  # LR crop side
    learning_rate: float = 2e-3
    seed: int = 0
    threads: int = 1
    init_from: str | None = None  # a deployed model file to warm-start from (RepSRNet.load_plain)
    arch: str = "repsr"  # "repsr" (the default network) or "edsr" (the reference, sized by edsr_size)
    edsr_size: str = "medium"

    def __post_init__(self) -> None:
        from ..errors import ConfigError

        if self.arch not in ("repsr", "edsr"):
            raise ConfigError(f"arch must be 'repsr' or 'edsr', got {self.arch!r}")
        if self.arch == "edsr" and self.edsr_size not in EDSR_SIZES:
            raise ConfigError(f"EDSR size must be one of {sorted(EDSR_SIZES)}, got {self.edsr_size!r}")
        if self.arch == "edsr" and self.init_from:
            raise ConfigError("--init-from warm-starts the default network only (arch repsr)")


@dataclass
class TrainResult:
    model: SRModel
    losses: list[float] = field(default_factory=list)  # mean L1 per logging window
    iterations: int = 0
    seconds: float = 0.0


def _cosine_lr(base: float, progress: float) -> float:
    return base * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


def fit(net: torch.nn.Module, pairs: list[data.Pair], scale: int, iterations: int,
        time_budget_s: float, batch: int, lr_px: int, learning_rate: float, seed: int,
        log_every: int = 50, on_log=None) -> tuple[list[float], int, float]:
    """Optimise ``net`` in place on random crops of ``pairs``; return (losses, iterations, s)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
    device = next(net.parameters()).device
    net.train()
    losses, window, start, it = [], [], time.perf_counter(), 0
    while it < iterations:
        elapsed = time.perf_counter() - start
        if elapsed > time_budget_s:
            break
        for g in opt.param_groups:
            g["lr"] = _cosine_lr(learning_rate, max(it / iterations, elapsed / time_budget_s))
        lr, hr = (t.to(device) for t in data.random_crops(pairs, scale, batch, lr_px, rng))
        loss = F.l1_loss(net(lr), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        window.append(loss.item())
        it += 1
        if len(window) == log_every:
            losses.append(float(np.mean(window)))
            window = []
            if on_log is not None:
                on_log(it, losses[-1])
    if window:
        losses.append(float(np.mean(window)))
    net.eval()
    return losses, it, time.perf_counter() - start


def evaluate(model: SRModel, pairs: list[data.Pair], precision: str = "fp32") -> dict:
    """Mean PSNR-Y (dB) of the model and of bicubic over ``pairs`` (border of ``scale`` px cut)."""
    runner = SRRunner(model, precision)
    s = model.scale
    sr = [data.psnr(runner.upscale_y(p.lr), p.hr, s) for p in pairs]
    bic = [data.psnr(data.bicubic_upscale_y(p.lr, s), p.hr, s) for p in pairs]
    return {"psnr_y_db": float(np.mean(sr)), "bicubic_psnr_y_db": float(np.mean(bic)),
            "gain_db": float(np.mean(sr) - np.mean(bic)), "n_images": len(pairs)}


def train(cfg: TrainConfig, on_log=None) -> TrainResult:
    """Train RepSR (or the EDSR reference) for ``cfg.scale`` from photos; return the deployed
    model with its contract."""
    torch.set_num_threads(cfg.threads)
    pairs = data.make_pairs(cfg.photos, cfg.scale, cfg.crfs)
    if not pairs:
        from ..errors import ConfigError

        raise ConfigError(f"no training photo available among {len(cfg.photos)} listed")
    torch.manual_seed(cfg.seed)
    net = (RepSRNet(cfg.scale, cfg.channels, cfg.body) if cfg.arch == "repsr"
           else EDSRNet(cfg.scale, cfg.edsr_size))
    init_training = None
    if cfg.init_from:
        from .model import load_model

        init = load_model(cfg.scale, cfg.init_from)
        net.load_plain(init.net)
        init_training = {"training": init.contract.get("training"),  # the whole chain of runs
                         "warm_start_from": init.contract.get("warm_start_from")}
    losses, its, secs = fit(net, pairs, cfg.scale, cfg.iterations, cfg.time_budget_s, cfg.batch,
                            cfg.lr_px, cfg.learning_rate, cfg.seed, on_log=on_log)
    model = SRModel(net.deploy() if isinstance(net, RepSRNet) else net, cfg.scale)
    used = sorted({p.name for p in pairs})
    measured = {}
    for label, crf in (("clean", None), (f"h264_crf{cfg.eval_crf}", cfg.eval_crf)):
        ev = data.make_pairs(cfg.eval_photos, cfg.scale, (crf,))
        if ev:
            measured[label] = evaluate(model, ev)
    model.contract = {
        "training": {**{k: v for k, v in asdict(cfg).items() if k not in ("photos", "eval_photos")},
                     "photos_used": used, "iterations_done": its, "seconds": round(secs, 1),
                     "final_l1": losses[-1] if losses else None, "torch": torch.__version__,
                     "degradation": "antialiased bicubic down (RGB), BT.601 video range 4:2:0, "
                                    "libx264 preset veryfast one intra frame at each CRF (null = clean)"},
        "warm_start_from": init_training,  # the training record of the run this one continues
        "eval_photos": sorted({p for p in cfg.eval_photos if data.photo_available(p)}),
        "measured": measured,
    }
    return TrainResult(model, losses, its, secs)


def fine_tune(model: SRModel, pairs: list[data.Pair], iterations: int = 1500,
              time_budget_s: float = 120.0, batch: int = 16, lr_px: int = 32,
              learning_rate: float = 2e-4, seed: int = 0) -> TrainResult:
    """Content-aware fine-tuning of a copy of ``model`` (its deployed form) on a stream's pairs."""
    net = copy.deepcopy(model.net).float().to(memory_format=torch.contiguous_format)
    for p in net.parameters():
        p.requires_grad_(True)
    lr_px = min(lr_px, *(min(p.lr.shape) for p in pairs))
    losses, its, secs = fit(net, pairs, model.scale, iterations, time_budget_s, batch, lr_px,
                            learning_rate, seed)
    for p in net.parameters():
        p.requires_grad_(False)
    contract = {k: v for k, v in model.contract.items() if k != "measured"}
    contract["base_measured"] = model.contract.get("measured")  # the photos figures: base model's
    contract = {**contract, "fine_tuned": {
        "frames": len(pairs), "iterations": its, "seconds": round(secs, 1),
        "learning_rate": learning_rate, "seed": seed, "final_l1": losses[-1] if losses else None}}
    return TrainResult(SRModel(net, model.scale, contract), losses, its, secs)
