"""The sequential runner's reconstruction loop (``rebuild_frames``), which ``enhance`` and the
quality benchmark share."""

from __future__ import annotations

import copy

import numpy as np

from anchorsr.graph.synthetic import moving_object_clip
from anchorsr.pipeline import EnhanceSummary, PipelineOptions, SRCounts, enhance_frames, planned_groups, rebuild_frames
from anchorsr.graph import node_bias_for
from anchorsr.reuse import BicubicPatchSource, Reconstructor, gate_frames
from anchorsr.schedule import plan_stream


def test_rebuild_frames_is_enhances_loop_and_resumes_from_a_copied_state():
    frames = moving_object_clip(32, 48, 12, obj_px=12, speed_px=3)
    options = PipelineOptions(scheduler="dag-greedy", budget_fraction=0.1, chunk_frames=5, patch_px=8)
    source, summary = BicubicPatchSource(), EnhanceSummary()
    want = list(enhance_frames(frames, options, source, summary))
    # the same stream planned by plan_stream (gated, as enhance plans it) and rebuilt by the loop
    pairs = list(plan_stream(gate_frames(frames), "dag-greedy", 0.1, 5, 8,
                             anchor_weight=options.reuse_config().anchor_weight,
                             node_bias=node_bias_for(options.node_bias, options.scale)))
    config, counts = options.reuse_config(), SRCounts()
    rec, at_chunk_2 = Reconstructor(config), None
    got = []
    for pf, hr in rebuild_frames(planned_groups(pairs), config, source, counts, rec):
        got.append(hr)
        if pf.frame.index == 4:  # the last frame of the first chunk: the state the second starts from
            at_chunk_2 = copy.deepcopy(rec)
    assert len(got) == len(want) == 12 and summary.frames == 12
    for a, b in zip(got, want):
        for p, q in zip((a.y, a.u, a.v), (b.y, b.u, b.v)):
            np.testing.assert_array_equal(p, q)
    assert (counts.anchor_pixels, counts.lr_pixels) == (summary.anchor_pixels, summary.lr_pixels)
    assert 0 < counts.anchor_pixels <= 0.1 * counts.lr_pixels
    # from a copy of the loop's state at a chunk start, the rest of the stream comes out the same
    tail = [hr for _, hr in rebuild_frames(planned_groups(pairs[1:]), config, source, reconstructor=at_chunk_2)]
    assert [hr.index for hr in tail] == list(range(5, 12))
    for a, b in zip(tail, want[5:]):
        np.testing.assert_array_equal(a.y, b.y)
