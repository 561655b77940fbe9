"""`anchorsr bench quality --clips` end to end on a tiny generated clip, and the derived figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anchorsr.bench import metrics
from anchorsr.bench.quality import QualitySettings, derive, summarize
from anchorsr.cli import main
from anchorsr.stream import EncodeSettings, write_clip
from tests.conftest import pan_frames

SCHEDULERS = "dag-greedy,palantir,neuroscaler,key-uniform,uniform,nemo,dag-greedy-noweights,keyframes"


@pytest.fixture(scope="module")
def loop_calls():
    """Spies on the library's planning (``plan_stream``) and reconstruction loop
    (``rebuild_frames``) as the benchmark's runs module calls them, during the run below."""
    from anchorsr.bench.quality import runs

    calls: dict[str, list] = {"plan_stream": [], "rebuild_frames": []}
    plan_stream, rebuild_frames = runs.plan_stream, runs.rebuild_frames

    def spy_plan(frames, scheduler, budget, *args, **kwargs):
        name = scheduler if isinstance(scheduler, str) else scheduler.name
        calls["plan_stream"].append({"scheduler": name, "budget": budget, "args": args, **kwargs})
        return plan_stream(frames, scheduler, budget, *args, **kwargs)

    def spy_rebuild(groups, *args, **kwargs):
        n = [0]

        def counted():
            for g in groups:
                n[0] += len(g)
                yield g
        calls["rebuild_frames"].append(n)
        return rebuild_frames(counted(), *args, **kwargs)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(runs, "plan_stream", spy_plan)
        m.setattr(runs, "rebuild_frames", spy_rebuild)
        yield calls


@pytest.fixture(scope="module")
def run(tmp_path_factory, loop_calls):
    tmp = tmp_path_factory.mktemp("quality")
    clip = tmp / "hr.mkv"
    write_clip(clip, pan_frames(14, dx=3, dy=1, w=130, h=98), EncodeSettings(crf=8, keyint=30))
    out = tmp / "out"
    argv = ["bench", "quality", "--clips", str(clip), "--frames", "12", "--patch-px", "16", "--budgets", "5%,10%,20%",
            "--schedulers", SCHEDULERS, "--out", str(out), "--corpus", str(tmp / "unused"), "--json"]
    return main(argv), out


def test_quality_run_writes_json_report_and_figures(run, capsys):
    rc, out = run
    assert rc == 0
    result = json.loads((out / "quality.json").read_text())
    assert result["benchmark"] == "quality"
    assert {"commit", "cpu", "cores", "numpy", "torch"} <= set(result["environment"])
    (clip,) = result["clips"]
    assert clip["name"] == "hr" and clip["frames"] == 12 and clip["hr"] == "128x96"
    assert set(clip["runs"]) == set(SCHEDULERS.split(",")) - {"keyframes"}
    assert "keyframes" in clip["baselines"] and "bilinear" in clip["baselines"]
    assert result["corpus"]["clips"][0]["lr"]["rate"]["sha256"]
    report = (out / "report.md").read_text()
    assert "## Targets" in report and "dag-greedy" in report
    for rel in clip["figures"].values():
        if isinstance(rel, str):
            assert (out / rel).stat().st_size > 500
    assert (out / "figures" / "gain_kept.png").exists()
    assert "<table>" in (out / "report.html").read_text()


def test_runs_are_planned_by_plan_stream_and_rebuilt_by_the_enhance_loop(run, loop_calls):
    """Every scheduler at every budget (and dag-greedy with each other node bias) is planned by
    ``plan_stream`` with the run's chunking, grid and the clip's cached graphs; every reuse run
    (reuse alone, each plan, each anchor set of the fidelity family) is rebuilt by
    ``rebuild_frames``, the loop ``enhance`` runs."""
    _, out = run
    (clip,) = json.loads((out / "quality.json").read_text())["clips"]
    planned = loop_calls["plan_stream"]
    budgets = (0.05, 0.10, 0.20)
    want = {(n, b) for n in SCHEDULERS.split(",") if n != "keyframes" for b in budgets} | {("keyframes", 0.0)}
    got = {(c["scheduler"], c["budget"]) for c in planned}
    assert want <= got
    assert all(c["args"] == (60, 16) and callable(c["graphs"]) for c in planned)  # 60-frame chunks, --patch-px 16
    biased = [c for c in planned if c["node_bias"] is not None]
    assert {type(c["node_bias"]).__name__ for c in biased} >= {"OracleBias"}
    assert len(biased) >= len(budgets)  # the oracle's runs at least (the predictor ships too)
    rebuilt = loop_calls["rebuild_frames"]
    runs = 2 + sum(len(per) for per in clip["runs"].values()) + 1  # none, no gate, the plans, keyframes
    fidelity = clip["fidelity"]["chunks"][0]["sets"]
    assert len(rebuilt) >= runs + len(fidelity)
    assert sum(n[0] == 12 for n in rebuilt) >= runs and all(n[0] > 0 for n in rebuilt)


