"""Stream planning: chunks, carried error, plan files, budgets."""

import io

import numpy as np
import pytest

from anchorsr.errors import ConfigError, PlanFormatError
from anchorsr.graph import build_graph, carry_out, objective
from anchorsr.graph.synthetic import moving_object_clip
from anchorsr.schedule import (CHUNK_END, chunks_of, parse_budget, plan_stream, plan_to_file, read_plans,
                               write_plans)
from anchorsr.types import Chunk, PatchGrid


@pytest.mark.parametrize("text,value", [("5%", 0.05), ("1.67%", 0.0167), ("0.05", 0.05), (" 100% ", 1.0),
                                        ("0", 0.0), (0.2, 0.2)])
def test_parse_budget(text, value):
    assert parse_budget(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "5 %%", "-1%", "150%", "1.5", "nan", "inf", "%"])
def test_parse_budget_rejects(text):
    with pytest.raises(ConfigError, match="expected a budget"):
        parse_budget(text)


def test_error_is_carried_across_chunks():
    frames = moving_object_clip(32, 48, 13, obj_px=12, speed_px=3)
    whole = build_graph(Chunk(tuple(frames), PatchGrid(8, 32, 48)))
    total, carry = 0.0, None
    chunks = list(chunks_of(frames, chunk_frames=5, patch_px=8))
    assert [len(c) for c in chunks] == [5, 5, 3] and chunks[1].prev is frames[4]
    for chunk in chunks:
        g = build_graph(chunk)
        total += objective(g, None, carry)
        carry = carry_out(g, None, carry)
    assert total == pytest.approx(objective(whole))


def test_plan_stream_and_plan_file_round_trip(tmp_path):
    frames = moving_object_clip(32, 48, 13, obj_px=12, speed_px=3)
    out = list(plan_stream(iter(frames), "dag-greedy", 0.05, chunk_frames=5, patch_px=8))
    plans = [p for _, p in out]
    assert [p.chunk_start for p in plans] == [0, 5, 10]
    assert all(0 < p.anchor_fraction() <= 0.05 for p in plans)
    path = tmp_path / "plan.bin"
    assert write_plans(path, plans) == 3
    back = read_plans(path)
    assert len(back) == 3
    for a, b in zip(plans, back):
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.patches, b.patches)
        assert (a.chunk_start, a.n_frames, a.grid) == (b.chunk_start, b.n_frames, b.grid)
    buf = io.BytesIO()
    write_plans(buf, plans)
    with pytest.raises(PlanFormatError):
        read_plans(buf.getvalue()[:-3])


def test_plan_to_file(tmp_path):
    frames = moving_object_clip(32, 48, 13, obj_px=12, speed_px=3)
    path = tmp_path / "p.plan"
    assert plan_to_file(iter(frames), path, "neuroscaler", parse_budget("20%"), 5, 8) == 3
    assert [len(p) for p in read_plans(path)] == [24, 24, 0]  # 1, 1 and 0 whole frames of 24 patches


def test_plan_stream_ablations_reach_the_graph():
    frames = moving_object_clip(32, 48, 10, obj_px=12, speed_px=3)
    full = [p for _, p in plan_stream(frames, "dag-greedy", 0.1, chunk_frames=10, patch_px=8)]
    flat = [p for _, p in plan_stream(frames, "dag-greedy", 0.1, chunk_frames=10, patch_px=8,
                                      edge_weights=False, texture=False)]
    # With every bias 1 the flat background is worth anchoring too: the plans differ.
    assert not np.array_equal(full[0].mask(), flat[0].mask())
    assert flat[0].anchor_fraction() == pytest.approx(0.1, abs=0.02)


def test_plan_stream_builds_graphs_frame_by_frame(monkeypatch):
    from anchorsr.graph import GraphBuilder
    from anchorsr.schedule import get_scheduler

    frames = moving_object_clip(32, 48, 12, obj_px=12, speed_px=3)
    # Plans equal those of graphs built whole at each chunk's end, error carried alike.
    expected, carry = [], None
    for chunk in chunks_of(frames, chunk_frames=5, patch_px=8):
        graph = build_graph(chunk)
        plan = get_scheduler("dag-greedy").plan(chunk, 0.1, graph=graph, carry_in=carry)
        carry = carry_out(graph, plan, carry)
        expected.append(plan.to_bytes())
    events = []
    add = GraphBuilder.add
    monkeypatch.setattr(GraphBuilder, "add", lambda self, f: (events.append(("add", f.index)), add(self, f)))

    def source():
        for f in frames:
            events.append(("decoded", f.index))
            yield f

    got = [plan.to_bytes() for _, plan in plan_stream(source(), "dag-greedy", 0.1, 5, 8)]
    assert got == expected
    # Each frame's graph work is done as it arrives, before the next frame is decoded.
    assert events == [(kind, i) for i in range(12) for kind in ("decoded", "add")]


