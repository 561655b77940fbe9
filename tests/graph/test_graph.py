"""Dependency graph: edge weights, texture biases, ablations, the error recursion."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from anchorsr.graph import (adjoint, build_graph, carry_out, forward_errors, frame_texture,
                            frame_weights, objective)
from anchorsr.graph.motion import retention
from anchorsr.graph.synthetic import coded_frame, moving_object_clip
from anchorsr.graph.texture import ROUND_TRIP
from anchorsr.types import Chunk, PatchGrid

ATOL = 1e-9


def _pan_pair(h, w, dx_q, dy_q=0):
    rng = np.random.default_rng(1)
    ref = coded_frame(0, rng.integers(0, 256, (h, w)))
    mv = np.zeros((-(-h // 4), -(-w // 4), 2), np.int16)
    mv[..., 0], mv[..., 1] = dx_q, dy_q
    return ref, coded_frame(1, rng.integers(0, 256, (h, w)), mv)


def test_whole_pixel_pan_gives_overlap_weights():
    # 16x16 frame, 8 px patches (2x2 grid). Every block copies from 4 px to its right.
    ref, cur = _pan_pair(16, 16, dx_q=16)
    w = frame_weights(cur, ref, PatchGrid(8, 16, 16)).toarray()
    # Patch 0 (x 0..8) copies x 4..12: half from patch 0, half from patch 1.
    # Patch 1 (x 8..16) copies x 12..16, the right block clamped back inside the frame.
    expected = np.array([[0.5, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 0.5, 0.5], [0, 0, 0, 1]])
    np.testing.assert_allclose(w, expected, atol=ATOL)


def test_quarter_pel_vectors_round_half_up():
    # 6 quarter pels = 1.5 px -> 2 px: patch 0 (x 0..8) copies x 2..10, 6/8 from patch 0.
    ref, cur = _pan_pair(8, 16, dx_q=6)
    w = frame_weights(cur, ref, PatchGrid(8, 8, 16)).toarray()
    np.testing.assert_allclose(w[0], [0.75, 0.25], atol=ATOL)


def test_intra_blocks_give_zero_rows_and_key_frames_zero_matrices():
    ref, cur = _pan_pair(16, 16, dx_q=0)
    intra = np.zeros((4, 4), bool)
    intra[:2, :2] = True  # patch 0 entirely intra
    intra[2:, 2] = True   # half of patch 3
    cur = coded_frame(1, cur.y, cur.motion.mv, intra)
    w = frame_weights(cur, ref, PatchGrid(8, 16, 16)).toarray()
    np.testing.assert_allclose(w.sum(1), [0, 1, 1, 0.5], atol=ATOL)
    key = coded_frame(1, cur.y)
    assert frame_weights(key, ref, PatchGrid(8, 16, 16)).nnz == 0
    assert frame_weights(cur, None, PatchGrid(8, 16, 16)).nnz == 0


def _naive_weights(cur, ref, grid, scale=None):
    """Per pixel: which patch its (block-clamped, whole-pel) source pixel lies in; counting the
    retention of its block's HR phase (x scale, in quarter pels, modulo 4) when scale is given."""
    h, w = grid.height, grid.width
    out = np.zeros((grid.n_patches, grid.n_patches))
    pidx = grid.patch_index_map()
    for y in range(h):
        for x in range(w):
            by, bx = y // 4, x // 4
            if cur.motion.intra[by, bx]:
                continue
            dx, dy = ((cur.motion.mv[by, bx].astype(int) + 2) // 4)
            bhh, bww = min(4, h - 4 * by), min(4, w - 4 * bx)
            sy = min(max(4 * by + dy, 0), h - bhh) + (y - 4 * by)
            sx = min(max(4 * bx + dx, 0), w - bww) + (x - 4 * bx)
            r = 1.0
            if scale is not None:
                qx, qy = (int(v) * scale % 4 for v in cur.motion.mv[by, bx])
                r = retention(scale)[qy, qx]
            out[pidx[y, x], pidx[sy, sx]] += r
    return out / grid.areas()[:, None]


@settings(max_examples=40, deadline=None)
@given(h=st.integers(5, 30), w=st.integers(5, 30), patch_px=st.sampled_from([2, 4, 6, 8, 10, 16]),
       seed=st.integers(0, 10_000), scale=st.sampled_from([None, 2, 3]))
def test_weights_match_per_pixel_reference(h, w, patch_px, seed, scale):
    rng = np.random.default_rng(seed)
    bh, bw = -(-h // 4), -(-w // 4)
    mv = rng.integers(-50, 50, (bh, bw, 2))
    intra = rng.random((bh, bw)) < 0.2
    ref = coded_frame(0, rng.integers(0, 256, (h, w)))
    cur = coded_frame(1, rng.integers(0, 256, (h, w)), mv, intra)
    grid = PatchGrid(patch_px, h, w)
    got = frame_weights(cur, ref, grid, scale).toarray()
    np.testing.assert_allclose(got, _naive_weights(cur, ref, grid, scale), atol=ATOL)
    assert (got.sum(1) <= 1 + ATOL).all() and (got >= 0).all()


def _naive_texture(cur, ref, grid):
    out = np.zeros(grid.n_patches)
    for plane, sub in (("y", 1), ("u", 2), ("v", 2)):
        x = getattr(cur, plane).astype(float)
        h, w = x.shape
        sig = x.copy()
        if ref is not None and not cur.is_key:
            r = getattr(ref, plane).astype(float)
            for py in range(h):
                for px in range(w):
                    ly, lx = py * sub // 4, px * sub // 4
                    if not cur.motion.intra[ly, lx]:
                        dx, dy = (cur.motion.mv[ly, lx].astype(int) + 2 * sub) // (4 * sub)
                        sig[py, px] -= r[min(max(py + dy, 0), h - 1), min(max(px + dx, 0), w - 1)]
        pad = np.pad(sig, ((0, -h % 4), (0, -w % 4)), mode="edge")
        err = np.zeros_like(pad)
        for by in range(0, h, 4):
            for bx in range(0, w, 4):
                blk = pad[by:by + 4, bx:bx + 4]
                err[by:by + 4, bx:bx + 4] = blk - ROUND_TRIP @ blk @ ROUND_TRIP.T
        err = err[:h, :w] ** 2
        ys, xs = np.meshgrid(np.arange(h) * sub // grid.patch_px, np.arange(w) * sub // grid.patch_px,
                             indexing="ij")
        np.add.at(out, ys * grid.cols + xs, err)
    return out


@settings(max_examples=20, deadline=None)
@given(h=st.integers(5, 26), w=st.integers(5, 26), patch_px=st.sampled_from([4, 6, 8]),
       key=st.booleans(), seed=st.integers(0, 10_000))
def test_texture_matches_reference(h, w, patch_px, key, seed):
    rng = np.random.default_rng(seed)
    bh, bw = -(-h // 4), -(-w // 4)
    ref = coded_frame(0, rng.integers(0, 256, (h, w)))
    cur = coded_frame(1, rng.integers(0, 256, (h, w)), rng.integers(-30, 30, (bh, bw, 2)),
                      rng.random((bh, bw)) < 0.3, kind="I" if key else "P")
    grid = PatchGrid(patch_px, h, w)
    np.testing.assert_allclose(frame_texture(cur, ref, grid), _naive_texture(cur, ref, grid),
                               rtol=1e-6, atol=1e-6)


def test_texture_is_zero_for_flat_and_perfectly_predicted_content():
    grid = PatchGrid(8, 16, 24)
    flat = coded_frame(0, np.full((16, 24), 77))
    assert np.allclose(frame_texture(flat, None, grid), 0)
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (16, 24))
    ref, static = coded_frame(0, img), coded_frame(1, img, np.zeros((4, 6, 2)))
    assert np.allclose(frame_texture(static, ref, grid), 0)
    assert (frame_texture(ref, None, grid) > 0).all()


def test_ablations():
    frames = moving_object_clip(48, 64, 6, obj_px=16, speed_px=4)
    chunk = Chunk(tuple(frames), PatchGrid(16, 48, 64))
    full = build_graph(chunk)
    flat = build_graph(chunk, edge_weights=False, texture=False)
    assert np.all(flat.bias == 1)
    assert flat.weights[0].nnz == 0  # key frame
    for w in flat.weights[1:]:
        np.testing.assert_array_equal(w.toarray(), np.eye(12))  # all patches mostly inter
    assert full.bias[0].sum() > full.bias[3].sum() > 0


def test_recursion_by_hand_and_carry():
    # Two frames, one patch each: e0 = b0 + w0*carry, e1 = b1 + w1*e0.
    from anchorsr.graph import DependencyGraph
    g = DependencyGraph.from_arrays(PatchGrid(4, 4, 4), [[[0.5]], [[0.25]]], [[2.0], [1.0]])
    e = forward_errors(g, carry_in=[4.0])
    np.testing.assert_allclose(e[:, 0], [4.0, 2.0])
    assert objective(g, carry_in=[4.0]) == pytest.approx(6.0)
    np.testing.assert_allclose(carry_out(g, carry_in=[4.0]), [2.0])
    np.testing.assert_allclose(adjoint(g)[:, 0], [1.25, 1.0])
    mask = np.array([[True], [False]])
    np.testing.assert_allclose(forward_errors(g, mask, carry_in=[4.0])[:, 0], [0.0, 1.0])


def test_recursion_with_keep_shares():
    """An anchored node keeps its keep share of its error, in the errors, the adjoints and J."""
    from anchorsr.graph import DependencyGraph
    g = DependencyGraph.from_arrays(PatchGrid(4, 4, 4), [[[0.5]], [[0.25]]], [[2.0], [1.0]],
                                    keep=[[0.1], [0.5]])
    both = np.array([[True], [True]])
    # e0 = 0.1 * (2 + 0.5 * 4) = 0.4; e1 = 0.5 * (1 + 0.25 * 0.4) = 0.55
    np.testing.assert_allclose(forward_errors(g, both, carry_in=[4.0])[:, 0], [0.4, 0.55])
    assert objective(g, both, carry_in=[4.0]) == pytest.approx(0.95)
    np.testing.assert_allclose(adjoint(g, both)[:, 0], [1 + 0.25 * 0.5, 1.0])
    np.testing.assert_allclose(forward_errors(g, None, carry_in=[4.0])[:, 0], [4.0, 2.0])
    with pytest.raises(Exception, match="keep shares"):
        DependencyGraph.from_arrays(PatchGrid(4, 4, 4), [[[0.5]]], [[2.0]], keep=[[1.0]])


def test_keep_shares_follow_the_blend_and_the_inter_blocks():
    """The graph's keep share is (1 - w)^2 times the patch's inter share on a P frame with a
    reference, 0 on the key frame and on intra blocks; none without an anchor weight."""
    from anchorsr.graph import anchor_keep, inter_share

    rng = np.random.default_rng(3)
    key = coded_frame(0, rng.integers(0, 256, (16, 24)))
    intra = np.zeros((4, 6), bool)
    intra[:2, :2] = True   # patch 0 (8x8 px at 8 px patches): all of it intra
    intra[2, 3] = True     # one 4x4 block of patch 4 (rows 8-16, x 8-16): a quarter of it
    cur = coded_frame(1, rng.integers(0, 256, (16, 24)), intra=intra)
    grid = PatchGrid(8, 16, 24)
    np.testing.assert_allclose(inter_share(cur, grid), [0, 1, 1, 1, 0.75, 1])
    # patch sizes that are not multiples of the 4x4 blocks count pixel by pixel
    odd = PatchGrid(6, 16, 24)
    want = np.bincount(odd.patch_index_map().ravel(), weights=~np.repeat(np.repeat(intra, 4, 0), 4, 1).ravel())
    np.testing.assert_allclose(inter_share(cur, odd), want / odd.areas())
    np.testing.assert_allclose(anchor_keep(cur, key, grid, 0.7), 0.09 * inter_share(cur, grid))
    assert not anchor_keep(cur, None, grid, 0.7).any()  # no reference: upsampled whole, replaced
    assert not anchor_keep(key, None, grid, 0.7).any()
    assert not anchor_keep(cur, key, grid, 1.0).any()
    chunk = Chunk((key, cur), grid)
    graph = build_graph(chunk, anchor_weight=0.7)
    np.testing.assert_allclose(graph.keep[1], anchor_keep(cur, key, grid, 0.7))
    assert not graph.keep[0].any()
    assert build_graph(chunk).keep is None
