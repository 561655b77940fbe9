"""The ``train`` sub-command, for ``anchorsr.cli`` to register.

    anchorsr train --scale 2 --time-budget-s 900 -o anchorsr/sr/weights/repsr_x2
    anchorsr train --scale 2 --fine-tune clip.mp4 --frames 30 -o tuned_x2
    anchorsr train --scale 2 --refit-bias        (refit the node-bias predictor of existing weights)
    anchorsr train --scale 2 --fit-anchor-weight (measure the anchor weight of existing weights)

Handlers return an exit code; output (progress, summary) is the CLI's job, so it lives here.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import AnchorsrError


def add_parsers(subparsers) -> argparse.ArgumentParser:
    """Register ``train`` on an argparse ``subparsers`` object; return its parser."""
    p = subparsers.add_parser(
        "train", help="train the default SR network, or fine-tune it on a video",
        description="Train RepSR (luma SR, re-parameterised to a plain 3x3 conv stack) on real "
                    "photographs degraded like the pipeline's input (bicubic down + H.264), or "
                    "fine-tune a model on a video's own frames (--fine-tune). Writes NAME.safetensors "
                    "and its contract NAME.json.")
    p.add_argument("--scale", type=int, choices=(2, 3, 4), default=2, help="upscaling factor (default 2)")
    p.add_argument("--data", nargs="+", metavar="PHOTO", default=None,
                   help="training photos as skimage:NAME or file:PATH (default: the built-in list, "
                        "held-out evaluation photos excluded)")
    p.add_argument("--iterations", type=int, default=None,
                   help="optimiser steps of the whole run (default 60000; 1500 when fine-tuning)")
    p.add_argument("--time-budget-s", type=float, default=None,
                   help="stop this invocation after this many seconds; the checkpoint OUT.ckpt "
                        "lets --resume continue (default: no limit; 120 when fine-tuning)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run whose checkpoint is OUT.ckpt (same settings)")
    p.add_argument("--val-every", type=int, default=2000,
                   help="steps between validation runs and checkpoints (default 2000)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where to train (default cpu; cuda is never picked silently)")
    p.add_argument("-o", "--out", default=None,
                   help="output path, without or with .safetensors (required unless --refit-bias)")
    p.add_argument("--refit-bias", action="store_true",
                   help="train nothing: refit the node-bias predictor (NAME.bias.json) of the weights at "
                        "--out (default: the shipped network for --scale) on the training photos")
    p.add_argument("--fit-anchor-weight", action="store_true",
                   help="train nothing: measure the least-squares weight of the network's output against "
                        "reuse on P-frame anchors (the reuse loop's anchor weight) for the weights at --out "
                        "(default: the shipped network for --scale), on clips over the training photos; "
                        "prints JSON")
    p.add_argument("--fit-residual-share", action="store_true",
                   help="train nothing: fit how much of the inter pixels' texture the graph's node bias "
                        "should count (0: the intra node bias, the default; 1: the texture term) from the "
                        "network's gain against the truth on clips over the training photos, for the "
                        "weights at --out (default: the shipped network for --scale); prints JSON")
    p.add_argument("--no-bias", action="store_true",
                   help="after training, do not fit the node-bias predictor (the graph then falls back to "
                        "the texture term for these weights)")
    p.add_argument("--fine-tune", metavar="VIDEO", default=None,
                   help="fine-tune on this video's first frames instead of training from photos")
    p.add_argument("--frames", type=int, default=30, help="frames used for fine-tuning (default 30)")
    p.add_argument("--crf", type=int, default=23, help="H.264 CRF of the LR made for fine-tuning (default 23)")
    p.add_argument("--from-model", default=None,
                   help="model to fine-tune (default: the shipped one for --scale)")
    p.add_argument("--init-from", default=None,
                   help="warm-start training from this deployed model file (continues a run)")
    p.add_argument("--learning-rate", type=float, default=2e-3, help="Adam learning rate (default 2e-3)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--batch", type=int, default=32, help="crops per step (default 32)")
    p.add_argument("--channels", type=int, default=16, help="network width (default 16)")
    p.add_argument("--body", type=int, default=4, help="body convolutions (default 4)")
    p.add_argument("--skip", choices=("linear", "bicubic", "nearest"), default="linear",
                   help="the network predicts a residual over this upsampling (default linear: a "
                        "learnt filter, started at the training set's least-squares filter)")
    p.add_argument("--freeze-skip", action="store_true",
                   help="keep the linear skip at its least-squares filter (train the convolutions only)")
    p.add_argument("--arch", choices=("repsr", "edsr"), default="repsr",
                   help="network: 'repsr' (the fast default) or 'edsr' (the EDSR-style reference)")
    p.add_argument("--size", choices=("low", "medium", "high"), default="medium",
                   help="size of the EDSR reference (default medium)")
    p.set_defaults(handler=run_train)
    return p


def _progress_bar():
    """A rich progress bar fed with ``train.Progress`` updates (stderr)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("L1 {task.fields[loss]}"), TextColumn("val gain {task.fields[val]}"),
                   TextColumn("{task.fields[rate]} it/s"), TextColumn("ETA"), TimeRemainingColumn(),
                   console=Console(stderr=True))
    state = {"task": None, "val": "-"}

    def update(p) -> None:
        if state["task"] is None:
            state["task"] = bar.add_task("train", total=p.total, completed=p.iteration,
                                         loss="-", val="-", rate="-")
        if p.val_gain_db is not None:
            state["val"] = f"{p.val_gain_db:+.3f} dB"
        bar.update(state["task"], completed=p.iteration, loss=f"{p.loss:.5f}", val=state["val"],
                   rate=f"{p.it_per_s:.1f}")
        if not bar.console.is_terminal and p.val_gain_db is not None:  # a log file: one line per validation
            print(f"step {p.iteration}/{p.total}  L1 {p.loss:.5f}  val gain {p.val_gain_db:+.3f} dB  "
                  f"{p.it_per_s:.1f} it/s  ETA {p.eta_s / 60:.0f} min", file=sys.stderr, flush=True)

    return bar, update