def test_plan_stream_takes_each_chunk_graph_from_a_provider(monkeypatch):
    """``graphs``: each complete chunk's graph comes from the provider (given the chunk and the
    build options, ablations and node bias included) instead of being built frame by frame; the
    plans, error carried chunk to chunk, are those of the frame-by-frame graphs."""
    from anchorsr.schedule import planning

    frames = moving_object_clip(32, 48, 12, obj_px=12, speed_px=3)
    for name in ("dag-greedy", "dag-greedy-noweights", "dag-greedy-noblend", "palantir"):
        want = [p.to_bytes() for _, p in plan_stream(frames, name, 0.1, 5, 8, anchor_weight=0.7)]
        asked = []

        def provider(chunk, options):
            asked.append((chunk.start, len(chunk), dict(options)))
            return build_graph(chunk, **options)

        with monkeypatch.context() as m:
            m.setattr(planning, "GraphBuilder", lambda *a, **k: pytest.fail("a graph was built frame by frame"))
            got = [p.to_bytes() for _, p in plan_stream(frames, name, 0.1, 5, 8, graphs=provider,
                                                        anchor_weight=0.7)]
        assert got == want, name
        assert [(s, n) for s, n, _ in asked] == [(0, 5), (5, 5), (10, 2)]
        weights = name != "dag-greedy-noweights"
        blend = 0.7 if name in ("dag-greedy", "dag-greedy-noweights") else None  # the ablation, the paper's model
        assert all(o == {"edge_weights": weights, "texture": True, "retention": name != "palantir",
                         "anchor_weight": blend, "node_bias": None, "scale": None} for *_, o in asked)
    # schedulers without a graph never ask for one
    assert len(list(plan_stream(frames, "uniform", 0.1, 5, 8, graphs=lambda c, o: pytest.fail("asked")))) == 3


def test_a_frame_size_change_starts_a_new_schedule():
    a = moving_object_clip(32, 48, 7, obj_px=12, speed_px=3)
    b = moving_object_clip(24, 40, 6, obj_px=8, speed_px=2, seed=1)
    cut = list(chunks_of(a + b, chunk_frames=5, patch_px=8))
    assert [(len(c), c.grid.width, c.grid.height) for c in cut] == [(5, 48, 32), (2, 48, 32),
                                                                   (5, 40, 24), (1, 40, 24)]
    assert cut[2].prev is None and cut[3].prev is b[4]
    out = list(plan_stream(a + b, "dag-greedy", 0.1, chunk_frames=5, patch_px=8))
    assert [len(c) for c, _ in out] == [5, 2, 5, 1]
    # The second size is scheduled as a stream of its own: no error carried across the change.
    alone = [p.to_bytes() for _, p in plan_stream(b, "dag-greedy", 0.1, chunk_frames=5, patch_px=8)]
    assert [p.to_bytes() for _, p in out[2:]] == alone
    assert all(p.grid == c.grid for c, p in out)


def test_without_a_patch_size_each_frame_size_gets_its_default_grid():
    """patch_px None: 64 px at 1080p, 32 px on the smaller frames after a resolution change,
    in the cut chunks and in the plans."""
    big = moving_object_clip(1080, 1920, 2, obj_px=64, speed_px=4)
    small = moving_object_clip(136, 320, 3, obj_px=16, speed_px=2, seed=1)
    cut = list(chunks_of(big + small, chunk_frames=5))
    assert [(c.grid.patch_px, c.grid.n_patches) for c in cut] == [(64, 17 * 30), (32, 5 * 10)]
    out = list(plan_stream(big + small, "uniform", 0.1, chunk_frames=5))
    assert [p.grid for _, p in out] == [c.grid for c in cut]


def test_a_chunk_end_in_the_stream_cuts_the_chunk_in_progress():
    """A live input that paused: the chunk so far is planned at once, the next goes on from its
    last frame; an end with nothing in progress (twice in a row, or first) is nothing."""
    frames = moving_object_clip(32, 48, 12, obj_px=12, speed_px=3)
    stream = [CHUNK_END, *frames[:3], CHUNK_END, CHUNK_END, *frames[3:12]]
    cut = list(chunks_of(stream, chunk_frames=5, patch_px=8))
    assert [[f.index for f in c.frames] for c in cut] == [[0, 1, 2], [3, 4, 5, 6, 7], [8, 9, 10, 11]]
    assert cut[0].prev is None and cut[1].prev is frames[2] and cut[2].prev is frames[7]
    out = list(plan_stream(stream, "dag-greedy", 0.1, chunk_frames=5, patch_px=8))
    assert [len(c) for c, _ in out] == [3, 5, 4] and all(len(p) > 0 for _, p in out)