def test_the_json_keeps_its_keys(run):
    _, out = run
    result = json.loads((out / "quality.json").read_text())
    assert list(result) == ["benchmark", "command", "psnr_rule", "settings", "quick", "command_clips", "corpus",
                            "clips", "summary", "environment", "seconds"]
    (clip,) = result["clips"]
    assert list(clip) == ["name", "kind", "frames", "lr", "hr", "patch_px", "chunks", "encoding", "key_frames",
                          "node_bias_runs", "baselines", "runs", "gain_kept", "gain_kept_vs_bicubic", "saving",
                          "dag_greedy_minus_palantir_db", "sr_beats_reuse_alone", "fidelity", "node_bias",
                          "vmaf_note", "ssim_note", "seconds", "figures"]
    assert list(result["summary"]) == ["clips", "clips_in_averages", "clips_left_out", "gain_kept_mean",
                                       "gain_kept_vs_bicubic_mean", "gain_kept_mean_all_clips", "clips_per_scheduler",
                                       "saving_mean", "spearman_family_mean", "spearman_random_only_mean",
                                       "spearman_family_noretention_mean", "spearman_family_noblend_mean", "targets",
                                       "node_bias"]
    assert set(clip["baselines"]["none"]) >= {"psnr_yuv_db", "psnr_y_db", "mse_yuv", "mse_y", "ssim_y", "sr_share",
                                              "cpu_ms_per_frame", "cpu_ms_per_frame_by_step"}
    assert set(clip["runs"]["dag-greedy"]["5%"]) >= {"psnr_yuv_db", "sr_share", "schedule_ms_per_chunk",
                                                     "cpu_ms_per_frame"}
    assert list(clip["fidelity"]) == ["chunks", "node_bias", "spearman_family_by_bias_mean", "spearman_family_mean",
                                      "spearman_family_noretention_mean", "spearman_family_noblend_mean",
                                      "spearman_random_only_mean"]
    assert list(result["settings"]["reuse"]) == ["scale", "loop", "residual_upsampler", "feather_seams", "down_filter",
                                                 "passes", "anchor_weight", "gate"]


def test_the_oracle_gate_bound_is_never_below_bicubic_and_picks_per_block(run):
    """Reuse under the oracle gate keeps, per block and frame, the better of reuse and bicubic
    against the truth, so its luma error is at most bicubic's on every frame; it is reported
    beside reuse with and without the real gate."""
    from anchorsr.bench.quality.runs import oracle_choose

    _, out = run
    (clip,) = json.loads((out / "quality.json").read_text())["clips"]
    base = clip["baselines"]
    assert base["none-oracle-gate"]["mse_y"] <= base["bicubic"]["mse_y"] + 1e-9
    assert base["none-oracle-gate"]["mse_y"] <= base["none-nogate"]["mse_y"] + 1e-9
    assert "oracle gate" in (out / "report.md").read_text()
    # the feather's ablation is reported beside them, measured on a different reconstruction
    assert base["none-nofeather"]["mse_y"] != base["none"]["mse_y"]
    assert "seams not feathered" in (out / "report.md").read_text()
    truth = np.zeros((8, 8), np.uint8)
    reuse = (np.full((8, 8), 10, np.uint8), np.full((4, 4), 1, np.uint8), np.full((4, 4), 2, np.uint8))
    up = (np.full((8, 8), 20, np.uint8), np.full((4, 4), 3, np.uint8), np.full((4, 4), 4, np.uint8))
    reuse[0][:4, 4:] = 30  # the top right block: bicubic (20) is nearer the truth there
    y, u, v = oracle_choose(reuse, up, truth, 4)
    assert (y[:4, 4:] == 20).all() and (u[:2, 2:] == 3).all() and (v[:2, 2:] == 4).all()
    assert (y[4:] == 10).all() and (y[:4, :4] == 10).all() and (u[:2, :2] == 1).all()
    assert (reuse[0][:4, 4:] == 30).all()  # the inputs are not changed


