"""``anchorsr bench quality``: every scheduler at every budget through the library's own
scheduling and reconstruction (``plan_stream`` and the loop of ``enhance``), measured against
the HR ground truth (docs/quality-benchmark.md, "Quality protocol").

By role: ``settings`` (what a run measures), ``inputs`` (per clip: the sources, the decoded and
gated LR stream, the HR ground truth, the cached whole-frame SR, graphs), ``runs`` (every method
on a clip, measured), ``derived`` (figures derived from the runs: gain kept, savings, averages,
and the targets table ``TARGETS``). This module runs them in order and writes ``quality.json``
and the report.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Sequence

import numpy as np

from ...errors import SourceError
from ...graph import NODE_BIASES
from .. import metrics
from .derived import (LEGACY_PSNR_RULE, PSNR_RULE, TARGETS, Target, bias_figures, derive, judge_targets,
                     psnr_rule_of, summarize, target)
from .inputs import ClipInputs, select_sources
from .runs import ClipRuns, RunStats, bias_runs, run_clip, visuals
from .settings import (BUDGETED, BUDGETS, FIDELITY_BUDGET, FIXED, OURS, QUICK, QUICK_CLIPS, SAVING_AGAINST,
                       QualitySettings, budget_key, settings_json)

__all__ = ["LEGACY_PSNR_RULE", "PSNR_RULE", "TARGETS", "Target", "bias_figures", "derive", "judge_targets",
           "psnr_rule_of", "summarize", "target", "ClipInputs", "select_sources", "ClipRuns", "RunStats", "bias_runs",
           "run_clip", "visuals", "BUDGETED", "BUDGETS", "FIDELITY_BUDGET", "FIXED", "OURS", "QUICK",
           "QUICK_CLIPS", "SAVING_AGAINST", "QualitySettings", "budget_key", "settings_json", "rederive",
           "run_quality"]


def rederive(result: dict, out_dir: str) -> dict:
    """Recompute the derived figures, the summary and the report from a quality.json result
    (no measuring); returns the updated result and rewrites quality.json and the report."""
    from .. import report

    s = result["settings"]
    budgets = tuple(float(b.rstrip("%")) / 100 for b in s["budgets"])
    settings = QualitySettings(budgets=budgets, schedulers=tuple(s["schedulers"]))
    for clip in result["clips"]:
        clip.update(derive(clip))
        clip.update(bias_figures(clip))
    # The PSNRs are not recomputed here: figures measured by the mean-MSE rule stay as measured,
    # and older figures (a mean of per-frame PSNRs, no per-frame MSE stored) cannot be, so they
    # are marked as predating the rule and the report says so.
    result["psnr_rule"] = psnr_rule_of(result)
    result["summary"] = summarize(result["clips"], settings)
    result = _json_ready(result)
    with open(os.path.join(out_dir, "quality.json"), "w") as fh:
        json.dump(result, fh, indent=1, allow_nan=False)
    report.write_report(result, out_dir)
    return result


def run_quality(out_dir: str, settings: QualitySettings, *, corpus_dir: str = "bench-corpus",
                clip_paths: Sequence[str] | None = None, quick: bool = False,
                only: Sequence[str] | None = None, command: str | None = None,
                progress: Callable[[str, float, float | None], None] | None = None) -> dict:
    """The whole benchmark: assemble (or reuse) the corpus, measure every clip, derive the
    figures, write ``quality.json`` and the report under ``out_dir``; returns the result.

    progress(text, advance, total): called as work is done (total set once, when known).
    """
    from ...envinfo import environment, package_version
    from .. import report
    from ..corpus import assemble

    t_start = time.perf_counter()

    def say(text: str, advance: float = 0.0, total: float | None = None) -> None:
        if progress is not None:
            progress(text, advance, total)

    sources = select_sources(settings, clip_paths, quick, only)
    if clip_paths:
        corpus_dir = os.path.join(out_dir, "clips")
    os.makedirs(out_dir, exist_ok=True)
    env = environment(vmaf_available=metrics.vmaf_available(), matplotlib=package_version("matplotlib"),
                      scikit_image=package_version("scikit-image"),
                      imageio_ffmpeg=package_version("imageio-ffmpeg"))
    say("assembling the corpus")
    corpus = assemble(corpus_dir, sources, settings.scale, on_clip=lambda n, st: say(f"corpus: {n} {st}"))
    if not corpus.clips:
        skipped = "; ".join(f"{k['name']}: {k['reason']}" for k in corpus.skipped) or "none"
        raise SourceError(f"expected at least one clip to measure in {corpus_dir}, got none (skipped: {skipped})")
    per_clip = 4 + settings.gate + sum(len(settings.budgets) if n not in FIXED else 1 for n in settings.schedulers)
    per_clip += settings.fidelity_chunks * (11 + len(settings.schedulers) + settings.fidelity_random) * 5 // 6
    per_clip += (len(NODE_BIASES) - 1) * len(settings.budgets) if settings.compare_biases else 0
    say("measuring", 0, per_clip * len(corpus.clips))
    clips, figures = [], os.path.join(out_dir, "figures")
    cache_dir = os.path.join(corpus_dir, "cache")
    for entry in corpus.clips:
        result, vis = run_clip(entry, settings, cache_dir,
                               tick=lambda text, advance=0.0: say(text, advance))
        report.clip_figures(result, vis, figures)
        clips.append(result)
        del vis
    summary = summarize(clips, settings)
    result = {"benchmark": "quality", "command": command, "psnr_rule": PSNR_RULE,
              "settings": settings_json(settings), "quick": quick,
              "command_clips": list(clip_paths) if clip_paths else None,
              "corpus": {"dir": os.path.abspath(corpus_dir), "scale": corpus.scale,
                         "clips": [{k: e[k] for k in ("name", "kind", "description", "licence", "sources", "hr", "lr")}
                                   for e in corpus.clips],
                         "skipped": corpus.skipped},
              "clips": clips, "summary": summary,
              "environment": env, "seconds": round(time.perf_counter() - t_start, 1)}
    result = _json_ready(result)
    with open(os.path.join(out_dir, "quality.json"), "w") as fh:
        json.dump(result, fh, indent=1, allow_nan=False)
    report.write_report(result, out_dir)
    return result


def _json_ready(obj):
    """Strict JSON: numpy scalars to Python, NaN/inf to None, floats rounded."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return round(v, 6) if np.isfinite(v) else None
    if isinstance(obj, np.ndarray):
        return _json_ready(obj.tolist())
    return obj
