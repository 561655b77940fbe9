"""A quality run's derived figures, from the measured runs alone (``quality.json`` holds all
they need, so ``--rederive`` recomputes them): per clip the gain kept, the anchor-size savings
and the per-node-bias figures; over clips the averages and the targets (docs/quality-benchmark.md,
"Derived figures" and "Targets").

``TARGETS`` is the one table of targets: the summary judges each one from it and the report
shows it from it.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ...graph import NODE_BIASES
from .. import metrics
from .settings import FIXED, OURS, SAVING_AGAINST, QualitySettings, budget_key

# dag-greedy is compared with these at every budget (the within-0.01 dB target)
COMPARED_SCHEDULERS = ("palantir", "neuroscaler", "key-uniform", "uniform")

PSNR_RULE = "mean-mse"  # a run's PSNR is 10*log10(255^2 / mean over frames of the frame's MSE)
LEGACY_PSNR_RULE = "mean-of-frame-psnr"  # before: the mean of per-frame PSNRs, exact frames capped at 100 dB


# -- per clip ----------------------------------------------------------------------------------

def _curve(runs: dict, name: str, none_run: dict) -> tuple[list[float], list[float]]:
    pts = [(0.0, none_run["psnr_yuv_db"])]
    for r in runs.get(name, {}).values():
        pts.append((r["sr_share"], r["psnr_yuv_db"]))
    pts.sort()
    return [p[0] for p in pts], [p[1] for p in pts]


def derive(clip: dict) -> dict:
    """Gain kept, anchor-size savings and the dag-greedy vs palantir check of one clip."""
    base, runs = clip["baselines"], clip["runs"]
    q_bil, q_all = base["bilinear"]["psnr_yuv_db"], base["all"]["psnr_yuv_db"]
    kept = {name: {b: metrics.gain_kept(r["psnr_yuv_db"], q_bil, q_all) for b, r in per.items()}
            for name, per in runs.items()}
    kept["none"] = {"0%": metrics.gain_kept(base["none"]["psnr_yuv_db"], q_bil, q_all)}
    kept["bicubic"] = {"0%": metrics.gain_kept(base["bicubic"]["psnr_yuv_db"], q_bil, q_all)}
    # The headline reading: the gain over per-frame bicubic (what a plain upscale already gives);
    # the gain over bilinear above is the paper's reading, reported beside it.
    q_bic = base["bicubic"]["psnr_yuv_db"]
    kept_bic = {name: {b: metrics.gain_kept(r["psnr_yuv_db"], q_bic, q_all) for b, r in per.items()}
                for name, per in runs.items()}
    kept_bic["none"] = {"0%": metrics.gain_kept(base["none"]["psnr_yuv_db"], q_bic, q_all)}
    saving = {}
    if OURS in runs:
        ours = _curve(runs, OURS, base["none"])
        for other in SAVING_AGAINST:
            if other in runs:
                pts = metrics.anchor_saving(ours, _curve(runs, other, base["none"]), floor=base["none"]["psnr_yuv_db"])
                saving[other] = {"points": pts, "mean": metrics.mean_finite(p["saving"] for p in pts),
                                 "unreached": sum(p["saving"] is None for p in pts)}
    vs_pal = None
    if OURS in runs and "palantir" in runs:
        vs_pal = {b: round(runs[OURS][b]["psnr_yuv_db"] - runs["palantir"][b]["psnr_yuv_db"], 4)
                  for b in runs[OURS] if b in runs["palantir"]}
    # Gain kept only means something where SR beats what reuse alone gives.
    sr_helps = q_all > base["none"]["psnr_yuv_db"]
    return {"gain_kept": kept, "gain_kept_vs_bicubic": kept_bic, "saving": saving,
            "dag_greedy_minus_palantir_db": vs_pal, "sr_beats_reuse_alone": bool(sr_helps)}


def bias_figures(clip: dict) -> dict:
    """Per node bias: dag-greedy's gain kept over bilinear and over bicubic at every budget, and
    the estimator fidelity (Spearman over the anchor-set family) where it was measured."""
    if "node_bias_runs" not in clip:
        return {}
    base = clip["baselines"]
    q_all = base["all"]["psnr_yuv_db"]
    fid = (clip.get("fidelity") or {}).get("spearman_family_by_bias_mean", {})
    return {"node_bias": {kind: {
        "gain_kept": {b: metrics.gain_kept(r["psnr_yuv_db"], base["bilinear"]["psnr_yuv_db"], q_all) for b, r in per.items()},
        "gain_kept_vs_bicubic": {b: metrics.gain_kept(r["psnr_yuv_db"], base["bicubic"]["psnr_yuv_db"], q_all)
                                 for b, r in per.items()},
        "psnr_yuv_db": {b: r["psnr_yuv_db"] for b, r in per.items()},
        "spearman_family": fid.get(kind)} for kind, per in clip["node_bias_runs"].items()}}


def family_spread_db(fidelity: dict | None) -> float | None:
    """How far apart the fidelity family's anchor sets measure: 10 log10 of the largest over the
    smallest chunk MSE among the family's sets (equal size), the widest over the chunks. A
    ranking of sets that differ by a few thousandths of a dB says little about the model."""
    spans = []
    for chunk in (fidelity or {}).get("chunks", []):
        mse = [r["mse_sum"] for r in chunk.get("sets", [])[:chunk.get("family_size", 0)]]
        if len(mse) > 1 and min(mse) > 0:
            spans.append(10 * np.log10(max(mse) / min(mse)))
    return float(max(spans)) if spans else None


# -- targets -----------------------------------------------------------------------------------

def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and np.isfinite(v)]


def _kept(clips: Sequence[dict], budget: float, key: str = "gain_kept") -> list[float]:
    """dag-greedy's gain kept at ``budget`` on each clip that has it."""
    return _finite(c.get(key, {}).get(OURS, {}).get(budget_key(budget)) for c in clips)