def test_the_report_shows_every_judged_target_from_the_table(run):
    from anchorsr.bench.quality import target

    _, out = run
    result = json.loads((out / "quality.json").read_text())
    targets = result["summary"]["targets"]
    assert targets and all(target(k) is not None for k in targets)
    report = (out / "report.md").read_text()
    section = report[report.index("## Targets"):report.index("## Averages over clips")]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and not ln.startswith("| target")]
    assert len(rows) == len(targets)
    for row, (key, got) in zip(rows, targets.items()):
        t = target(key)
        assert row.startswith(f"| {t.text} |") and f"| {t.comparison} " in row
        assert row.endswith("| met |") if got["met"] else row.endswith("| **not met** |")


def test_gain_kept_and_savings_follow_the_formulas(run):
    _, out = run
    (clip,) = json.loads((out / "quality.json").read_text())["clips"]
    base = clip["baselines"]
    for name, per in clip["runs"].items():
        for b, r in per.items():
            want = metrics.gain_kept(r["psnr_yuv_db"], base["bilinear"]["psnr_yuv_db"], base["all"]["psnr_yuv_db"])
            assert clip["gain_kept"][name][b] == pytest.approx(want, abs=1e-5)
    # the derivation again from the numbers in the file gives the same savings
    again = derive(clip)
    for other, s in clip["saving"].items():
        assert again["saving"][other]["mean"] == pytest.approx(s["mean"], abs=1e-5) if s["mean"] is not None \
            else again["saving"][other]["mean"] is None
    # more budget never lowers dag-greedy's anchor share
    shares = [clip["runs"]["dag-greedy"][b]["sr_share"] for b in ("5%", "10%", "20%")]
    assert shares == sorted(shares) and shares[-1] <= 0.2 + 1e-9


def test_fidelity_family_spans_the_range(run):
    _, out = run
    (clip,) = json.loads((out / "quality.json").read_text())["clips"]
    (chunk,) = clip["fidelity"]["chunks"]
    assert chunk["family_size"] >= 11
    sets = chunk["sets"][:11]
    assert sets[0]["set"].endswith("0% swapped") and sets[-1]["set"].endswith("100% swapped")
    assert len({s["anchors"] for s in sets}) == 1
    js, ms = [s["J"] for s in chunk["sets"][:chunk["family_size"]]], [s["mse_sum"] for s in chunk["sets"][:chunk["family_size"]]]
    assert chunk["spearman_family"] == pytest.approx(metrics.spearman(js, ms), abs=1e-5)
    # the greedy plan has the lowest J of its family
    assert sets[0]["J"] <= min(js) + 1e-6


def test_summary_targets_from_clip_figures():
    clip = {"name": "x", "gain_kept": {"dag-greedy": {"1.67%": 0.4, "5%": 0.8}},
            "saving": {"neuroscaler": {"mean": 0.5}}, "fidelity": {"spearman_family_mean": 0.95},
            "dag_greedy_minus_palantir_db": {"5%": 0.1, "1.67%": -0.2}}
    s = summarize([clip, dict(clip, name="y", gain_kept={"dag-greedy": {"1.67%": 0.7, "5%": 0.5}})],
                  QualitySettings(budgets=(1 / 60, 0.05)))
    t = s["targets"]
    assert t["gain_kept_5pct_mean>=0.70"]["value"] == pytest.approx(0.65) and not t["gain_kept_5pct_mean>=0.70"]["met"]
    assert t["gain_kept_5pct_min>=0.54"]["value"] == pytest.approx(0.5) and not t["gain_kept_5pct_min>=0.54"]["met"]
    assert t["gain_kept_1.67pct_mean>=0.50"]["met"]
    assert t["saving_vs_neuroscaler_mean>=0.384"]["met"]
    assert not t["dag_greedy_never_below_palantir"]["met"]
    assert t["spearman_mean>=0.9"]["met"]
    # a clip where SR does not beat reuse alone is listed and left out of the averages
    odd = dict(clip, name="z", sr_beats_reuse_alone=False, gain_kept={"dag-greedy": {"5%": 1.2}})
    s2 = summarize([clip, odd], QualitySettings(budgets=(1 / 60, 0.05)))
    assert s2["clips_left_out"] == ["z"]
    assert s2["targets"]["gain_kept_5pct_mean>=0.70"]["value"] == pytest.approx(0.8)


