"""The quality benchmark's report: plots, a frame strip with anchors, a side-by-side crop, and
Markdown + HTML pages that quote every figure of ``quality.json``."""

from __future__ import annotations

import html
import os
import re

import numpy as np

from ..stream import yuv_to_rgb
from .quality import derived as _derived

# The patch grid when a run sets none (``QualitySettings.grid_px``).
DEFAULT_GRID_TEXT = "the pipeline's default (64 px, or 32 px below 1080p; 128 px for LR wider than 1280)"
COLOURS = {"dag-greedy": "#d62728", "palantir": "#1f77b4", "neuroscaler": "#2ca02c", "key-uniform": "#9467bd",
           "uniform": "#8c564b", "nemo": "#e377c2", "dag-greedy-noweights": "#ff9896",
           "dag-greedy-notexture": "#ffbb78", "dag-greedy-noretention": "#c5b0d5",
           "dag-greedy-noblend": "#dbdb8d"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(name: str, summary: dict) -> str:
    """Scheduler name, with its clip count when it ran on fewer clips than the averages cover."""
    n = summary.get("clips_per_scheduler", {}).get(name)
    total = len(summary.get("clips_in_averages", []))
    return f"{name} ({n} of {total} clips)" if n is not None and n < total else name


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def plot_clip(clip: dict, path: str) -> None:
    """PSNR (Y+U+V) versus the measured SR share, one curve per budgeted scheduler."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=80)
    base = clip["baselines"]
    for name, per in clip["runs"].items():
        pts = sorted((r["sr_share"] * 100, r["psnr_yuv_db"]) for r in per.values())
        pts = [(0.0, base["none"]["psnr_yuv_db"])] + pts
        ax.plot(*zip(*pts), marker="o", ms=3, lw=2.2 if name == "dag-greedy" else 1.2,
                color=COLOURS.get(name), label=name)
    styles = {"bilinear": ":", "bicubic": "--", "all": "-."}
    for name, style in styles.items():
        ax.axhline(base[name]["psnr_yuv_db"], ls=style, color="grey", lw=1)
        ax.annotate(name if name != "all" else "all-frame SR", (0.2, base[name]["psnr_yuv_db"]), fontsize=7,
                    color="grey", va="bottom")
    if "keyframes" in base:
        ax.plot([base["keyframes"]["sr_share"] * 100], [base["keyframes"]["psnr_yuv_db"]], "k^", ms=5,
                label="keyframes")
    ax.set_xlabel("SR share of LR pixels (%)")
    ax.set_ylabel("PSNR Y+U+V (dB)")
    ax.set_title(f"{clip['name']}: {clip['lr']} -> {clip['hr']}, {clip['frames']} frames", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_gain_kept(summary: dict, path: str) -> None:
    """Average quality gain kept (relative to all-frame SR) per budget: over per-frame bicubic
    (solid, the headline reading) and over bilinear (dashed, the paper's reading)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=80)
    readings = [(summary.get("gain_kept_vs_bicubic_mean") or {}, "-", "o", ""),
                (summary["gain_kept_mean"], "--", None, " (over bilinear)")]
    budgets = list(summary["gain_kept_mean"])
    xs = [float(b.rstrip("%")) for b in budgets]
    names = sorted({n for b in budgets for n in summary["gain_kept_mean"][b]})
    for per, style, marker, suffix in readings:
        for name in names:
            ys = [per.get(b, {}).get(name) for b in budgets]
            pts = [(x, 100 * y) for x, y in zip(xs, ys) if y is not None]
            if pts:
                ax.plot(*zip(*pts), ls=style, marker=marker, ms=3, alpha=1.0 if not suffix else 0.45,
                        lw=2.2 if name == "dag-greedy" else 1.2, color=COLOURS.get(name),
                        label=_label(name, summary) + suffix if name == "dag-greedy" or not suffix else None)
    for key, style in (("gain_kept_vs_bicubic_5pct_mean>=0.60", "-"), ("gain_kept_5pct_mean>=0.70", ":")):
        t = _derived.target(key)
        reading = "over bicubic" if "bicubic" in key else "over bilinear"
        ax.axhline(100 * t.threshold, color="grey", ls=style, lw=1,
                   label=f"{100 * t.threshold:.0f}% target at 5% ({reading})")
    ax.set_xlabel("budget (% of LR pixels through SR)")
    ax.set_ylabel("quality gain kept (%)")
    ax.set_title("Average over clips: gain kept vs all-frame SR, over bicubic (solid) / bilinear (dashed)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _thumb(rgb: np.ndarray, width: int) -> "object":
    from PIL import Image

    img = Image.fromarray(rgb)
    if img.width > width:
        img = img.resize((width, max(1, round(img.height * width / img.width))), Image.BILINEAR)
    return img


def anchor_strip(strip: list[dict], path: str, width: int = 220) -> None:
    """LR frames side by side with the chosen anchor patches outlined."""
    from PIL import Image, ImageDraw

    tiles = []
    for item in strip:
        rgb = yuv_to_rgb(*item["planes"])
        h, w = rgb.shape[:2]
        img = _thumb(rgb, width)
        k = img.width / w
        d = ImageDraw.Draw(img)
        for y0, y1, x0, x1 in item["boxes"]:
            d.rectangle([x0 * k, y0 * k, x1 * k - 1, y1 * k - 1], outline=(255, 40, 40), width=1)
        d.text((3, 2), f"#{item['index']} {item['kind']} {len(item['boxes'])}", fill=(255, 255, 0))
        tiles.append(img)
    if not tiles:
        return
    out = Image.new("RGB", (sum(t.width for t in tiles) + 3 * (len(tiles) - 1), max(t.height for t in tiles)),
                    (255, 255, 255))
    x = 0
    for t in tiles:
        out.paste(t, (x, 0))
        x += t.width + 3
    out.save(path, quality=85, optimize=True)


def _detail_window(y: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` window with the most gradient energy (coarse search)."""
    g = np.abs(np.diff(y.astype(np.float32), axis=1))[:-1] + np.abs(np.diff(y.astype(np.float32), axis=0))[:, :-1]
    h, w = g.shape
    step = max(size // 4, 8)
    best, at = -1.0, (0, 0)
    for r in range(0, max(h - size, 0) + 1, step):
        for c in range(0, max(w - size, 0) + 1, step):
            e = float(g[r:r + size, c:c + size].sum())
            if e > best:
                best, at = e, (r, c)
    return at


def side_by_side(outputs: dict, gt, path: str, labels: dict) -> None:
    """The same detailed HR crop of bilinear / anchorsr / all-frame SR / ground truth."""
    from PIL import Image, ImageDraw

    size = min(160, gt[0].shape[0], gt[0].shape[1])
    r, c = _detail_window(gt[0], size)
    panels = []
    for key, text in labels.items():
        planes = gt if key == "gt" else outputs.get(key)
        if planes is None:
            continue
        rgb = yuv_to_rgb(*planes)[r:r + size, c:c + size]
        img = Image.fromarray(np.ascontiguousarray(rgb))
        ImageDraw.Draw(img).text((3, 3), text, fill=(255, 255, 0))
        panels.append(img)
    out = Image.new("RGB", (len(panels) * (size + 4) - 4, size), (255, 255, 255))
    for i, p in enumerate(panels):
        out.paste(p, (i * (size + 4), 0))
    out.save(path, optimize=True)


def clip_figures(clip: dict, vis: dict, folder: str) -> None:
    """Write a clip's plot, anchor strip and crop; record their file names in ``clip``."""
    os.makedirs(folder, exist_ok=True)
    name = clip["name"]
    files = {"plot": f"{name}_psnr.png", "strip": f"{name}_anchors.jpg", "crop": f"{name}_crop.png"}
    plot_clip(clip, os.path.join(folder, files["plot"]))
    if vis["strip"]:
        anchor_strip(vis["strip"], os.path.join(folder, files["strip"]))
    else:
        files.pop("strip")
    side_by_side(vis["outputs"], vis["gt"], os.path.join(folder, files["crop"]),
                 {"bilinear": "bilinear", "dag-greedy 5%": "anchorsr (dag-greedy, 5%)",
                  "all": "all-frame SR", "gt": "ground truth"})
    clip["figures"] = {k: f"figures/{v}" for k, v in files.items()}
    clip["figures"]["crop_frame"] = vis["frame"]


# --- pages -----------------------------------------------------------------------------------------

def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def markdown(result: dict) -> str:
    s, summ, env = result["settings"], result["summary"], result["environment"]
    budgets = s["budgets"]
    L = ["# anchorsr quality benchmark", ""]
    cmd = result.get("command") or ("anchorsr bench quality" + (" --quick" if result.get("quick") else ""))
    L += [f"Produced by `{cmd}` at commit `{env.get('commit')}` on {env.get('cpu')} "
          f"({env.get('cores')} cores). Every number below is in `quality.json` next to this page.", ""]
    L += [f"Protocol: HR clip = ground truth; LR = HR downscaled x{s['scale']} (bicubic), libx264 live profile "
          f"({'bitrate' if s['encoding'] == 'rate' else 'CRF'} encoding, GOP 60, 1 reference, no B-frames); "
          f"every scheduler planned by `plan_stream` and rebuilt by the reconstruction loop of `enhance` "
          f"({s['loop']} loop, reuse gate {'on' if s.get('gate', True) else 'off'}) with the shipped SR network "
          f"on the anchors; chunks of {s['chunk_frames']} frames; patch grid {s['patch_px'] or DEFAULT_GRID_TEXT}. "
          "Budgets are shares of LR pixels through SR; curves use the measured share. "
          "Quality gain kept = (PSNR(method) - PSNR(base)) / (PSNR(all-frame SR) - PSNR(base)), with per-frame "
          "**bicubic** as the base (the headline reading: the gain a plain upscale does not already give) and "
          "bilinear (the paper's reading) beside it. PSNR over Y, U and V combined; a clip's PSNR is that of the "
          "mean MSE over its frames, so one exact (e.g. black) frame counts as one frame, not as an infinite or "
          "capped PSNR.", ""]
    if result.get("psnr_rule") != "mean-mse":
        L += ["**Note:** the figures on this page were measured before the mean-MSE rule: each PSNR is the mean "
              "of per-frame PSNRs (a frame identical to the ground truth counted as 100 dB), and `quality.json` "
              "stores no per-frame MSE to recompute them from. They are shown as measured; a new run of "
              "`anchorsr bench quality` measures by the rule.", ""]
    L += ["## Targets", ""]
    L += _table(["target", "clips", "threshold", "measured", "gain kept over bicubic", ""],
                target_rows(summ.get("targets", {})))
    if summ.get("clips_left_out"):
        L += [f"Left out of the averages and targets: {', '.join(summ['clips_left_out'])} (all-frame SR does not "
              "beat the reuse path without any anchor there, so there is no SR gain to keep; its numbers are "
              "below).", ""]
    L += ["## Averages over clips", ""]
    names = sorted({n for b in budgets for n in summ["gain_kept_mean"].get(b, {})})
    kb = summ.get("gain_kept_vs_bicubic_mean", {})
    L += ["Quality gain kept over per-frame **bicubic** (share of all-frame SR's PSNR gain over bicubic; "
          "(PSNR(method) - PSNR(bicubic)) / (PSNR(all-frame SR) - PSNR(bicubic))), and beside it over bilinear "
          "(the paper's reading): the reuse path upsamples with bicubic-grade filters, so part of the gain over "
          "bilinear comes without any SR. Each cell: over bicubic / over bilinear.", ""]
    L += _table(["scheduler"] + budgets,
                [[_label(n, summ)] + [f"**{_pct(kb.get(b, {}).get(n))}** / {_pct(summ['gain_kept_mean'][b].get(n))}"
                                      for b in budgets] for n in names])
    L += ["Anchor-size saving of dag-greedy at equal PSNR (average over each clip's points where "
          "dag-greedy's curve reaches the other's PSNR, then over clips):", ""]
    L += _table(["versus", "saving"], [[k, _pct(v)] for k, v in summ["saving_mean"].items()])
    L += [f"Estimator fidelity (Spearman between J and measured MSE, per chunk, over a family of anchor sets "
          f"of equal size spanning the range): **{_fmt(summ.get('spearman_family_mean'))}**; among purely random "
          f"sets of equal size only: {_fmt(summ.get('spearman_random_only_mean'))} (J barely varies there: not the "
          f"target); the same family with edges that carry all of the reference's detail (no sub-pixel "
          f"retention, docs/method.md §2.3): {_fmt(summ.get('spearman_family_noretention_mean'))}; with a graph "
          f"that takes an anchor to replace its node's error instead of blending with reuse (docs/method.md "
          f"§1.2): {_fmt(summ.get('spearman_family_noblend_mean'))}.", "", "![average gain kept](figures/gain_kept.png)", ""]
    L += node_bias_section(result)
    L += ["## Per clip", ""]
    for clip in result["clips"]:
        base = clip["baselines"]
        L += [f"### {clip['name']} ({clip['kind']}, LR {clip['lr']} -> HR {clip['hr']}, {clip['frames']} frames, "
              f"{clip['patch_px']} px patches)", ""]
        rows = []
        for n in ("bilinear", "bicubic", "none", "none-nogate", "none-nofeather", "none-oracle-gate", "keyframes",
                  "all"):
            if n in base:
                r = base[n]
                kb_clip = clip.get("gain_kept_vs_bicubic", {})
                rows.append([{"none": "none (reuse, no SR)", "none-nogate": "none, reuse gate off",
                              "none-nofeather": "none, seams not feathered",
                              "none-oracle-gate": "none, oracle gate (reads the truth: a bound)"}.get(n, n), "-" if n not in ("keyframes",) else _pct(r["sr_share"]),
                             _fmt(r["psnr_yuv_db"], 2), _fmt(r["psnr_y_db"], 2), _fmt(r.get("ssim_y"), 4),
                             _fmt(r.get("vmaf"), 2),
                             _pct(kb_clip.get(n, {}).get("0%")) if n == "none" else "-",
                             _pct(clip["gain_kept"].get(n, {}).get("0%")) if n in ("none", "bicubic") else "-",
                             _fmt(r.get("cpu_ms_per_frame"), 1)])
        for n, per in clip["runs"].items():
            for b, r in per.items():
                rows.append([f"{n} {b}", _pct(r["sr_share"]), _fmt(r["psnr_yuv_db"], 2), _fmt(r["psnr_y_db"], 2),
                             _fmt(r.get("ssim_y"), 4), _fmt(r.get("vmaf"), 2),
                             _pct(clip.get("gain_kept_vs_bicubic", {}).get(n, {}).get(b)),
                             _pct(clip["gain_kept"][n].get(b)), _fmt(r.get("cpu_ms_per_frame"), 1)])
        L += _table(["method", "SR share", "PSNR YUV", "PSNR Y", "SSIM Y", "VMAF", "gain kept over bicubic",
                     "over bilinear", "CPU ms/frame"], rows)
        L += ["CPU ms/frame: CPU time (all threads) of the method's own work per output frame: upsampling; "
              "or reuse + gate + scheduling (graph included) + SR, where SR is the anchor pixels times the "
              "network's measured CPU per pixel on this clip (a whole-frame pass where cheaper), and "
              "all-frame SR one measured whole-frame pass per frame. Decoding and measuring are not counted.", ""]
        sv = clip.get("saving", {})
        if sv:
            L += ["Saving of dag-greedy at equal PSNR: " + ", ".join(
                f"vs {k} {_pct(v['mean'])}" + (f" ({v['unreached']} point(s) unreached)" if v["unreached"] else "")
                for k, v in sv.items()) + ".", ""]
        if clip.get("fidelity"):
            spread = _derived.family_spread_db(clip["fidelity"])
            L += [f"Estimator fidelity: Spearman {_fmt(clip['fidelity']['spearman_family_mean'])} over the family, "
                  f"{_fmt(clip['fidelity']['spearman_random_only_mean'])} among random sets only, "
                  f"{_fmt(clip['fidelity'].get('spearman_family_noretention_mean'))} over the family without "
                  f"sub-pixel retention, {_fmt(clip['fidelity'].get('spearman_family_noblend_mean'))} without "
                  "the anchors' blend in the graph. The family's sets measure within "
                  + (f"{spread:.3f} dB" if spread is not None else "n/a")
                  + " of each other (chunk MSE, best to worst).", ""]
        for note in clip.get("notes", []):
            L += [f"Note: {note}.", ""]
        fig = clip.get("figures", {})
        if "plot" in fig:
            L += [f"![{clip['name']} PSNR vs budget]({fig['plot']})", ""]
        if "strip" in fig:
            L += ["Anchors chosen by dag-greedy at 5% in the first chunk (red boxes, LR frames):", "",
                  f"![{clip['name']} anchors]({fig['strip']})", ""]
        if "crop" in fig:
            L += [f"Frame {fig['crop_frame']}, detail crop (HR pixels, 1:1): bilinear | anchorsr (dag-greedy, 5%) | "
                  "all-frame SR | ground truth", "", f"![{clip['name']} crop]({fig['crop']})", ""]
    L += ["## Corpus", ""]
    L += _table(["clip", "kind", "description", "licence", "LR kb/s (rate / CRF)"],
                [[c["name"], c["kind"], c["description"], c["licence"],
                  f"{c['lr']['rate']['measured_kbps']} / {c['lr']['crf']['measured_kbps']}"]
                 for c in result["corpus"]["clips"]])
    for sk in result["corpus"]["skipped"]:
        L += [f"Skipped: {sk['name']}: {sk['reason']}.", ""]
    if result["clips"]:
        L += [result["clips"][0].get("ssim_note", "") + "; " + result["clips"][0].get("vmaf_note", "") + ".", ""]
    L += ["## Environment", "", "```", *(f"{k}: {v}" for k, v in env.items()), "```", ""]
    return "\n".join(L)


def _target_value(t, v, threshold: bool = False) -> str:
    if v is None:
        return "n/a"
    if t is None:
        return f"{v:.3f}"
    if t.unit == "share":
        return _pct(v)
    if t.unit == "dB":
        return f"{v:g} dB" if threshold else f"{v:+.3f} dB"
    return f"{v:g}" if threshold else f"{v:.3f}"


def target_rows(targets: dict) -> list[list[str]]:
    """The report's target table: each judged target (``summary["targets"]``) with its wording,
    clips, threshold and unit from the one table, ``quality.derived.TARGETS``."""
    rows = []
    for key, got in targets.items():
        t = _derived.target(key)
        clips = "-" if t is None else ("every clip" if t.clips == "all" else "clips in the averages")
        threshold = "-" if t is None else f"{t.comparison} {_target_value(t, t.threshold, threshold=True)}"
        over_bicubic = _pct(got.get("value_vs_bicubic")) if t is not None and t.vs_bicubic is not None else "-"
        rows.append([key if t is None else t.text, clips, threshold, _target_value(t, got["value"]), over_bicubic,
                     "met" if got["met"] else "**not met**"])
    return rows


def node_bias_section(result: dict) -> list[str]:
    """The node biases side by side (docs/method.md §2.1): per clip and on average, the estimator
    fidelity and dag-greedy's gain kept with the texture term, the predictor, the oracle and the
    intra pixels' texture."""
    summ = result["summary"].get("node_bias")
    if not summ:
        return []
    budgets = result["settings"]["budgets"]
    kinds = list(summ)
    L = ["## Node bias: texture, predictor, oracle, intra", "",
         f"dag-greedy with each node bias of the DAG (the other graph schedulers use `{result['settings'].get('node_bias')}`, "
         "except palantir, which plans on `texture` as published): "
         "texture (what a bicubic-down / bilinear-up round trip loses), predictor (a per-patch linear model of what "
         "the shipped network restores, fitted offline to its outputs on training photos), oracle (the network run on "
         "every patch: an upper bound, evaluation only), intra (the texture term of the intra pixels only: an inter "
         "pixel adds no error of its own). Fidelity: Spearman between J and the measured MSE over the "
         "anchor-set family (as above). Gain kept: over bicubic / over bilinear.", ""]
    head = ["clip"] + [f"fidelity {k}" for k in kinds] + [f"{k} {b}" for b in budgets for k in kinds]
    rows = []
    for clip in result["clips"]:
        nb = clip.get("node_bias")
        if not nb:
            continue
        rows.append([clip["name"]] + [_fmt(nb.get(k, {}).get("spearman_family")) for k in kinds]
                    + [f"{_pct(nb.get(k, {}).get('gain_kept_vs_bicubic', {}).get(b))} / "
                       f"{_pct(nb.get(k, {}).get('gain_kept', {}).get(b))}" for b in budgets for k in kinds])
    rows.append(["**mean**"] + [_fmt(summ[k].get("spearman_family_mean")) for k in kinds]
                + [f"{_pct(summ[k]['gain_kept_vs_bicubic_mean'].get(b))} / {_pct(summ[k]['gain_kept_mean'].get(b))}"
                   for b in budgets for k in kinds])
    return L + _table(head, rows)


def _fmt(v, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def to_html(md: str) -> str:
    """A small Markdown subset (headings, tables, images, code blocks, paragraphs) as HTML."""
    out, lines, i = [], md.split("\n"), 0

    def inline(t: str) -> str:
        t = html.escape(t)
        t = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', t)
        t = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", t)

    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = lines.index("```", i + 1) if "```" in lines[i + 1:] else len(lines)
            out.append("<pre>" + html.escape("\n".join(lines[i + 1:j])) + "</pre>")
            i = j + 1
            continue
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in rows[0]) + "</tr>" + "".join(
                "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rows[2:]) + "</table>")
            continue
        m = re.match(r"(#+) (.*)", line)
        if m:
            n = len(m.group(1))
            out.append(f"<h{n}>{inline(m.group(2))}</h{n}>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
        i += 1
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>anchorsr quality</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")


def write_report(result: dict, out_dir: str) -> None:
    """report.md, report.html and figures/gain_kept.png under ``out_dir``."""
    os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
    plot_gain_kept(result["summary"], os.path.join(out_dir, "figures", "gain_kept.png"))
    md = markdown(result)
    with open(os.path.join(out_dir, "report.md"), "w") as fh:
        fh.write(md)
    with open(os.path.join(out_dir, "report.html"), "w") as fh:
        fh.write(to_html(md))