def _savings(clips: Sequence[dict], other: str = "neuroscaler") -> list[float]:
    return _finite(c.get("saving", {}).get(other, {}).get("mean") for c in clips)


def _spearman(clips: Sequence[dict]) -> list[float]:
    return _finite((c.get("fidelity") or {}).get("spearman_family_mean") for c in clips)


def _y_over_bicubic(clips: Sequence[dict], run: Callable[[dict], dict | None]) -> list[float]:
    """PSNR-Y of a run minus per-frame bicubic's, on each clip that has both."""
    out = []
    for c in clips:
        r, bic = run(c), c.get("baselines", {}).get("bicubic")
        if r is not None and bic is not None and "psnr_y_db" in r and "psnr_y_db" in bic:
            out.append(r["psnr_y_db"] - bic["psnr_y_db"])
    return out


def _ours_minus_best_other(clips: Sequence[dict]) -> list[float]:
    """dag-greedy's PSNR (Y+U+V) minus the best of the compared schedulers', per clip and budget."""
    out = []
    for c in clips:
        runs = c.get("runs", {})
        for b, r in runs.get(OURS, {}).items():
            others = [runs[o][b]["psnr_yuv_db"] for o in COMPARED_SCHEDULERS if b in runs.get(o, {})]
            if others:
                out.append(r["psnr_yuv_db"] - max(others))
    return out


def _pal(clips: Sequence[dict]) -> list[float]:
    return _finite(v for c in clips for v in (c.get("dag_greedy_minus_palantir_db") or {}).values())


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _min(values: list[float]) -> float | None:
    return float(np.min(values)) if values else None


@dataclass(frozen=True)
class Target:
    """One target of the quality benchmark.

    key: its key in ``summary["targets"]``; text: what it says (the report's wording);
    threshold and comparison (">=" or ">"): met when ``value comparison threshold``;
    unit: how the value reads ("share": a fraction shown in %, "dB", "rho": a rank correlation);
    clips: "averaged" (the clips in the averages: SR beats reuse alone there) or "all";
    value: the figure from those clips (None: not measured, the target is left out);
    vs_bicubic: the same figure over per-frame bicubic, shown beside a gain-kept target read
    over bilinear; every_clip: a target judged on every clip also needs the figure on each.
    """

    key: str
    text: str
    threshold: float
    comparison: str
    unit: str
    clips: str
    value: Callable[[Sequence[dict]], float | None]
    vs_bicubic: Callable[[Sequence[dict]], float | None] | None = None
    every_clip: Callable[[Sequence[dict]], list] | None = None

    def met(self, value: float, clips: Sequence[dict]) -> bool:
        ok = {">=": operator.ge, ">": operator.gt}[self.comparison](value, self.threshold)
        if self.every_clip is not None:
            ok = ok and len(self.every_clip(clips)) == len(clips)
        return bool(ok)


