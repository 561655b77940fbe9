"""bench schedule: the blend model's cost figure; the default pipeline's graph against the texture term."""

import math

from anchorsr.bench import schedule_bench
from anchorsr.graph.synthetic import moving_object_clip
from anchorsr.schedule import budget_area, chunks_of


def test_blend_cost_times_both_graphs_in_turns(monkeypatch):
    chunk = next(chunks_of(moving_object_clip(32, 48, 8, obj_px=12, speed_px=3), 8, 8))
    built = []
    real = schedule_bench.build_graph

    def spy(c, **k):
        built.append(k["anchor_weight"])
        return real(c, **k)

    monkeypatch.setattr(schedule_bench, "build_graph", spy)
    out = schedule_bench._blend_cost(chunk, budget_area(chunk, 0.2), 2)
    # one graph of each for the warm-up, then with and without in turns
    assert built == [schedule_bench.ANCHOR_WEIGHT, None] * 3
    assert out["anchor_weight"] == schedule_bench.ANCHOR_WEIGHT < 1
    for key in ("build_ratio", "dag_greedy_ratio", "build_with_cpu_ms", "dag_greedy_without_cpu_ms"):
        assert math.isfinite(out[key]) and out[key] > 0, key


def test_pipeline_default_builds_on_the_gated_stream_with_the_intra_bias(monkeypatch):
    frames = list(moving_object_clip(32, 48, 8, obj_px=12, speed_px=3))
    built = []
    real = schedule_bench.build_graph

    def spy(c, **k):
        built.append((k.get("node_bias") is not None, all(f.motion is None or f.motion.fresh is not None
                                                           for f in c.frames if not f.is_key)))
        return real(c, **k)

    monkeypatch.setattr(schedule_bench, "build_graph", spy)
    out = schedule_bench._pipeline_default(frames, 2, chunk_frames=8, patch_px=8)
    # the texture term on the ungated stream and the intra bias on the gated one (fresh shares
    # set on its P frames), built for the plans, the warm-up and two timed turns
    assert built == [(False, False), (True, True)] * 4
    for key in ("gate_cpu_ms", "texture_build_cpu_ms", "default_build_cpu_ms", "default_dag_greedy_cpu_ms",
                "default_over_texture", "default_with_gate_over_texture"):
        assert math.isfinite(out[key]) and out[key] > 0, key
    assert out["default_with_gate_over_texture"] > out["default_over_texture"]