def run_train(args: argparse.Namespace) -> int:
    import torch

    from . import data, train
    from .model import load_model, save_model

    if args.refit_bias:
        return _refit_bias(args)
    if args.fit_anchor_weight:
        return _fit_anchor_weight(args)
    if args.fit_residual_share:
        return _fit_residual_share(args)
    if args.out is None:
        print("anchorsr: error: expected -o/--out (the weights to write), got none", file=sys.stderr)
        return 2
    try:
        if args.fine_tune:
            torch.set_num_threads(args.threads)
            base = load_model(args.scale, args.from_model, device=args.device)
            frames = data.read_video_yuv(args.fine_tune, args.frames)
            pairs = data.sequence_pairs(frames, args.scale, args.crf, name=args.fine_tune)
            res = train.fine_tune(base, pairs, iterations=args.iterations or 1500,
                                  time_budget_s=args.time_budget_s or 120.0, seed=args.seed)
        else:
            from .model import resolve_device

            resolve_device(args.device)
            cfg = train.TrainConfig(
                scale=args.scale, channels=args.channels, body=args.body, skip=args.skip, train_skip=not args.freeze_skip,
                photos=tuple(args.data) if args.data else data.TRAIN_PHOTOS,
                iterations=args.iterations or 60000, time_budget_s=args.time_budget_s or 1e9,
                batch=args.batch, seed=args.seed, threads=args.threads,
                learning_rate=args.learning_rate, init_from=args.init_from,
                arch=args.arch, edsr_size=args.size, val_every=args.val_every, device=args.device)
            bar, update = _progress_bar()
            with bar:
                res = train.train(cfg, on_progress=update, out=args.out, resume=args.resume)
            if not res.finished:
                print(f"anchorsr: stopped at step {res.iterations} of {cfg.iterations} (time budget); "
                      f"continue with the same command and --resume", file=sys.stderr)
        path = save_model(res.model, args.out)
        bias = None
        if not args.fine_tune and res.finished and not args.no_bias:
            from .biasfit import refit

            _, bias = refit(path, args.scale, tuple(args.data) if args.data else None,
                            on_clip=lambda text: print(f"node bias: {text}", file=sys.stderr, flush=True))
    except AnchorsrError as exc:
        print(f"anchorsr: error: {exc}", file=sys.stderr)
        return 1
    summary = {"path": str(path), "iterations": res.iterations, "seconds": round(res.seconds, 1),
               "measured": res.model.contract.get("measured", res.model.contract.get("fine_tuned")),
               "node_bias": str(bias) if bias else None}
    print(json.dumps(summary, indent=2))
    return 0


def _refit_bias(args: argparse.Namespace) -> int:
    """``--refit-bias``: fit the node-bias predictor of existing weights, write it beside them."""
    from pathlib import Path

    from .biasfit import refit
    from .model import default_path

    weights = default_path(args.scale) if args.out is None else Path(args.out).with_suffix(".safetensors")
    try:
        predictor, path = refit(weights, args.scale, tuple(args.data) if args.data else None, seed=args.seed,
                                on_clip=lambda text: print(f"node bias: {text}", file=sys.stderr, flush=True))
    except AnchorsrError as exc:
        print(f"anchorsr: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"path": str(path), "fit_figures": predictor.contract["fit_figures"]}, indent=2))
    return 0


def _fit_anchor_weight(args: argparse.Namespace) -> int:
    """``--fit-anchor-weight``: the least-squares anchor weight of existing weights (printed)."""
    from pathlib import Path

    from .anchorfit import fit_anchor_weight
    from .model import default_path

    weights = default_path(args.scale) if args.out is None else Path(args.out).with_suffix(".safetensors")
    try:
        result = fit_anchor_weight(weights, args.scale, tuple(args.data) if args.data else None, seed=args.seed,
                                   on_clip=lambda text: print(f"anchor weight: {text}", file=sys.stderr, flush=True))
    except AnchorsrError as exc:
        print(f"anchorsr: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _fit_residual_share(args: argparse.Namespace) -> int:
    """``--fit-residual-share``: the node bias's fitted inter share for existing weights (printed)."""
    from pathlib import Path

    from .model import default_path
    from .residualfit import fit_residual_share

    weights = default_path(args.scale) if args.out is None else Path(args.out).with_suffix(".safetensors")
    try:
        result = fit_residual_share(weights, args.scale, tuple(args.data) if args.data else None, seed=args.seed,
                                    on_clip=lambda text: print(f"residual share: {text}", file=sys.stderr,
                                                               flush=True))
    except AnchorsrError as exc:
        print(f"anchorsr: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m anchorsr.sr.cli train ...``) until the main CLI wires it."""
    parser = argparse.ArgumentParser(prog="anchorsr")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