# The paper's figures are the floor (the first seven, read over bilinear as the paper reads them);
# the others are the project's: dag-greedy against every scheduler, the estimator per clip, reuse
# against bicubic, the gain kept over bicubic, and the network's gain over bicubic.
TARGETS: tuple[Target, ...] = (
    Target("gain_kept_5pct_mean>=0.70", "quality gain kept at 5%, average over clips >= 70% (over bilinear)",
           0.70, ">=", "share", "averaged", lambda cs: _mean(_kept(cs, 0.05)),
           vs_bicubic=lambda cs: _mean(_kept(cs, 0.05, "gain_kept_vs_bicubic"))),
    Target("gain_kept_5pct_min>=0.54", "quality gain kept at 5%, no clip below 54% (over bilinear)",
           0.54, ">=", "share", "averaged", lambda cs: _min(_kept(cs, 0.05)),
           vs_bicubic=lambda cs: _min(_kept(cs, 0.05, "gain_kept_vs_bicubic"))),
    Target("gain_kept_1.67pct_mean>=0.50", "quality gain kept at 1.67%, average >= 50% (over bilinear)",
           0.50, ">=", "share", "averaged", lambda cs: _mean(_kept(cs, 1 / 60)),
           vs_bicubic=lambda cs: _mean(_kept(cs, 1 / 60, "gain_kept_vs_bicubic"))),
    Target("saving_vs_neuroscaler_mean>=0.384",
           "anchor-size saving vs neuroscaler at equal PSNR, average >= 38.4%",
           0.384, ">=", "share", "averaged", lambda cs: _mean(_savings(cs))),
    Target("saving_vs_neuroscaler_positive_every_clip",
           "anchor-size saving vs neuroscaler positive on every clip (lowest clip)",
           0.0, ">", "share", "averaged", lambda cs: _min(_savings(cs)), every_clip=_savings),
    Target("dag_greedy_never_below_palantir",
           "dag-greedy never worse than palantir at any budget (min difference, dB)",
           0.0, ">=", "dB", "all", lambda cs: _min(_pal(cs))),
    Target("spearman_mean>=0.9", "estimator fidelity: Spearman(J, measured MSE) >= 0.9 on average",
           0.9, ">=", "rho", "all", lambda cs: _mean(_spearman(cs))),
    Target("dag_greedy_within_0.01db_of_every_scheduler",
           "dag-greedy at or above palantir, neuroscaler, key-uniform and uniform at every budget on every "
           "clip, within 0.01 dB (min of dag-greedy minus the best of them, PSNR Y+U+V)",
           -0.01, ">=", "dB", "all", lambda cs: _min(_ours_minus_best_other(cs))),
    Target("spearman_min>=0.8", "estimator fidelity: Spearman >= 0.8 on every clip with a measurable SR gain "
           "(lowest clip)", 0.8, ">=", "rho", "averaged", lambda cs: _min(_spearman(cs))),
    Target("reuse_not_below_bicubic_every_clip",
           "reuse with no anchors >= per-frame bicubic PSNR-Y on every clip (min difference, dB)",
           0.0, ">=", "dB", "all", lambda cs: _min(_y_over_bicubic(cs, lambda c: c.get("baselines", {}).get("none")))),
    Target("gain_kept_vs_bicubic_5pct_mean>=0.60",
           "dag-greedy at 5% keeps >= 60% of all-frame SR's gain over per-frame bicubic on average",
           0.60, ">=", "share", "averaged", lambda cs: _mean(_kept(cs, 0.05, "gain_kept_vs_bicubic"))),
    Target("all_frame_sr_over_bicubic_mean>=0.8db",
           "all-frame SR >= +0.8 dB PSNR-Y over per-frame bicubic on average",
           0.8, ">=", "dB", "all", lambda cs: _mean(_y_over_bicubic(cs, lambda c: c.get("baselines", {}).get("all")))),
    Target("all_frame_sr_above_bicubic_every_clip",
           "all-frame SR above per-frame bicubic (PSNR-Y) on every clip (min difference, dB)",
           0.0, ">", "dB", "all", lambda cs: _min(_y_over_bicubic(cs, lambda c: c.get("baselines", {}).get("all")))),
    Target("dag_greedy_5pct_over_bicubic_mean>=0.6db",
           "dag-greedy at 5% >= +0.6 dB PSNR-Y over per-frame bicubic on average",
           0.6, ">=", "dB", "all",
           lambda cs: _mean(_y_over_bicubic(cs, lambda c: c.get("runs", {}).get(OURS, {}).get(budget_key(0.05))))),
)


def target(key: str) -> Target | None:
    """The target of ``TARGETS`` with this key (None for a key it does not have, e.g. from an
    older quality.json)."""
    return next((t for t in TARGETS if t.key == key), None)


