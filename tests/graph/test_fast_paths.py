"""The graph's fast paths (macroblock edge weights, strip texture kernel, sampled biases,
per-frame kernel layout) against the per-pixel references, and the texture term's ranking
on a real-photo clip."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import spearmanr

from anchorsr.graph import GraphBuilder, build_graph, frame_texture, frame_weights
from anchorsr.graph.motion import frame_edges
from anchorsr.graph.dag import _pack
from anchorsr.graph.synthetic import coded_frame, moving_object_clip
from anchorsr.graph.texture import strips_per_group
from anchorsr.types import Chunk, MotionField, PatchGrid

from test_graph import ATOL, _naive_texture, _naive_weights


def _macroblock_motion(rng, h, w, reach=80, intra_share=0.2):
    """Vectors and intra flags constant per 16x16 macroblock (as H.264 codes them), with some
    4x4 blocks overridden, so both the whole-macroblock and the per-block paths run."""
    bh, bw = -(-h // 4), -(-w // 4)
    mh, mw = -(-bh // 4), -(-bw // 4)
    mv = np.repeat(np.repeat(rng.integers(-reach, reach, (mh, mw, 2)), 4, 0), 4, 1)[:bh, :bw]
    intra = np.repeat(np.repeat(rng.random((mh, mw)) < intra_share, 4, 0), 4, 1)[:bh, :bw]
    odd = rng.random((bh, bw)) < 0.05
    mv[odd] = rng.integers(-reach, reach, (int(odd.sum()), 2))
    return mv.copy(), intra.copy()


def _coded_pair(seed, h, w):
    """A reference frame and a P frame over it with ``_macroblock_motion``; and its intra flags."""
    rng = np.random.default_rng(seed)
    mv, intra = _macroblock_motion(rng, h, w)
    ref = coded_frame(0, rng.integers(0, 256, (h, w)))
    return ref, coded_frame(1, rng.integers(0, 256, (h, w)), mv, intra), intra


@settings(max_examples=30, deadline=None)
@given(h=st.integers(16, 70), w=st.integers(16, 90), patch_px=st.sampled_from([16, 32, 48]),
       seed=st.integers(0, 10_000), scale=st.sampled_from([None, 2, 3]))
def test_macroblock_weights_match_per_pixel_reference(h, w, patch_px, seed, scale):
    ref, cur, _ = _coded_pair(seed, h, w)
    grid = PatchGrid(patch_px, h, w)
    np.testing.assert_allclose(frame_weights(cur, ref, grid, scale).toarray(),
                               _naive_weights(cur, ref, grid, scale), atol=ATOL)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(8, 70), w=st.integers(8, 70), patch_px=st.sampled_from([6, 8, 16, 24]),
       rows_share=st.sampled_from([0.0, 0.2, 0.6]), seed=st.integers(0, 10_000))
def test_intra_only_texture_skips_strips_without_intra_blocks_exactly(h, w, patch_px, rows_share, seed):
    # The intra node bias of a P frame: the strips that hold no intra block are skipped (their
    # new signal is zero); the result is the per-pixel reference with every inter pixel's signal
    # zero (its residual against itself), including no intra block at all.
    rng = np.random.default_rng(seed)
    mv, intra = _macroblock_motion(rng, h, w, intra_share=0.5)
    intra &= (rng.random(intra.shape[0]) < rows_share)[:, None]  # whole block rows without intra
    y = rng.integers(0, 256, (h, w))
    ref = coded_frame(0, rng.integers(0, 256, (h, w)))
    cur = coded_frame(1, y, mv, intra)
    still = coded_frame(1, y, np.zeros_like(mv), intra)  # inter pixels copy themselves: signal 0
    grid = PatchGrid(patch_px, h, w)
    np.testing.assert_allclose(frame_texture(cur, ref, grid, inter=False), _naive_texture(still, still, grid),
                               rtol=1e-6, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(16, 70), w=st.integers(16, 90), patch_px=st.sampled_from([6, 16, 32, 48]),
       seed=st.integers(0, 10_000), scale=st.sampled_from([None, 2]))
def test_edges_count_the_inter_share_with_the_weights(h, w, patch_px, seed, scale):
    # The share of each patch's pixels in inter blocks, counted inside the weights kernel (whole
    # macroblocks, clamped blocks, partial edge blocks), against a per-pixel count.
    ref, cur, intra = _coded_pair(seed, h, w)
    grid = PatchGrid(patch_px, h, w)
    weights, share = frame_edges(cur, ref, grid, scale)
    inter_px = ~np.repeat(np.repeat(intra, 4, 0), 4, 1)[:h, :w]
    want = np.bincount(grid.patch_index_map()[inter_px], minlength=grid.n_patches) / grid.areas()
    np.testing.assert_allclose(share, want, atol=1e-12)
    np.testing.assert_allclose(weights.toarray(), frame_weights(cur, ref, grid, scale).toarray())
    key_w, key_share = frame_edges(cur, None, grid, scale)
    assert key_w.nnz == 0 and not key_share.any()


@settings(max_examples=25, deadline=None)
@given(h=st.integers(8, 60), w=st.integers(8, 70), patch_px=st.sampled_from([8, 16, 24]),
       seed=st.integers(0, 10_000))
def test_strip_texture_matches_reference_with_coded_motion(h, w, patch_px, seed):
    # Long runs of equal vectors, some reaching outside the frame (clamped at both ends).
    rng = np.random.default_rng(seed)
    mv, intra = _macroblock_motion(rng, h, w, reach=60)
    ref = coded_frame(0, rng.integers(0, 256, (h, w)))
    cur = coded_frame(1, rng.integers(0, 256, (h, w)), mv, intra)
    grid = PatchGrid(patch_px, h, w)
    np.testing.assert_allclose(frame_texture(cur, ref, grid), _naive_texture(cur, ref, grid),
                               rtol=1e-6, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(8, 70), w=st.integers(8, 70), patch_px=st.sampled_from([4, 6, 16, 32, 48]),
       sample=st.integers(2, 5), key=st.booleans(), seed=st.integers(0, 10_000))
def test_sampled_texture_is_unbiased_over_its_phases(h, w, patch_px, sample, key, seed):
    rng = np.random.default_rng(seed)
    mv, intra = _macroblock_motion(rng, h, w, reach=40)
    ref = coded_frame(0, rng.integers(0, 256, (h, w)))
    cur = coded_frame(1, rng.integers(0, 256, (h, w)), mv, intra, kind="I" if key else "P")
    grid = PatchGrid(patch_px, h, w)
    exact = frame_texture(cur, ref, grid)
    # Each plane samples one strip in every group of its group size; a group size that
    # divides the planes' least common multiple of sizes is covered by that many phases.
    sizes = [strips_per_group(sample, patch_px, sub) or 1 for sub in (1, 2)]
    period = int(np.lcm.reduce(sizes))
    mean = np.mean([frame_texture(cur, ref, grid, sample=sample, phase=ph) for ph in range(period)],
                   axis=0)
    np.testing.assert_allclose(mean, exact, rtol=1e-6, atol=1e-6)


def test_sampled_texture_does_sample():
    rng = np.random.default_rng(5)
    frame = coded_frame(0, rng.integers(0, 256, (64, 64)))
    grid = PatchGrid(32, 64, 64)
    assert strips_per_group(4, 32, 1) == 4 and strips_per_group(4, 32, 2) == 4
    assert strips_per_group(4, 24, 1) == 3 and strips_per_group(4, 6, 1) == 0
    exact = frame_texture(frame, None, grid)
    one = frame_texture(frame, None, grid, sample=4, phase=0)
    other = frame_texture(frame, None, grid, sample=4, phase=1)
    assert not np.allclose(one, exact) and not np.allclose(one, other)
    assert np.allclose(one, exact, rtol=0.5)  # noise texture: every strip is alike


def test_builder_layout_equals_layout_from_weights():
    frames = moving_object_clip(48, 80, 7, obj_px=16, speed_px=3)
    for patch_px, edge_weights in ((16, True), (8, True), (6, True), (16, False)):
        chunk = Chunk(tuple(frames[1:]), PatchGrid(patch_px, 48, 80), prev=frames[0])
        graph = build_graph(chunk, edge_weights=edge_weights)
        fresh = _pack(tuple(graph.weights))
        for name in ("indptr", "indices", "data", "t_indptr", "t_indices", "t_data"):
            np.testing.assert_array_equal(getattr(graph.packed, name), getattr(fresh, name))
        # The transposes are the matrices' transposes.
        n = graph.n_patches
        for t, w in enumerate(graph.weights):
            lo, hi = graph.packed.t_indptr[t, 0], graph.packed.t_indptr[t, -1]
            dense = np.zeros((n, n))
            for q in range(n):
                for j in range(graph.packed.t_indptr[t, q], graph.packed.t_indptr[t, q + 1]):
                    dense[q, graph.packed.t_indices[j]] = graph.packed.t_data[j]
            assert hi - lo == w.nnz
            np.testing.assert_array_equal(dense, w.toarray().T)


def test_builder_rejects_nothing_built():
    builder = GraphBuilder(PatchGrid(16, 32, 32))
    with pytest.raises(Exception, match="at least one frame"):
        builder.build()


def test_texture_ranks_patches_like_the_real_upsampling_error():
    # A camera pan over a real photograph, 2x downscaled, encoded and decoded: on key frames
    # the biases must rank patches like the true error of bicubic upsampling (measured
    # Spearman ~0.93 exact, ~0.84 sampled at 2), and a shuffled ranking must not pass.
    from anchorsr.bench.texture_check import clip_frames, ranking, true_patch_error

    frames, hr = clip_frames("astronaut", 128, 96, 4, 2)
    grid = PatchGrid(16, 96, 128)
    rho = ranking(frames, hr, grid, (1, 2))
    assert rho["key_frames"] == 2
    assert rho["spearman_vs_true_error"]["1"] > 0.8
    assert rho["spearman_vs_true_error"]["2"] > 0.7
    assert rho["spearman_vs_exact_bias"]["2"] > 0.85
    truth = true_patch_error(frames[0], hr[0], grid)
    shuffled = np.random.default_rng(0).permutation(frame_texture(frames[0], None, grid))
    assert spearmanr(shuffled, truth)[0] < 0.5


@settings(max_examples=30, deadline=None)
@given(h=st.integers(16, 70), w=st.integers(16, 90), patch_px=st.sampled_from([6, 16, 32, 48]),
       seed=st.integers(0, 10_000))
def test_intra_texture_counts_each_fresh_block_times_its_share(h, w, patch_px, seed):
    # An inter block with a fresh share f (the error one reuse step adds there, from the gate)
    # counts its LR values like an intra block's, times f: the per-pixel reference is the sum,
    # over each share value, of the intra texture of the blocks that carry it. Shares are
    # constant per macroblock, as the gate sets them, so each chroma block has one.
    rng = np.random.default_rng(seed)
    mv, intra = _macroblock_motion(rng, h, w, intra_share=0.3)
    bh, bw = intra.shape
    per_mb = rng.choice(np.array([0.0, 0.25, 0.5, 1.0], np.float32), (-(-bh // 4), -(-bw // 4)))
    fresh = np.where(intra, 0.0, np.repeat(np.repeat(per_mb, 4, 0), 4, 1)[:bh, :bw]).astype(np.float32)
    y = rng.integers(0, 256, (h, w))
    ref = coded_frame(0, rng.integers(0, 256, (h, w)))
    cur = coded_frame(1, y, mv, intra)
    cur = replace(cur, motion=MotionField(cur.motion.mv, cur.motion.intra, fresh))
    grid = PatchGrid(patch_px, h, w)
    share = np.where(intra, 1.0, fresh)
    want = np.zeros(grid.n_patches)
    for value in np.unique(share[share > 0]):
        blocks = coded_frame(1, y, np.zeros_like(mv), share == value)
        want += value * _naive_texture(blocks, blocks, grid)
    got = frame_texture(cur, ref, grid, inter=False)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    if (fresh > 0).any():  # the shares change the bias: the test can tell them apart
        plain = frame_texture(coded_frame(1, y, mv, intra), ref, grid, inter=False)
        assert got.sum() > plain.sum()
