"""The reuse gate (anchorsr.reuse.gate): reuse with the gate never below per-frame bicubic where
block motion fails, untouched where it works, and the graph cut where a block is gated."""

from dataclasses import replace

import numpy as np
import pytest

from anchorsr.bench.scenes import CameraPath, downscale, photo, render_pan
from anchorsr.graph import build_graph
from anchorsr.metrics import clip_psnr
from anchorsr.reuse import Reconstructor, ReuseConfig, ReuseGate, gate_frames, upscale_bicubic
from anchorsr.stream import EncodeSettings, open_frames, write_clip
from anchorsr.types import Chunk, CodedFrame, MotionField, PatchGrid
from tests.conftest import textured

W, H = 192, 128  # HR size of the rendered clips


def _psnr_y(outputs, truth) -> float:
    return clip_psnr([float(np.mean((o.astype(np.float64) - t) ** 2)) for o, t in zip(outputs, truth)])


def _reuse_y(frames, residual="bicubic", feather=True, down="bicubic"):
    rec = Reconstructor(ReuseConfig(2, residual_upsampler=residual, feather_seams=feather, down_filter=down))
    return [rec.step(f).y for f in frames]


def _bicubic_y(frames):
    return [upscale_bicubic(f.y, f.u, f.v, 2)[0] for f in frames]


@pytest.fixture(scope="module")
def zoom(tmp_path_factory):
    """A camera zooming into a real photo by 1% a frame (x264, one GOP): HR luma, decoded LR."""
    hr = list(render_pan(photo("astronaut"), W, H, 30, CameraPath(0.0, 0.0, 1.01), magnify=1.2))
    path = tmp_path_factory.mktemp("gate") / "zoom.mp4"
    write_clip(path, downscale(iter(hr), 2), EncodeSettings(keyint=250, crf=20))
    return [y for y, _, _ in hr], list(open_frames(str(path)))


def test_gate_lifts_reuse_on_a_zoom_to_bicubic(zoom):
    """With the nearest residual and no seam feathering, block motion on this zoom loses to
    bicubic and the gate lifts it back; the default (bicubic residual, feathered seams) is above
    bicubic here with or without the gate."""
    truth, frames = zoom
    gated_frames = list(gate_frames(frames))
    bicubic = _psnr_y(_bicubic_y(frames), truth)
    ungated = _psnr_y(_reuse_y(frames, "nearest", feather=False), truth)
    gated = _psnr_y(_reuse_y(gated_frames, "nearest", feather=False), truth)
    assert ungated < bicubic  # block motion cannot follow the zoom: the test proves something
    assert gated >= bicubic, (gated, bicubic, ungated)
    assert _psnr_y(_reuse_y(gated_frames), truth) >= bicubic


def _frame(index, y, kind, mv=None, intra=None):
    h, w = y.shape
    c = np.ascontiguousarray(y[::2, ::2])
    motion = MotionField.all_intra(h, w) if kind == "I" else MotionField(mv, intra)
    return CodedFrame(index, index, index / 30, kind, 1000, y, c, 255 - c, motion)


def _cut_clip(n=10, cut=5, h=64, w=96):
    """Scene A (a photo) pans by whole pixels with exact vectors, then scene B (another photo)
    replaces it in P frames whose blocks all keep a zero vector (an inter-coded cut: the vectors
    are meaningless). HR truth, LR = 2x2 means of it."""
    a = photo("astronaut")[..., 1][40:, 100:]  # green channel as luma: real photos
    b = np.ascontiguousarray(photo("coffee")[..., 1][100:100 + 2 * h, 200:200 + 2 * w])
    bh, bw = h // 4, w // 4
    hr, frames = [], []
    for i in range(n):
        t = np.ascontiguousarray(a[2 * i:2 * i + 2 * h, 4 * i:4 * i + 2 * w]) if i < cut else b
        hr.append(t)
        y = np.ascontiguousarray(t.reshape(h, 2, w, 2).mean(axis=(1, 3)).round().astype(np.uint8))
        mv = np.zeros((bh, bw, 2), np.int16)
        if 0 < i < cut:
            mv[..., 0], mv[..., 1] = 2 * 4, 1 * 4  # the LR content moved by (2, 1) px
        frames.append(_frame(i, y, "I" if i == 0 else "P", mv, np.zeros((bh, bw), bool)))
    return hr, frames


