"""A quality run's measured runs: every method on one clip, against the HR ground truth.

Each scheduler at each budget is planned by ``plan_stream`` (chunks cut as ``enhance`` cuts them,
the estimated error carried from chunk to chunk, the same node bias and graph options) on the
gated stream, and the frames are rebuilt by the reconstruction loop of ``enhance``
(``rebuild_frames``: the closed loop, anchors from ``SRPatchSource``, here cutting them from the
cached whole-frame pass). Each output frame is compared with the ground truth (MSE Y+U+V and Y on
every frame, SSIM-Y and VMAF on a frame subsample). A run's PSNR is that of its mean MSE over
the frames (``anchorsr.metrics.clip_psnr``), so an exact frame (MSE 0) counts as one frame, not
as an infinite or capped PSNR (docs/quality-benchmark.md, "Quality protocol").
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator, Sequence

import numpy as np

from ...graph import NODE_BIASES, objective
from ...metrics import mean_mse, psnr_from_mse
from ...pipeline.enhance import rebuild_frames
from ...pipeline.steps import SRCounts, planned_groups
from ...reuse import Reconstructor, upscale_bicubic
from ...reuse.gate import GATE_PX
from ...schedule import chunks_of, get_scheduler, plan_stream
from ...stream import resize_yuv
from ...types import AnchorPlan, Chunk, chroma_box
from .. import metrics
from .inputs import ClipInputs, Tick
from .settings import FIDELITY_BUDGET, FIXED, OURS, QualitySettings, budget_key

KEPT = ("bilinear", "all", f"{OURS} 5%")  # outputs kept for the report's side-by-side crop
STRIP_FRAMES = 6

ChunkPlans = list[tuple[Chunk, AnchorPlan]]


@dataclass
class RunStats:
    """Per-frame measurements of one method on one clip."""

    mse_yuv: list[float] = field(default_factory=list)
    mse_y: list[float] = field(default_factory=list)
    ssim_y: list[float] = field(default_factory=list)
    anchor_px: int = 0
    lr_px: int = 0
    vmaf: float | None = None
    schedule_s: float = 0.0
    # CPU seconds of the method's own work (all threads), by step; see ClipRuns for the model
    cpu_s: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """The run's figures. PSNR by the mean-MSE rule: the PSNR of the mean of the frames' MSEs
        (stored too, as ``mse_yuv`` / ``mse_y``, so the PSNR can be derived again)."""
        mse_yuv, mse_y = mean_mse(self.mse_yuv), mean_mse(self.mse_y)
        out = {"psnr_yuv_db": round(psnr_from_mse(mse_yuv), 4),
               "psnr_y_db": round(psnr_from_mse(mse_y), 4),
               "mse_yuv": round(mse_yuv, 6), "mse_y": round(mse_y, 6),
               "ssim_y": round(float(np.mean(self.ssim_y)), 5) if self.ssim_y else None,
               "sr_share": round(self.anchor_px / self.lr_px, 5) if self.lr_px else 0.0}
        if self.vmaf is not None:
            out["vmaf"] = round(self.vmaf, 3)
        if self.schedule_s:
            out["schedule_ms_per_chunk"] = round(self.schedule_s * 1000, 1)
        n = len(self.mse_y)
        if self.cpu_s and n:
            out["cpu_ms_per_frame"] = round(sum(self.cpu_s.values()) * 1000 / n, 2)
            out["cpu_ms_per_frame_by_step"] = {k: round(v * 1000 / n, 2) for k, v in self.cpu_s.items()}
        return out


class _TimedSource:
    """A patch source that adds up the CPU seconds spent in it (left out of the reuse step)."""

    def __init__(self, inner) -> None:
        self.inner, self.seconds = inner, 0.0

    def __call__(self, frame, boxes, scale):
        c0 = time.process_time()
        try:
            return self.inner(frame, boxes, scale)
        finally:
            self.seconds += time.process_time() - c0


class ClipRuns:
    """The runs on one clip: planning through ``plan_stream``, rebuilding through
    ``rebuild_frames``, measuring against the ground truth.

    CPU per run and step (all threads): the reuse loop (timed, the patch source left out), the
    gate (timed once per clip), SR (anchor pixels x the network's measured cost per pixel, on
    whole frames where a frame's anchors would cost more than one whole-frame pass, as the live
    path does) and scheduling (timed, graph builds included)."""

    def __init__(self, clip: ClipInputs) -> None:
        self.clip, self.s, self.tick, self.name = clip, clip.s, clip.tick, clip.name
        self.source = _TimedSource(clip.patch_source())
        n = len(clip.frames)
        self.keep_frame = min(n - 1, max(n * 3 // 4, 0))  # late in a GOP: drift shows
        self.kept: dict[str, tuple[np.ndarray, ...]] = {}
        # VMAF has a temporal feature: it is measured on one contiguous block of frames.
        self.vmaf_lo = max(0, n // 2 - self.s.vmaf_frames // 2)
        self.chunk_start_state: dict[int, Reconstructor] = {}

    # -- measuring ---------------------------------------------------------------------------
    def measure(self, outputs: Iterable[tuple[int, Sequence[np.ndarray]]], label: str,
                vmaf: bool = False) -> RunStats:
        st = RunStats()
        dist, refs = [], []
        for i, planes in outputs:
            ref = self.clip.ref(i)
            m, my = metrics.frame_mse(planes, ref)
            st.mse_yuv.append(m)
            st.mse_y.append(my)
            if i % self.s.ssim_every == 0:
                st.ssim_y.append(metrics.ssim_y(planes[0], ref[0]))
            if vmaf and self.vmaf_lo <= i < self.vmaf_lo + self.s.vmaf_frames:
                dist.append(tuple(np.array(p_) for p_ in planes))
                refs.append(tuple(np.array(r_) for r_ in ref))
            if i == self.keep_frame and label in KEPT:
                self.kept[label] = tuple(np.array(p_) for p_ in planes)
        if dist:
            st.vmaf = metrics.vmaf(dist, refs)
        self.tick(f"{self.name}: {label}", 1.0)
        return st

    def baseline(self, kind: str, vmaf: bool) -> RunStats:
        """Plain upscaling of every frame: bilinear, bicubic, or all-frame SR (the cached
        whole-frame pass; its cost is the measured pass)."""
        s = self.s.scale
        cpu = {"upsample": 0.0}

        def outputs():
            for f in self.clip.frames:
                c0 = time.process_time()
                if kind == "bilinear":
                    planes = resize_yuv(f.y, f.u, f.v, f.width * s, f.height * s, interpolation="BILINEAR")
                elif kind == "bicubic":
                    planes = upscale_bicubic(f.y, f.u, f.v, s)
                else:
                    planes = self.clip.sr_planes(f.index)
                cpu["upsample"] += time.process_time() - c0
                yield f.index, planes
        st = self.measure(outputs(), kind, vmaf)
        st.cpu_s = {"sr": self.clip.sr_cpu["frame_s"] * len(self.clip.frames)} if kind == "all" else cpu
        if kind == "all":
            st.anchor_px = st.lr_px = 1
        return st

    # -- planning ------------------------------------------------------------------------------
    def empty_plans(self) -> ChunkPlans:
        return [(c, AnchorPlan(c.start, len(c), c.grid)) for c in self.clip.chunks]

    def plans(self, scheduler, budget: float, bias: str | None = None) -> tuple[ChunkPlans, float, float]:
        """``plan_stream`` over the clip's gated frames: (chunk, plan) pairs, the mean wall
        seconds of scheduling per chunk (graph builds excluded) and the CPU seconds of the
        whole clip's scheduling (graph builds included). The graphs come from the clip's cache
        (``ClipInputs.graph``: what plan_stream would build); bias: the node bias kind (the
        settings' own when None)."""
        clip = self.clip
        kind = bias or self.s.node_bias
        node_bias = clip.node_bias(kind)
        in_graphs = {"wall": 0.0, "cpu": 0.0, "built": 0.0}

        def graphs(chunk: Chunk, options: dict):
            t0, c0 = time.perf_counter(), time.process_time()
            ci = clip.chunk_index[chunk.start]
            opts = {k: options[k] for k in ("edge_weights", "texture", "retention")}
            opts["blend"] = options["anchor_weight"] is not None
            # plan_stream withholds the node bias from a scheduler that plans on the texture term
            # as published (``Scheduler.published_bias``)
            k = kind if options["node_bias"] is node_bias else "texture"
            g = clip.graph(ci, k, **opts)
            in_graphs["wall"] += time.perf_counter() - t0
            in_graphs["cpu"] += time.process_time() - c0
            in_graphs["built"] += clip.graph_cpu_s(ci, k, **opts)
            return g

        stream = plan_stream(clip.frames, scheduler, budget, self.s.chunk_frames, clip.patch_px,
                             node_bias=node_bias, graphs=graphs, scale=self.s.scale,
                             anchor_weight=clip.config.anchor_weight)
        out: ChunkPlans = []
        wall = cpu = 0.0
        while True:
            t0, c0 = time.perf_counter(), time.process_time()
            item = next(stream, None)
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
            if item is None:
                break
            out.append(item)
        wall -= in_graphs["wall"]
        cpu += in_graphs["built"] - in_graphs["cpu"]
        return out, wall / max(len(out), 1), cpu

    # -- rebuilding ----------------------------------------------------------------------------
    def rebuild(self, chunk_plans: ChunkPlans, *, reconstructor: Reconstructor | None = None, snapshot: bool = False,
                counts: SRCounts | None = None, cpu: dict | None = None
                ) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
        """(index, planes) of the frames ``rebuild_frames`` rebuilds with ``chunk_plans``.
        reconstructor: the loop's state to start from (fresh when None); snapshot: remember the
        state at each chunk start (for ``fidelity``); cpu["reuse"]: the loop's CPU seconds, the
        patch source left out."""
        rec = reconstructor if reconstructor is not None else Reconstructor(self.clip.config)
        groups = planned_groups(chunk_plans)
        if snapshot:
            self.chunk_start_state[0] = copy.deepcopy(rec)
        loop = rebuild_frames(groups, self.clip.config, self.source, counts, rec)
        source_s = self.source.seconds
        while True:
            c0 = time.process_time()
            item = next(loop, None)
            if cpu is not None:
                cpu["reuse"] = cpu.get("reuse", 0.0) + time.process_time() - c0
            if item is None:
                break
            pf, hr = item
            if snapshot and pf.t == pf.plan.n_frames - 1:  # the state the next chunk starts from
                ci = self.clip.chunk_index[pf.plan.chunk_start] + 1
                if ci < len(self.clip.chunks):
                    self.chunk_start_state[ci] = copy.deepcopy(rec)
            yield pf.frame.index, (hr.y, hr.u, hr.v)
        if cpu is not None:
            cpu["reuse"] -= self.source.seconds - source_s

    def run_plans(self, chunk_plans: ChunkPlans, label: str, vmaf: bool, snapshot: bool = False,
                  schedule_cpu_s: float = 0.0) -> RunStats:
        """Rebuild the clip with ``chunk_plans`` and measure it (CPU by step: see the class)."""
        cpu: dict = {}
        counts = SRCounts()
        st = self.measure(self.rebuild(chunk_plans, snapshot=snapshot, counts=counts, cpu=cpu), label, vmaf)
        st.anchor_px, st.lr_px = counts.anchor_pixels, counts.lr_pixels
        sr, cost = 0.0, self.clip.sr_cpu
        for chunk, plan in chunk_plans:
            areas = chunk.grid.areas()
            per_frame = np.bincount(plan.frames, weights=areas[plan.patches], minlength=len(chunk))
            sr += float(np.minimum(per_frame * cost["patch_s_per_lr_px"],
                                   np.where(per_frame > 0, cost["frame_s"], 0.0)).sum())
        st.cpu_s = {"reuse": cpu.get("reuse", 0.0), "gate": self.clip.gate_cpu_s * len(self.clip.frames), "sr": sr,
                    "schedule": schedule_cpu_s}
        return st

    def reuse_ungated(self) -> RunStats:
        """Reuse alone on the decoded stream without the gate (the gate's ablation)."""
        chunks = [(c, AnchorPlan(c.start, len(c), c.grid)) for c in
                  chunks_of(self.clip.ungated, self.s.chunk_frames, self.clip.patch_px)]
        cpu: dict = {}
        st = self.measure(self.rebuild(chunks, cpu=cpu), "none, no gate")
        st.cpu_s = {"reuse": cpu.get("reuse", 0.0)}
        return st

    def reuse_unfeathered(self) -> RunStats:
        """Reuse alone on the gated stream with the motion seams not feathered (the feather's
        ablation, ``ReuseConfig.feather_seams``)."""
        rec = Reconstructor(replace(self.clip.config, feather_seams=False))
        cpu: dict = {}
        st = self.measure(self.rebuild(self.empty_plans(), reconstructor=rec, cpu=cpu), "none, no feather")
        st.cpu_s = {"reuse": cpu.get("reuse", 0.0), "gate": self.clip.gate_cpu_s * len(self.clip.frames)}
        return st

    def reuse_oracle_gate(self) -> RunStats:
        """Reuse alone under an oracle gate: an evaluation-only upper bound of what a per-block
        gate can give (it reads the HR truth). Per frame, in decode order, on the decoded stream
        without the gate: each gate block (16x16 LR pixels) keeps the better, against the truth
        (luma squared error), of reuse and bicubic upsampling, chroma following luma, and the
        result is the next frame's reference (greedy: a choice's effect on later frames is not
        weighed)."""
        rec, s = Reconstructor(self.clip.config), self.s.scale

        def outputs():
            for f in self.clip.ungated:
                out = rec.step(f)
                if f.kind != "P":
                    yield f.index, (out.y, out.u, out.v)
                    continue
                planes = oracle_choose((out.y, out.u, out.v), upscale_bicubic(f.y, f.u, f.v, s),
                                       self.clip.ref(f.index)[0], GATE_PX * s)
                rec.replace_reference(planes)
                yield f.index, planes
        return self.measure(outputs(), "none, oracle gate")

    # -- estimator fidelity ----------------------------------------------------------------
    def fidelity(self, plans_at: dict[str, list[AnchorPlan]]) -> dict:
        """Spearman(J, measured MSE) per chunk over a family of equal-size anchor sets."""
        clip = self.clip
        rng = np.random.default_rng(self.s.seed)
        out = []
        for ci in range(min(self.s.fidelity_chunks, len(clip.chunks))):
            chunk, g = clip.chunks[ci], clip.graph(ci)
            n_nodes = len(chunk) * chunk.grid.n_patches
            base = plans_at[OURS][ci]
            nodes = base.frames.astype(np.int64) * chunk.grid.n_patches + base.patches
            family: list[tuple[str, np.ndarray]] = []
            for x in np.round(np.linspace(0, 1, 11), 2):
                k = int(round(x * nodes.size))
                chosen = nodes.copy()
                if k:
                    swap = rng.choice(nodes.size, k, replace=False)
                    pool = np.setdiff1d(np.arange(n_nodes), nodes)
                    chosen[swap] = rng.choice(pool, k, replace=False)
                family.append((f"{OURS} {int(x * 100)}% swapped", chosen))
            for name, plans in plans_at.items():
                if name != OURS:
                    p = plans[ci]
                    family.append((name, p.frames.astype(np.int64) * chunk.grid.n_patches + p.patches))
            randoms = [(f"random {i}", rng.choice(n_nodes, nodes.size, replace=False))
                       for i in range(self.s.fidelity_random)]
            rows = []
            for label, chosen in family + randoms:
                f_, p_ = np.divmod(chosen, chunk.grid.n_patches)
                plan = AnchorPlan(chunk.start, len(chunk), chunk.grid, f_, p_)
                mask = plan.mask()
                sse = sum(m for _, m in self._chunk_mse(ci, plan))
                rows.append({"set": label, "anchors": int(chosen.size), "J": objective(g, mask), "mse_sum": sse,
                             "J_noretention": objective(clip.graph(ci, retention=False), mask),
                             "J_noblend": objective(clip.graph(ci, blend=False), mask),
                             **{f"J_{k}": objective(clip.graph(ci, k), mask) for k in self._compared_biases()}})
                self.tick(f"{self.name}: fidelity chunk {ci}, {label}", 1.0)
            fam = rows[:len(family)]
            rnd = rows[len(family):]
            out.append({"chunk": ci, "family_size": len(fam),
                        "spearman_family": metrics.spearman([r["J"] for r in fam], [r["mse_sum"] for r in fam]),
                        "spearman_random_only": metrics.spearman([r["J"] for r in rnd], [r["mse_sum"] for r in rnd]),
                        "spearman_family_noretention": metrics.spearman([r["J_noretention"] for r in fam],
                                                                        [r["mse_sum"] for r in fam]),
                        "spearman_family_noblend": metrics.spearman([r["J_noblend"] for r in fam],
                                                                    [r["mse_sum"] for r in fam]),
                        "spearman_family_by_bias": {
                            k: metrics.spearman([r[f"J_{k}"] for r in fam], [r["mse_sum"] for r in fam])
                            for k in self._compared_biases()},
                        "sets": rows})
        return {"chunks": out, "node_bias": self.s.node_bias,
                "spearman_family_by_bias_mean": {
                    k: metrics.mean_finite(c["spearman_family_by_bias"][k] for c in out) for k in self._compared_biases()},
                "spearman_family_mean": metrics.mean_finite(c["spearman_family"] for c in out),
                "spearman_family_noretention_mean": metrics.mean_finite(c["spearman_family_noretention"] for c in out),
                "spearman_family_noblend_mean": metrics.mean_finite(c["spearman_family_noblend"] for c in out),
                "spearman_random_only_mean": metrics.mean_finite(c["spearman_random_only"] for c in out)}

    def _compared_biases(self) -> tuple[str, ...]:
        return NODE_BIASES if self.s.compare_biases else (self.s.node_bias,)

    def _chunk_mse(self, ci: int, plan: AnchorPlan):
        """Chunk ``ci`` alone rebuilt with ``plan``, from the loop's state at its start."""
        start = copy.deepcopy(self.chunk_start_state[ci])
        for i, planes in self.rebuild([(self.clip.chunks[ci], plan)], reconstructor=start):
            yield i, metrics.frame_mse(planes, self.clip.ref(i))[0]


def oracle_choose(reuse: Sequence[np.ndarray], bicubic: Sequence[np.ndarray], truth_y: np.ndarray,
                  px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ``px`` x ``px`` luma block (``px // 2`` in 4:2:0 chroma), the better of ``reuse``
    and ``bicubic`` (Y, U, V planes) by luma squared error against ``truth_y``: new planes."""
    y, u, v = (np.array(p_) for p_ in reuse)
    t = truth_y.astype(np.int32)
    h, w = y.shape
    for y0 in range(0, h, px):
        for x0 in range(0, w, px):
            blk = (slice(y0, y0 + px), slice(x0, x0 + px))
            e_reuse = np.sum((y[blk].astype(np.int32) - t[blk]) ** 2)
            e_up = np.sum((bicubic[0][blk].astype(np.int32) - t[blk]) ** 2)
            if e_up < e_reuse:
                y[blk] = bicubic[0][blk]
                c0, c1, c2, c3 = chroma_box((y0, y0 + px, x0, x0 + px))
                c = (slice(c0, c1), slice(c2, c3))
                u[c], v[c] = bicubic[1][c], bicubic[2][c]
    return y, u, v


def run_clip(entry: dict, settings: QualitySettings, cache_dir: str,
             tick: Tick = lambda text, advance=0.0: None) -> tuple[dict, dict]:
    """Every method on one clip; returns its result dict (JSON-ready, with the clip's derived
    figures) and what the report draws (``visuals``)."""
    from .derived import bias_figures, derive

    t0 = time.perf_counter()
    clip = ClipInputs(entry, settings, cache_dir, tick)
    cr = ClipRuns(clip)
    f0 = clip.frames[0]
    lr_px = f0.width * f0.height
    out: dict = {"name": clip.name, "kind": entry["kind"], "frames": len(clip.frames),
                 "lr": f"{f0.width}x{f0.height}", "hr": f"{entry['hr']['width']}x{entry['hr']['height']}",
                 "patch_px": clip.patch_px, "chunks": len(clip.chunks), "encoding": settings.encoding,
                 "key_frames": int(sum(f.is_key for f in clip.frames))}
    vmaf_on = settings.vmaf and metrics.vmaf_available()
    base = {}
    for kind in ("bilinear", "bicubic", "all"):
        base[kind] = cr.baseline(kind, vmaf_on).summary()
    base["none"] = cr.run_plans(cr.empty_plans(), "none", vmaf_on, snapshot=True).summary()
    if settings.gate:
        base["none-nogate"] = cr.reuse_ungated().summary()
    if settings.reuse_config().feather_seams:
        base["none-nofeather"] = cr.reuse_unfeathered().summary()
    if settings.oracle_gate:
        base["none-oracle-gate"] = cr.reuse_oracle_gate().summary()
    if clip.chunks:  # compile the greedy kernel outside the timed calls
        get_scheduler(OURS).plan(clip.chunks[0], 0.001, graph=clip.graph(0))
    runs: dict[str, dict] = {}
    plans_at: dict[str, list[AnchorPlan]] = {}
    for name in settings.schedulers:
        if name == "nemo":
            if lr_px > settings.nemo_max_lr_pixels:
                out.setdefault("notes", []).append(f"nemo skipped: LR {out['lr']} is above the "
                                                   f"{settings.nemo_max_lr_pixels} px limit for the offline scheduler")
                continue
            sched = get_scheduler("nemo", reference=clip.ref, patch_source=cr.source.inner, config=clip.config,
                                  on_step=lambda: tick(f"{clip.name}: nemo measuring"))
        else:
            sched = get_scheduler(name)
        for b in ((0.0,) if name in FIXED else settings.budgets):
            chunk_plans, spent, cpu = cr.plans(sched, b)
            vm = vmaf_on and (name in FIXED or abs(b - settings.vmaf_budget) < 1e-9)
            st = cr.run_plans(chunk_plans, f"{name} {budget_key(b)}", vm, schedule_cpu_s=cpu)
            st.schedule_s = spent
            runs.setdefault(name, {})[budget_key(b) if name not in FIXED else "fixed"] = st.summary()
            if abs(b - FIDELITY_BUDGET) < 1e-9:
                plans_at[name] = [p for _, p in chunk_plans]
    if settings.compare_biases and OURS in runs:
        out["node_bias_runs"] = bias_runs(cr, runs[OURS], vmaf_on)
    fixed = {name: runs.pop(name)["fixed"] for name in FIXED if name in runs}
    out["baselines"] = {**base, **fixed}
    out["runs"] = runs
    out.update(derive(out))
    if OURS in plans_at and settings.fidelity_chunks > 0:
        if lr_px <= settings.fidelity_max_lr_pixels:
            out["fidelity"] = cr.fidelity(plans_at)
        else:
            out.setdefault("notes", []).append(f"estimator fidelity not measured: LR {out['lr']} is above the "
                                               f"{settings.fidelity_max_lr_pixels} px limit (compute budget)")
    out.update(bias_figures(out))
    out["vmaf_note"] = (f"VMAF (vmaf_v0.6.1) on {settings.vmaf_frames} consecutive frames from frame {cr.vmaf_lo}, "
                        f"for the baselines and at {budget_key(settings.vmaf_budget)} budget only" if vmaf_on else
                        "VMAF unavailable (no libvmaf in the imageio-ffmpeg binary)")
    out["ssim_note"] = f"SSIM-Y on every {settings.ssim_every}th frame"
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out, visuals(cr, plans_at.get(OURS))


def bias_runs(cr: ClipRuns, ours: dict, vmaf_on: bool) -> dict:
    """``dag-greedy``'s runs at every budget with each node bias (NODE_BIASES); the run with the
    settings' own bias is the one measured already (``ours``)."""
    out = {}
    for kind in NODE_BIASES:
        if kind == cr.s.node_bias:
            out[kind] = ours
            continue
        per = {}
        for b in cr.s.budgets:
            chunk_plans, spent, cpu = cr.plans(OURS, b, bias=kind)
            vm = vmaf_on and abs(b - cr.s.vmaf_budget) < 1e-9
            st = cr.run_plans(chunk_plans, f"{OURS} ({kind} bias) {budget_key(b)}", vm, schedule_cpu_s=cpu)
            st.schedule_s = spent
            per[budget_key(b)] = st.summary()
        out[kind] = per
    return out


def visuals(cr: ClipRuns, plans: list[AnchorPlan] | None) -> dict:
    """What the report draws: the kept outputs of one frame with its ground truth, and a strip
    of LR frames of the first chunk with the anchor boxes of ``dag-greedy`` at 5%."""
    strip = []
    if plans:
        chunk, plan = cr.clip.chunks[0], plans[0]
        for t in np.unique(np.linspace(0, len(chunk) - 1, STRIP_FRAMES).round().astype(int)):
            f = chunk.frames[t]
            strip.append({"index": f.index, "kind": f.kind, "planes": (f.y, f.u, f.v),
                          "boxes": plan.boxes_at(t)})
    return {"frame": cr.keep_frame, "outputs": dict(cr.kept),
            "gt": tuple(np.array(p) for p in cr.clip.ref(cr.keep_frame)), "strip": strip}