def _clip(name, bicubic_y, none_y, all_y, ours_y, others_y, spearman=None):
    """A clip's figures as ``summarize`` reads them (PSNR-Y; Y+U+V taken equal)."""
    def row(y):
        return {"psnr_y_db": y, "psnr_yuv_db": y}
    runs = {"dag-greedy": {"5%": row(ours_y)}, **{o: {"5%": row(y)} for o, y in others_y.items()}}
    return {"name": name, "baselines": {"bicubic": row(bicubic_y), "none": row(none_y), "all": row(all_y)},
            "runs": runs, "gain_kept_vs_bicubic": {"dag-greedy": {"5%": (ours_y - bicubic_y) / (all_y - bicubic_y)}},
            "saving": {}, **({"fidelity": {"spearman_family_mean": spearman}} if spearman is not None else {})}


def test_the_targets_table_judges_the_summary_and_drives_the_report(monkeypatch):
    """Each target in ``TARGETS`` is judged from the clips (value against its threshold) in the
    table's order; changing a threshold in the table changes what the summary and the report
    say."""
    import dataclasses

    from anchorsr.bench import report
    from anchorsr.bench.quality import derived

    clips = [_clip("a", 40.0, 40.2, 41.0, 40.7, {"palantir": 40.705, "uniform": 40.5}, spearman=0.96),
             _clip("b", 30.0, 29.9, 30.6, 30.3, {"palantir": 30.2, "neuroscaler": 30.32}, spearman=0.86)]
    settings = QualitySettings(budgets=(0.05,))
    t = summarize(clips, settings)["targets"]
    assert list(t) == [x.key for x in derived.TARGETS if x.key in t]
    assert t["reuse_not_below_bicubic_every_clip"]["value"] == pytest.approx(-0.1)
    assert not t["reuse_not_below_bicubic_every_clip"]["met"]
    assert t["all_frame_sr_over_bicubic_mean>=0.8db"]["value"] == pytest.approx(0.8)
    assert t["all_frame_sr_over_bicubic_mean>=0.8db"]["met"]
    assert t["all_frame_sr_above_bicubic_every_clip"]["met"]
    assert t["dag_greedy_5pct_over_bicubic_mean>=0.6db"]["value"] == pytest.approx(0.5)
    assert not t["dag_greedy_5pct_over_bicubic_mean>=0.6db"]["met"]
    assert t["gain_kept_vs_bicubic_5pct_mean>=0.60"]["value"] == pytest.approx((0.7 + 0.5) / 2)
    # dag-greedy 0.005 dB below palantir on a, 0.02 dB below neuroscaler on b
    assert t["dag_greedy_within_0.01db_of_every_scheduler"]["value"] == pytest.approx(-0.02)
    assert not t["dag_greedy_within_0.01db_of_every_scheduler"]["met"]
    assert t["spearman_mean>=0.9"]["value"] == pytest.approx(0.91) and t["spearman_mean>=0.9"]["met"]
    assert t["spearman_min>=0.8"]["value"] == pytest.approx(0.86) and t["spearman_min>=0.8"]["met"]
    rows = {r[0]: r for r in report.target_rows(t)}
    sp = derived.target("spearman_min>=0.8")
    assert rows[sp.text][2] == ">= 0.8" and rows[sp.text][-1] == "met"
    # a stricter threshold in the table: the summary and the report say not met
    stricter = tuple(dataclasses.replace(x, threshold=0.9) if x.key == sp.key else x for x in derived.TARGETS)
    monkeypatch.setattr(derived, "TARGETS", stricter)
    t2 = summarize(clips, settings)["targets"]
    assert not t2[sp.key]["met"]
    assert {r[0]: r for r in report.target_rows(t2)}[sp.text][2:] == [">= 0.9", "0.860", "-", "**not met**"]