def test_gate_sends_an_inter_coded_cut_to_bicubic():
    truth, frames = _cut_clip()
    gated_frames = list(gate_frames(frames))
    # the clip's LR is the 2x2 mean of its truth: the box model is the closed loop's matching one
    bicubic = _bicubic_y(frames)
    ungated, gated = _reuse_y(frames, down="box"), _reuse_y(gated_frames, down="box")
    cut = slice(5, 6)  # the cut frame (before it, exact vectors make reuse near perfect)
    assert _psnr_y(ungated[cut], truth[cut]) < _psnr_y(bicubic[cut], truth[cut]) - 0.3
    assert _psnr_y(gated[cut], truth[cut]) >= _psnr_y(bicubic[cut], truth[cut])
    assert _psnr_y(gated, truth) >= _psnr_y(bicubic, truth)
    # Before the cut most blocks are reused (where the shadow's reuse and bicubic tie, as next
    # to the borders the pan uncovers, either may win); the cut frame is upsampled whole.
    for f in gated_frames[1:5]:
        assert f.motion.intra.mean() <= 0.5
    assert gated_frames[5].motion.intra.all()


def test_gated_blocks_equal_bicubic_and_frames_without_gating_are_untouched():
    _, frames = _cut_clip()
    gated = list(gate_frames(frames))
    assert gated[0] is frames[0]  # a key frame is never gated
    rec = Reconstructor(ReuseConfig(2))
    outs = [rec.step(f) for f in gated]
    bic = upscale_bicubic(frames[5].y, frames[5].u, frames[5].v, 2)
    for o, b in zip((outs[5].y, outs[5].u, outs[5].v), bic):
        assert np.array_equal(o, b)


def test_gate_leaves_a_pan_reused(pan_clip):
    frames = list(open_frames(pan_clip))
    gate, gated, inter = ReuseGate(), 0, 0
    for f in frames:
        mask = gate.mask(f)
        if mask is not None:
            gated += int(mask.sum())
            inter += int((~f.motion.intra).sum())
    assert inter > 0
    assert gated <= 0.02 * inter, gated / inter


def test_gated_node_has_no_incoming_error_edges():
    _, frames = _cut_clip()
    grid = PatchGrid(16, *frames[0].y.shape)
    plain = build_graph(Chunk(tuple(frames), grid))
    gated = build_graph(Chunk(tuple(gate_frames(frames)), grid))
    t = 5  # the cut: every block gated
    assert plain.weights[t].nnz > 0  # without the gate the cut frame copies from the one before
    assert gated.weights[t].nnz == 0
    # the gated node's error is the upsampling's: the bias of an intra patch
    intra = [_frame(f.index, f.y, "P", f.motion.mv, np.ones_like(f.motion.intra)) for f in frames]
    assert np.allclose(gated.bias[t], build_graph(Chunk(tuple(intra), grid)).bias[t])
    # before the cut, a patch none of whose blocks is gated keeps its edges exactly
    g2 = list(gate_frames(frames))[2].motion.intra
    kept = [p for p in range(grid.n_patches)
            if not g2[4 * (p // grid.cols):4 * (p // grid.cols) + 4, 4 * (p % grid.cols):4 * (p % grid.cols) + 4].any()]
    w_plain, w_gated = plain.weights[2].toarray(), gated.weights[2].toarray()
    assert kept and w_plain[kept].sum() > 0
    assert np.array_equal(w_gated[kept], w_plain[kept])


def test_fresh_shares_are_zero_on_a_still_scene():
    # Nothing moves and nothing is coded: one reuse step adds no error to what the reference had.
    y = textured(64, 96, seed=3)
    bh, bw = 16, 24
    frames = [_frame(0, y, "I")] + [_frame(i, y, "P", np.zeros((bh, bw, 2), np.int16), np.zeros((bh, bw), bool))
                                    for i in range(1, 6)]
    gate = ReuseGate()
    assert gate.judge(frames[0]) == (None, None)  # a key frame has no shadow reference
    for f in frames[1:]:
        gated, fresh = gate.judge(f)
        assert not gated.any()
        assert fresh.dtype == np.float32 and fresh.shape == (bh, bw)
        assert np.all(fresh == 0), fresh.max()


def test_fresh_shares_on_a_zoom_are_shares_and_reach_the_graph(zoom):
    # Block motion cannot follow a zoom: reuse adds error at every step on some blocks. The
    # shares are in [0, 1], zero on intra and gated blocks, and the gated stream carries them
    # to the intra node bias, which then counts inter blocks.
    _, frames = zoom
    gate, seen = ReuseGate(), 0
    for f in frames:
        gated, fresh = gate.judge(f)
        if fresh is None:
            continue
        assert np.all((fresh >= 0) & (fresh <= 1))
        assert np.all(fresh[f.motion.intra | gated] == 0)
        seen += int((fresh > 0).sum())
    assert seen > 0
    from anchorsr.graph.predictor import intra_texture
    from anchorsr.graph.texture import frame_texture

    out = list(gate_frames(frames))
    grid = PatchGrid(16, *frames[0].y.shape)
    p = next(i for i, f in enumerate(out) if f.motion.fresh is not None and (f.motion.fresh > 0).any())
    plain = replace(out[p], motion=MotionField(out[p].motion.mv, out[p].motion.intra))
    assert intra_texture(out[p], out[p - 1], grid).sum() > frame_texture(plain, out[p - 1], grid, inter=False).sum()
