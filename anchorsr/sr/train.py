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
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from . import data, photos, trainset
from .model import SRModel
from .nets import EDSR_SIZES, SKIPS, EDSRNet, RepSRNet
from .patches import SRRunner
from .photos import EVAL_PHOTOS, TRAIN_PHOTOS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    scale: int = 2
    channels: int = 16
    body: int = 4
    skip: str = "linear"  # what the network's output is a residual over (nets.SKIPS)
    train_skip: bool = True  # False: a linear skip keeps its least-squares filter
    photos: tuple[str, ...] = TRAIN_PHOTOS
    eval_photos: tuple[str, ...] = EVAL_PHOTOS
    eval_crf: int = 23
    crfs: tuple[int | None, ...] = trainset.TRAIN_CRFS  # intra pairs: None = clean LR
    seq_crfs: tuple[int, ...] = trainset.SEQ_CRFS  # P-frame sequences
    iterations: int = 60000
    time_budget_s: float = 1e9  # per invocation; --resume continues where it stopped
    batch: int = 32
    lr_px: int = 48  # LR crop side
    learning_rate: float = 2e-3
    seed: int = 0
    threads: int = 1
    init_from: str | None = None  # a deployed model file to warm-start from (RepSRNet.load_plain)
    arch: str = "repsr"  # "repsr" (the default network) or "edsr" (the reference, sized by edsr_size)
    edsr_size: str = "medium"
    val_every: int = 2000  # iterations between validation runs (and checkpoints)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.skip not in SKIPS:
            raise ConfigError(f"skip must be one of {', '.join(SKIPS)}, got {self.skip!r}")
        if self.arch not in ("repsr", "edsr"):
            raise ConfigError(f"arch must be 'repsr' or 'edsr', got {self.arch!r}")
        if self.arch == "edsr" and self.edsr_size not in EDSR_SIZES:
            raise ConfigError(f"EDSR size must be one of {sorted(EDSR_SIZES)}, got {self.edsr_size!r}")
        if self.arch == "edsr" and self.init_from:
            raise ConfigError("--init-from warm-starts the default network only (arch repsr)")
        for name in ("iterations", "batch", "lr_px", "channels", "body", "threads", "val_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0 or not self.time_budget_s > 0:
            raise ConfigError("learning rate and time budget must be > 0, got "
                              f"{self.learning_rate} and {self.time_budget_s}")

    def net(self) -> torch.nn.Module:
        if self.arch == "repsr":
            return RepSRNet(self.scale, self.channels, self.body, self.skip)
        return EDSRNet(self.scale, self.edsr_size)

    def record(self) -> dict:
        """The settings a contract records (the photo lists are recorded with hashes instead)."""
        return {k: v for k, v in asdict(self).items() if k not in ("photos", "eval_photos")}


@dataclass
class TrainResult:
    model: SRModel
    losses: list[float] = field(default_factory=list)  # mean L1 per logging window
    iterations: int = 0
    seconds: float = 0.0
    finished: bool = True  # False: stopped by the time budget, resume from the checkpoint
    val_history: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class Progress:
    """What a progress display needs: where training is, how fast, and how good."""

    iteration: int
    total: int
    loss: float
    it_per_s: float
    val_psnr_db: float | None
    val_gain_db: float | None

    @property
    def eta_s(self) -> float:
        return (self.total - self.iteration) / self.it_per_s if self.it_per_s > 0 else float("inf")


def _cosine_lr(base: float, progress: float) -> float:
    return base * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


def _batch_rng(seed: int, it: int) -> np.random.Generator:
    """The crop generator of step ``it``: a resumed run draws the crops it would have drawn."""
    return np.random.default_rng([seed, it])


def fit(net: torch.nn.Module, pairs: list[data.Pair], scale: int, iterations: int,
        time_budget_s: float, batch: int, lr_px: int, learning_rate: float, seed: int,
        log_every: int = 50, on_log=None, weights: np.ndarray | None = None,
        state: dict | None = None, on_window=None) -> tuple[list[float], int, float]:
    """Optimise ``net`` in place on random crops of ``pairs``; return (losses, iterations, s).

    state: a checkpoint's ``{"iteration", "optimizer"}`` to continue from.
    on_window(it, opt, last): called after every step and once at the end (last=True), for
    checkpoints and validation (it must leave ``net`` in training mode).
    """
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
    it = 0
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        it = int(state["iteration"])
    device = next(net.parameters()).device
    net.train()
    losses, window, start = [], [], time.perf_counter()
    while it < iterations:
        elapsed = time.perf_counter() - start
        if elapsed > time_budget_s:
            break
        for g in opt.param_groups:
            g["lr"] = _cosine_lr(learning_rate, it / iterations)
        lr, hr = (t.to(device) for t in data.random_crops(pairs, scale, batch, lr_px,
                                                          _batch_rng(seed, it), weights))
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
        if on_window is not None:
            on_window(it, opt, False)
    if window:
        losses.append(float(np.mean(window)))
    if on_window is not None:
        on_window(it, opt, True)
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


def _deployed(net: torch.nn.Module, scale: int) -> SRModel:
    deployed = net.deploy() if isinstance(net, RepSRNet) else copy.deepcopy(net)
    return SRModel(deployed.eval(), scale)


def checkpoint_path(out: str | Path) -> Path:
    """Where ``anchorsr train -o OUT`` keeps its resumable state."""
    return Path(out).with_suffix(".ckpt")


def _save_checkpoint(path: Path, cfg: TrainConfig, net, opt, it: int, val_history) -> None:
    tmp = path.with_suffix(".ckpt.tmp")
    torch.save({"config": json.dumps(cfg.record()), "iteration": it, "net": net.state_dict(),
                "optimizer": opt.state_dict(), "val_history": [list(v) for v in val_history]}, tmp)
    os.replace(tmp, path)  # a crash mid-write leaves the previous checkpoint intact


def load_checkpoint(path: Path, cfg: TrainConfig) -> dict:
    """A checkpoint written for the same settings (iterations and time budget may differ)."""
    if not path.is_file():
        raise ConfigError(f"--resume: expected a checkpoint {path}, found none")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several kinds for a damaged file
        raise ConfigError(f"--resume: checkpoint {path} is unreadable ({exc})") from None
    saved = json.loads(state["config"])
    free = ("iterations", "time_budget_s", "threads", "device", "val_every")  # may change on resume
    mine = json.loads(json.dumps(cfg.record()))  # tuples as JSON lists, like the saved record
    diff = sorted(k for k in set(mine) & set(saved) if k not in free and mine[k] != saved[k])
    if diff:
        raise ConfigError(f"--resume: checkpoint {path} was written with other settings "
                          f"({', '.join(f'{k}={saved[k]!r}' for k in diff)})")
    return state


def _start_linear_skip(net: RepSRNet, sets: trainset.TrainingSet, cfg: TrainConfig) -> float:
    """Set the linear skip to the training pairs' least-squares filter; return the validation
    gain (dB) of the network as it now stands (its 3x3 stack starts at zero output)."""
    from .linear import fit_linear_filter
    from .nets import LINEAR_SKIP_PX

    weight, bias = fit_linear_filter(sets.train, cfg.scale, LINEAR_SKIP_PX)
    with torch.no_grad():
        net.skip_path.weight.copy_(weight)
        net.skip_path.bias.copy_(bias)
    gain = evaluate(_deployed(net.cpu(), cfg.scale), sets.val)["gain_db"]
    net.to(cfg.device)
    return round(gain, 4)


def train(cfg: TrainConfig, on_progress=None, out: str | Path | None = None,
          resume: bool = False) -> TrainResult:
    """Train RepSR (or the EDSR reference) for ``cfg.scale``; return the deployed model with
    its contract. With ``out``, a checkpoint ``OUT.ckpt`` is written at every validation, and
    ``resume`` continues from it."""
    torch.set_num_threads(cfg.threads)
    ckpt = checkpoint_path(out) if out is not None else None
    state = load_checkpoint(ckpt, cfg) if resume and ckpt is not None else None
    sets = trainset.build(cfg.photos, cfg.scale, seed=cfg.seed, crfs=cfg.crfs, seq_crfs=cfg.seq_crfs)
    torch.manual_seed(cfg.seed)
    net = cfg.net().to(cfg.device)
    init_training = None
    val_history = [tuple(v) for v in state["val_history"]] if state else []
    if cfg.init_from and state is None:
        from .model import load_model

        init = load_model(cfg.scale, cfg.init_from)
        net.load_plain(init.net.cpu())
        init_training = {"training": init.contract.get("training"),  # the whole chain of runs
                         "warm_start_from": init.contract.get("warm_start_from")}
    if state is not None:
        net.load_state_dict(state["net"])
    elif cfg.arch == "repsr" and cfg.skip == "linear" and init_training is None:
        val_history.append((0, _start_linear_skip(net, sets, cfg)))

    clock = {"t": time.perf_counter(), "it": int(state["iteration"]) if state else 0, "loss": float("nan")}
    latest_val: dict = {}  # the last validation, by step (the final one is reused for the contract)

    def report(it: int, val: dict | None) -> None:
        now = time.perf_counter()
        rate = (it - clock["it"]) / max(now - clock["t"], 1e-9)
        if on_progress is not None:
            on_progress(Progress(it, cfg.iterations, clock["loss"], rate,
                                 val["psnr_y_db"] if val else None, val["gain_db"] if val else None))

    def on_log(it: int, loss: float) -> None:
        clock["loss"] = loss
        report(it, None)

    def on_window(it: int, opt, last: bool) -> None:
        if it % cfg.val_every and not last:
            return
        if last and val_history and val_history[-1][0] == it:
            return  # this step was validated and saved already
        val = evaluate(_deployed(net, cfg.scale), sets.val)
        net.train()
        latest_val.clear()
        latest_val[it] = val
        val_history.append((it, round(val["gain_db"], 4)))
        if ckpt is not None:
            _save_checkpoint(ckpt, cfg, net, opt, it, val_history)
        report(it, val)

    if cfg.arch == "repsr" and not cfg.train_skip:
        net.skip_path.requires_grad_(False)  # Adam skips parameters without gradients
    losses, its, secs = fit(net, sets.train, cfg.scale, cfg.iterations, cfg.time_budget_s, cfg.batch,
                            cfg.lr_px, cfg.learning_rate, cfg.seed, on_log=on_log,
                            weights=sets.weights(), state=state, on_window=on_window)
    model = _deployed(net, cfg.scale)
    measured = {"validation": latest_val.get(its) or evaluate(model, sets.val)}
    for label, crf in (("clean", None), (f"h264_crf{cfg.eval_crf}", cfg.eval_crf)):
        ev = data.make_pairs(cfg.eval_photos, cfg.scale, (crf,))
        if ev:
            measured[label] = evaluate(model, ev)
    model.contract = {
        "training": {**cfg.record(), "photos_used": photos.records(sets.photos),
                     "iterations_done": its, "seconds_this_run": round(secs, 1),
                     "final_l1": losses[-1] if losses else None, "torch": torch.__version__,
                     "validation_gain_db": val_history,
                     "degradation": trainset.__doc__.strip().split("\n\n")[1].replace("\n", " ")},
        "warm_start_from": init_training,  # the training record of the run this one continues
        "eval_photos": photos.records(cfg.eval_photos),
        "measured": measured,
    }
    return TrainResult(model, losses, its, secs, its >= cfg.iterations, val_history)


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