def test_bad_options_end_with_one_error_line(tmp_path, capsys):
    assert main(["bench", "quality", "--schedulers", "magic", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().startswith("anchorsr: error:")
    assert main(["bench", "quality", "--clips", str(tmp_path / "none.mp4"), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such clip file" in err[0]
    assert main(["bench", "quality", "--budgets", "200%", "--out", str(tmp_path)]) == 1
    capsys.readouterr()
    assert main(["bench", "quality", "--only", "nope", "--corpus", str(tmp_path / "c"), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corpus clip names" in err[0]
    assert not (tmp_path / "c").exists()  # rejected before anything is built


def test_rederive_rebuilds_report_from_json(run, tmp_path, capsys):
    _, out = run
    before = json.loads((out / "quality.json").read_text())
    (out / "report.md").unlink()
    capsys.readouterr()
    assert main(["bench", "quality", "--rederive", "--out", str(out), "--json"]) == 0
    after = json.loads((out / "quality.json").read_text())
    assert after["summary"] == before["summary"] and (out / "report.md").exists()
    assert main(["bench", "quality", "--rederive", "--out", str(tmp_path / "empty")]) == 1
    assert "no " in capsys.readouterr().err


def test_a_clip_that_is_not_video_ends_with_one_error_line(tmp_path, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50)
    assert main(["bench", "quality", "--clips", str(text), "--quick", "--out", str(tmp_path / "o")]) == 1
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("anchorsr:")]
    assert len(err) == 1 and "expected a video clip" in err[0] and "notes.mp4" in err[0]


def test_a_benchmark_with_no_available_source_ends_with_one_error_line(tmp_path, monkeypatch, capsys):
    from anchorsr.bench import corpus

    ghost = corpus.ClipSource("ghost", "camera", "absent", "none", (str(tmp_path / "nope.mp4"),),
                              lambda: iter(()), 25.0, "the ghost package is not installed")
    monkeypatch.setattr(corpus, "default_sources", lambda *a, **k: [ghost])
    for extra in ([], ["--quick"]):
        out = tmp_path / "out"
        rc = main(["bench", "quality", "--corpus", str(tmp_path / "EMPTY"), "--out", str(out), *extra])
        assert rc == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("anchorsr: error: expected at least one available corpus clip")
        assert "ghost" in err[0] or extra  # --quick keeps only the quick clips: none of 0
        assert not out.exists() and not (tmp_path / "EMPTY").exists()  # no empty report


def test_run_quality_refuses_to_measure_nothing(tmp_path, monkeypatch):
    from anchorsr.bench import corpus
    from anchorsr.bench.quality import run_quality
    from anchorsr.errors import SourceError

    monkeypatch.setattr(corpus, "default_sources", lambda *a, **k: [])
    with pytest.raises(SourceError, match="expected at least one available corpus clip source, got an empty"):
        run_quality(str(tmp_path / "out"), QualitySettings(), corpus_dir=str(tmp_path / "c"))
    assert not (tmp_path / "out" / "quality.json").exists()


def test_runs_store_mean_mse_and_psnr_follows_the_rule(run):
    from anchorsr.metrics import psnr_from_mse

    _, out = run
    result = json.loads((out / "quality.json").read_text())
    assert result["psnr_rule"] == "mean-mse"
    (clip,) = result["clips"]
    rows = [*clip["baselines"].values(), *(r for per in clip["runs"].values() for r in per.values())]
    for r in rows:
        assert r["psnr_yuv_db"] == pytest.approx(psnr_from_mse(r["mse_yuv"]), abs=1e-3)
        assert r["psnr_y_db"] == pytest.approx(psnr_from_mse(r["mse_y"]), abs=1e-3)
    assert "predate" not in (out / "report.md").read_text()


def test_report_leads_with_the_gain_over_bicubic(run):
    _, out = run
    result = json.loads((out / "quality.json").read_text())
    (clip,) = result["clips"]
    base = clip["baselines"]
    for name, per in clip["runs"].items():
        for b, r in per.items():
            want = metrics.gain_kept(r["psnr_yuv_db"], base["bicubic"]["psnr_yuv_db"], base["all"]["psnr_yuv_db"])
            got = clip["gain_kept_vs_bicubic"][name][b]
            assert (got is None and want != want) or got == pytest.approx(want, abs=1e-5)
    report = (out / "report.md").read_text()
    averages = report[report.index("## Averages over clips"):report.index("## Per clip")]
    assert averages.index("over per-frame **bicubic**") < averages.index("over bilinear")
    assert "| gain kept over bicubic | over bilinear |" in report


def test_rederive_marks_figures_that_predate_the_mean_mse_rule(run, tmp_path):
    import shutil

    from anchorsr.bench.quality import rederive

    _, out = run
    legacy = json.loads((out / "quality.json").read_text())
    legacy.pop("psnr_rule")
    for clip in legacy["clips"]:
        for r in [*clip["baselines"].values(), *(r for per in clip["runs"].values() for r in per.values())]:
            r.pop("mse_yuv"), r.pop("mse_y")
    shutil.copytree(out / "figures", tmp_path / "figures")
    again = rederive(legacy, str(tmp_path))
    assert again["psnr_rule"] == "mean-of-frame-psnr"
    assert again["clips"][0]["baselines"] == legacy["clips"][0]["baselines"]  # no figure invented
    assert "measured before the mean-MSE rule" in (tmp_path / "report.md").read_text()


def test_node_biases_side_by_side(run):
    """dag-greedy and the estimator fidelity with each node bias (texture, predictor, oracle, intra):
    the default bias's run is dag-greedy's own, the others are measured runs; the fidelity of
    each bias follows from the J it gives the same anchor-set family; the report shows them."""
    _, out = run
    result = json.loads((out / "quality.json").read_text())
    (clip,) = result["clips"]
    assert result["settings"]["node_bias"] == "intra"
    assert set(clip["node_bias_runs"]) == {"texture", "predictor", "oracle", "intra"}
    assert clip["node_bias_runs"]["intra"] == clip["runs"]["dag-greedy"]
    for kind, per in clip["node_bias_runs"].items():
        assert set(per) == {"5%", "10%", "20%"}
        assert per["20%"]["sr_share"] <= 0.2 + 1e-9
    (chunk,) = clip["fidelity"]["chunks"]
    fam = chunk["sets"][:chunk["family_size"]]
    for kind in ("texture", "predictor", "oracle", "intra"):
        want = metrics.spearman([s[f"J_{kind}"] for s in fam], [s["mse_sum"] for s in fam])
        assert chunk["spearman_family_by_bias"][kind] == pytest.approx(want, abs=1e-5)
        assert clip["node_bias"][kind]["spearman_family"] == pytest.approx(want, abs=1e-5)
    assert [s["J_intra"] for s in fam] == pytest.approx([s["J"] for s in fam])
    assert set(result["summary"]["node_bias"]) == {"texture", "predictor", "oracle", "intra"}
    assert "## Node bias: texture, predictor, oracle, intra" in (out / "report.md").read_text()


def test_every_method_reports_its_cpu_per_output_frame(run):
    """CPU per frame by step: upsampling for the plain upscalers; reuse, gate, scheduling and SR for
    the reuse methods (SR only where there are anchors, scheduling only where a scheduler ran);
    one whole-frame pass per frame for all-frame SR, which bounds every plan's SR cost per frame."""
    _, out = run
    (clip,) = json.loads((out / "quality.json").read_text())["clips"]
    base, runs = clip["baselines"], clip["runs"]
    assert set(base["bicubic"]["cpu_ms_per_frame_by_step"]) == {"upsample"}
    assert set(base["all"]["cpu_ms_per_frame_by_step"]) == {"sr"}
    none = base["none"]["cpu_ms_per_frame_by_step"]
    assert none["sr"] == 0 and none["schedule"] == 0 and none["reuse"] > 0
    whole = base["all"]["cpu_ms_per_frame"]
    for name in ("dag-greedy", "palantir", "uniform"):
        for b, r in runs[name].items():
            steps = r["cpu_ms_per_frame_by_step"]
            assert (steps["sr"] > 0) == (r["sr_share"] > 0), (name, b)
            if name != "uniform":  # graph schedulers: the graph build alone takes measurable CPU
                assert steps["schedule"] > 0, (name, b)
            assert steps["sr"] <= whole + 0.01
            assert r["cpu_ms_per_frame"] == pytest.approx(sum(steps.values()), abs=0.05)
    # more anchors never cost less SR
    sr = [runs["dag-greedy"][b]["cpu_ms_per_frame_by_step"]["sr"] for b in ("5%", "10%", "20%")]
    assert sr == sorted(sr)
    assert "CPU ms/frame" in (out / "report.md").read_text()


def test_family_spread_is_the_widest_chunk_span_of_the_family_only():
    """The report says how far apart the fidelity family measures: 10 log10(max/min) of the
    family's chunk MSEs (random sets after the family are left out), the widest chunk."""
    from anchorsr.bench.quality.derived import family_spread_db

    def chunk(mses, family):
        return {"family_size": family, "sets": [{"mse_sum": m} for m in mses]}

    fid = {"chunks": [chunk([100.0, 110.0, 1000.0], 2), chunk([50.0, 51.0, 52.0], 3)]}
    assert family_spread_db(fid) == pytest.approx(10 * np.log10(110 / 100))
    assert family_spread_db({"chunks": [chunk([7.0], 1)]}) is None
    assert family_spread_db(None) is None