def judge_targets(clips: Sequence[dict], averaged: Sequence[dict]) -> dict:
    """Each target of ``TARGETS`` that could be measured: its value, whether it is met, and
    (gain-kept targets read over bilinear) the same figure over bicubic."""
    out = {}
    for t in TARGETS:
        cs = averaged if t.clips == "averaged" else clips
        value = t.value(cs)
        if value is None:
            continue
        row = {"value": value, "met": t.met(value, cs)}
        if t.vs_bicubic is not None:
            row["value_vs_bicubic"] = t.vs_bicubic(cs)
        out[t.key] = row
    return out


# -- over clips --------------------------------------------------------------------------------

def summarize(clips: list[dict], settings: QualitySettings) -> dict:
    """Averages over clips and the targets (``TARGETS``).

    Clips where all-frame SR does not beat reuse without anchors (``sr_beats_reuse_alone`` false)
    have no SR gain to keep: they are listed and left out of the averages and of the targets
    judged on the averaged clips.
    """
    valid = [c for c in clips if c.get("sr_beats_reuse_alone", True)]
    summary: dict = {"clips": [c["name"] for c in clips], "clips_in_averages": [c["name"] for c in valid],
                     "clips_left_out": [c["name"] for c in clips if c not in valid]}

    def mean_kept(key: str, cs: list[dict]) -> dict:
        return {budget_key(b): {name: metrics.mean_finite(c.get(key, {}).get(name, {}).get(budget_key(b)) for c in cs)
                                for name in settings.schedulers if name not in FIXED} for b in settings.budgets}

    summary["gain_kept_mean"] = mean_kept("gain_kept", valid)
    summary["gain_kept_vs_bicubic_mean"] = mean_kept("gain_kept_vs_bicubic", valid)
    summary["gain_kept_mean_all_clips"] = mean_kept("gain_kept", clips)
    summary["clips_per_scheduler"] = {name: sum(name in c.get("runs", {}) for c in valid)
                                      for name in settings.schedulers if name not in FIXED}
    sav = {o: [c["saving"].get(o, {}).get("mean") for c in valid] for o in SAVING_AGAINST}
    summary["saving_mean"] = {o: metrics.mean_finite(v) for o, v in sav.items()}
    summary["spearman_family_mean"] = metrics.mean_finite(c.get("fidelity", {}).get("spearman_family_mean")
                                                          for c in clips)
    summary["spearman_random_only_mean"] = metrics.mean_finite(
        c.get("fidelity", {}).get("spearman_random_only_mean") for c in clips)
    for ablation in ("noretention", "noblend"):
        summary[f"spearman_family_{ablation}_mean"] = metrics.mean_finite(
            c.get("fidelity", {}).get(f"spearman_family_{ablation}_mean") for c in clips)
    summary["targets"] = judge_targets(clips, valid)
    summary["node_bias"] = _bias_summary(clips, valid, settings)
    return summary


def _bias_summary(clips: list[dict], valid: list[dict], settings: QualitySettings) -> dict:
    """Means over clips of each node bias's fidelity (every clip where measured) and dag-greedy
    gain kept (the clips in the averages)."""
    kinds = sorted({k for c in clips for k in c.get("node_bias", {})}, key=lambda k: NODE_BIASES.index(k)
                   if k in NODE_BIASES else len(NODE_BIASES))
    return {kind: {
        "spearman_family_mean": metrics.mean_finite(c.get("node_bias", {}).get(kind, {}).get("spearman_family")
                                                    for c in clips),
        "gain_kept_mean": {budget_key(b): metrics.mean_finite(
            c.get("node_bias", {}).get(kind, {}).get("gain_kept", {}).get(budget_key(b)) for c in valid)
            for b in settings.budgets},
        "gain_kept_vs_bicubic_mean": {budget_key(b): metrics.mean_finite(
            c.get("node_bias", {}).get(kind, {}).get("gain_kept_vs_bicubic", {}).get(budget_key(b)) for c in valid)
            for b in settings.budgets}} for kind in kinds}


def psnr_rule_of(result: dict) -> str:
    """The rule a quality.json's PSNRs were measured by: PSNR_RULE when it says so and every run
    stores its mean MSE, else LEGACY_PSNR_RULE."""
    runs = [r for c in result.get("clips", []) for r in
            [*c.get("baselines", {}).values(), *(r for per in c.get("runs", {}).values() for r in per.values())]]
    if result.get("psnr_rule") == PSNR_RULE and all("mse_yuv" in r for r in runs):
        return PSNR_RULE
    return LEGACY_PSNR_RULE