def test_skipped_chunks_get_no_anchors_and_no_graph(monkeypatch):
    from anchorsr.graph import GraphBuilder

    frames = moving_object_clip(32, 48, 15, obj_px=12, speed_px=3)
    added = []
    add = GraphBuilder.add
    monkeypatch.setattr(GraphBuilder, "add", lambda self, f: (added.append(f.index), add(self, f)))
    asks = iter([False, True, False])
    out = list(plan_stream(frames, "dag-greedy", 0.1, 5, 8, skip_chunk=lambda: next(asks)))
    assert [len(p) > 0 for _, p in out] == [True, False, True]
    assert added == [*range(5), *range(10, 15)]  # no graph work for the skipped chunk
    # After a skipped chunk no error is carried in: the third plan is that of its chunk alone.
    chunk = out[2][0]
    from anchorsr.schedule import get_scheduler

    alone = get_scheduler("dag-greedy").plan(chunk, 0.1, graph=build_graph(chunk), carry_in=None)
    assert out[2][1].to_bytes() == alone.to_bytes()


def test_plan_stream_plans_on_edges_with_the_retention_of_its_scale():
    """Given the output scale, the frame-by-frame graphs are ``build_graph(chunk, scale=...)``
    (edges with sub-pixel detail retention); ``dag-greedy-noretention`` and ``palantir`` (the
    published model) ask for none."""
    from anchorsr.graph.synthetic import coded_frame

    frames = [f if f.kind == "I" else coded_frame(f.index, f.y, f.motion.mv + 1, f.motion.intra)  # sub-pixel
              for f in moving_object_clip(32, 48, 12, obj_px=12, speed_px=3)]
    for name, retention in (("dag-greedy", True), ("dag-greedy-noretention", False), ("palantir", False)):
        asked = []

        def provider(chunk, options):
            asked.append(dict(options))
            return build_graph(chunk, **options)

        got = [p.to_bytes() for _, p in plan_stream(frames, name, 0.1, 5, 8, scale=2)]
        assert got == [p.to_bytes() for _, p in plan_stream(frames, name, 0.1, 5, 8, scale=2, graphs=provider)]
        assert all(o["scale"] == 2 and o["retention"] is retention for o in asked)
        g = build_graph(Chunk(frames[:5], PatchGrid(8, 32, 48)), **asked[0])
        plain = build_graph(Chunk(frames[:5], PatchGrid(8, 32, 48)))
        edges, plain_edges = (sum(w.sum() for w in x.weights) for x in (g, plain))
        assert bool(edges < plain_edges) is retention  # sub-pixel motion: retention lowers the edges


def test_the_pipeline_plans_on_a_graph_with_its_scale_s_anchor_weight(monkeypatch):
    """``plan_groups`` hands the graph the anchor weight the reconstruction will use: the
    scale's fitted default, or the one given."""
    from anchorsr.graph import GraphBuilder
    from anchorsr.pipeline import PipelineOptions, plan_groups
    from anchorsr.reuse.reconstruct import ANCHOR_WEIGHTS
    from anchorsr.schedule import planning

    frames = moving_object_clip(32, 48, 6, obj_px=12, speed_px=3)
    for scale, given, want in ((3, None, ANCHOR_WEIGHTS[3]), (4, None, ANCHOR_WEIGHTS[4]), (3, 0.5, 0.5)):
        seen = []

        def builder(*a, **k):
            seen.append(k["anchor_weight"])
            return GraphBuilder(*a, **k)

        with monkeypatch.context() as m:
            m.setattr(planning, "GraphBuilder", builder)
            opts = PipelineOptions(scale=scale, anchor_weight=given, patch_px=8, chunk_frames=6, gate=False)
            groups = list(plan_groups(frames, opts))
        assert seen == [want] and len(groups) == 1


def test_palantir_plans_on_the_texture_term_whatever_the_stream_s_node_bias():
    """``published_bias``: palantir is compared as published, so a stream's node bias reaches
    dag-greedy's graph but not palantir's."""
    frames = moving_object_clip(32, 48, 10, obj_px=12, speed_px=3)
    calls = []

    def flat(frame, ref, grid):  # a bias that would change any plan made on it
        calls.append(frame.index)
        return np.ones(grid.n_patches) * (1 + frame.index)

    for name in ("palantir", "dag-greedy"):
        calls.clear()
        with_bias = [p.to_bytes() for _, p in plan_stream(frames, name, 0.1, 10, 8, node_bias=flat)]
        texture = [p.to_bytes() for _, p in plan_stream(frames, name, 0.1, 10, 8)]
        if name == "palantir":
            assert calls == [] and with_bias == texture
        else:
            assert calls == list(range(10)) and with_bias != texture


def test_the_pipeline_s_default_node_bias_is_the_intra_texture():
    from anchorsr.graph.predictor import intra_texture
    from anchorsr.pipeline import PipelineOptions
    from anchorsr.pipeline.steps import graph_node_bias

    assert graph_node_bias(PipelineOptions()) is intra_texture
    assert graph_node_bias(PipelineOptions(node_bias="texture")) is None
