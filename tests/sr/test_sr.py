"""SR stage: re-parameterisation, seam-free patches, shipped weights, errors, training."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from anchorsr.errors import ModelError
from anchorsr.sr import data
from anchorsr.sr.model import SRModel, default_path, load_model, save_model
from anchorsr.sr.nets import ARCHS, EDSRNet, PlainSRNet, RepSRNet
from anchorsr.sr.photos import held_out
from anchorsr.sr.patches import SRPatchSource, SRRunner
from anchorsr.sr.train import fit
from anchorsr.types import CodedFrame, MotionField, PatchGrid, chroma_box

REPARAM_TOL = 1e-4  # the bound on merged-vs-training output (Y/255 units)
SEAM_MAX_LEVELS = 1  # uint8 levels: float rounding may flip a .5 between the two runs
SEAM_MAX_FLIPPED = 1e-3  # share of pixels allowed to differ by that one level


def _frame(height: int, width: int, seed: int = 0) -> CodedFrame:
    """A smooth-plus-texture LR frame (deterministic)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    y = 128 + 60 * np.sin(xx / 7.0) * np.cos(yy / 5.0) + rng.normal(0, 12, (height, width))
    ch, cw = -(-height // 2), -(-width // 2)
    u = 128 + 30 * np.sin(np.mgrid[0:ch, 0:cw][1] / 4.0)
    v = 128 + 30 * np.cos(np.mgrid[0:ch, 0:cw][0] / 3.0)
    q = lambda a: np.clip(a, 0, 255).astype(np.uint8)  # noqa: E731
    return CodedFrame(0, 0, 0.0, "I", 0, q(y), q(u), q(v), MotionField.all_intra(height, width))


def _toy_model(scale: int, seed: int = 0) -> SRModel:
    torch.manual_seed(seed)
    return SRModel(PlainSRNet(scale, channels=8, body=2).eval(), scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_reparam_merged_equals_multibranch(scale):
    torch.manual_seed(scale)
    net = RepSRNet(scale, channels=8, body=2)
    with torch.no_grad():  # move off the init so every branch (masks, biases) matters
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    net.branches = True
    x = torch.rand(2, 1, 23, 31)
    with torch.no_grad():
        multi = net(x)
        merged = net.deploy()(x)
        net.branches = False
        online = net(x)
    assert merged.shape == (2, 1, scale * 23, scale * 31)
    assert (multi - merged).abs().max().item() <= REPARAM_TOL
    assert (multi - online).abs().max().item() <= REPARAM_TOL
    assert (multi - torch.nn.functional.interpolate(x, scale_factor=scale)).abs().max() > 1e-3


def test_warm_start_from_plain_is_exact():
    plain = _toy_model(3).net
    net = RepSRNet(3, channels=8, body=2).load_plain(plain)
    x = torch.rand(1, 1, 17, 19)
    with torch.no_grad():
        net.branches = True
        assert (net(x) - plain(x)).abs().max().item() <= REPARAM_TOL
    assert (net.deploy().convs[1].weight - plain.convs[1].weight).abs().max().item() <= REPARAM_TOL


@pytest.mark.parametrize("scale,halo", [(2, None), (3, None), (2, 8)])
def test_halo_assembly_equals_whole_frame(scale, halo):
    """The default halo (the network's receptive radius) already gives whole-frame pixels."""
    frame = _frame(120, 200)  # LR 200x120: edge patches are partial in both directions
    model = _toy_model(scale)
    source = SRPatchSource(model, halo_px=halo, precision="fp32", whole_frame_at=float("inf"))  # patch by patch
    assert source.halo_px == (model.receptive_radius if halo is None else halo)
    boxes = PatchGrid(48, frame.height, frame.width).boxes()
    y = np.zeros((scale * frame.height, scale * frame.width), np.uint8)
    u = np.zeros((scale * frame.u.shape[0], scale * frame.u.shape[1]), np.uint8)
    v = np.zeros_like(u)
    for (py, pu, pv), box in zip(source(frame, boxes, scale), boxes):
        y0, y1, x0, x1 = (scale * int(b) for b in box)
        y[y0:y1, x0:x1] = py
        c0, c1, d0, d1 = (scale * b for b in chroma_box(box))
        u[c0:c1, d0:d1], v[c0:c1, d0:d1] = pu, pv
    from anchorsr.sr.patches import upscale_frame

    wy, wu, wv = upscale_frame(SRRunner(model, "fp32"), frame.y, frame.u, frame.v)
    for got, want in ((y, wy), (u, wu), (v, wv)):
        diff = np.abs(got.astype(int) - want.astype(int))
        assert diff.max() <= SEAM_MAX_LEVELS
        assert (diff > 0).mean() <= SEAM_MAX_FLIPPED


@pytest.mark.parametrize("short", [4, 1])
def test_small_halo_does_show_seams(short):
    """The halo test above can fail: with a halo below the receptive radius (none, or one pixel
    short of the default), patch borders differ from the whole frame."""
    frame = _frame(120, 200)
    model = _toy_model(2)
    boxes = PatchGrid(48, frame.height, frame.width).boxes()
    halo = model.receptive_radius - short
    patches = SRPatchSource(model, halo_px=halo, precision="fp32", whole_frame_at=float("inf"))(frame, boxes, 2)
    whole = SRRunner(model, "fp32").upscale_y(frame.y)
    y0, y1, x0, x1 = (2 * int(b) for b in boxes[1])
    diff = np.abs(patches[1][0].astype(int) - whole[y0:y1, x0:x1])
    # more than the float rounding the exact test above allows
    assert diff.max() > SEAM_MAX_LEVELS or (diff > 0).mean() > SEAM_MAX_FLIPPED


@pytest.mark.parametrize("scale", [2, 3])
def test_many_anchors_switch_to_one_whole_frame_pass_with_the_same_pixels(scale):
    """When a frame's haloed anchors cover more than the frame, one whole-plane pass is cheaper;
    it gives the patch path's pixels (the halo covers the receptive field); few anchors stay
    patch by patch."""
    frame = _frame(120, 200)
    model = _toy_model(scale)
    boxes = PatchGrid(32, frame.height, frame.width).boxes()
    switching = SRPatchSource(model, precision="fp32")
    patchwise = SRPatchSource(model, precision="fp32", whole_frame_at=float("inf"))
    for got, want in zip(switching(frame, boxes, scale), patchwise(frame, boxes, scale)):
        for g, w in zip(got, want):
            assert g.shape == w.shape
            assert np.abs(g.astype(int) - w.astype(int)).max() <= SEAM_MAX_LEVELS
    assert switching.whole_frame_calls == 1 and patchwise.whole_frame_calls == 0
    switching(frame, boxes[:2], scale)
    assert switching.whole_frame_calls == 1  # two patches: cheaper one by one


def test_a_precomputed_whole_frame_pass_serves_the_boxes_without_the_network():
    """``whole_frames``: the boxes are cut from the frame's whole-frame output given beforehand
    (as ``upscale_frame`` makes it), the network does not run, and the pixels are those of the
    network on the patches (to the seam tolerance)."""
    from anchorsr.sr.patches import upscale_frame

    frame = _frame(120, 200)
    model = _toy_model(2)
    boxes = PatchGrid(32, frame.height, frame.width).boxes()[[0, 3, 7, -1]]
    whole = upscale_frame(SRRunner(model, "fp32"), frame.y, frame.u, frame.v)
    asked = []
    cached = SRPatchSource(model, precision="fp32", whole_frames=lambda i: asked.append(i) or whole)
    cached.runner.run = cached.runner.upscale_y = lambda *a: pytest.fail("the network ran")
    got = cached(frame, boxes, 2)
    assert asked == [frame.index]
    patchwise = SRPatchSource(model, precision="fp32", whole_frame_at=float("inf"))(frame, boxes, 2)
    for box, g, w in zip(boxes, got, patchwise):
        y0, y1, x0, x1 = (2 * int(b) for b in box)
        np.testing.assert_array_equal(g[0], whole[0][y0:y1, x0:x1])
        for a, b in zip(g, w):
            assert a.shape == b.shape and a.flags.writeable
            assert np.abs(a.astype(int) - b.astype(int)).max() <= SEAM_MAX_LEVELS
    assert cached(frame, boxes[:0], 2) == []


@pytest.mark.parametrize("scale,height,width", [(2, 121, 203), (3, 37, 50), (4, 30, 46)])
def test_patch_shapes_edge_and_odd_frames(scale, height, width):
    frame = _frame(height, width, seed=1)
    boxes = PatchGrid(16, height, width).boxes()
    out = SRPatchSource(_toy_model(scale), halo_px=4)(frame, boxes, scale)
    assert len(out) == len(boxes)
    for (py, pu, pv), box in zip(out, boxes):
        y0, y1, x0, x1 = box
        c0, c1, d0, d1 = chroma_box(box)
        assert py.shape == (scale * (y1 - y0), scale * (x1 - x0)) and py.dtype == np.uint8
        assert pu.shape == pv.shape == (scale * (c1 - c0), scale * (d1 - d0)) and pu.dtype == np.uint8
    assert SRPatchSource(_toy_model(scale))(frame, np.zeros((0, 4), int), scale) == []


def _held_out_pair(scale: int) -> data.Pair:
    assert "skimage:coffee" in data.EVAL_PHOTOS and "skimage:coffee" not in data.TRAIN_PHOTOS
    img = data.load_photo("skimage:coffee")[40:40 + 48 * scale, 200:200 + 64 * scale]
    return data.make_pair(img, scale, None, "coffee crop")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_weights_load_and_beat_bicubic(scale):
    model = load_model(scale)
    contract = model.contract
    assert contract["scale"] == scale and "Y" in contract["colour_space"]
    assert contract["training"]["photos_used"] and contract["measured"]["clean"]["gain_db"] > 0
    used = {r["name"] if isinstance(r, dict) else r for r in contract["training"]["photos_used"]}
    assert used and not any(held_out(name) for name in used)
    pair = _held_out_pair(scale)
    sr = SRRunner(model, "fp32").upscale_y(pair.lr)
    gain = data.psnr(sr, pair.hr, scale) - data.psnr(data.bicubic_upscale_y(pair.lr, scale), pair.hr, scale)
    assert gain > 0.2


def test_missing_and_corrupt_weights_raise_model_error(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ModelError, match="nope.safetensors"):
        load_model(2, missing)
    path = save_model(_toy_model(2), tmp_path / "toy")
    assert load_model(2, path).scale == 2
    with pytest.raises(ModelError, match="expected scale 3"):
        load_model(3, path)
    contract = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**contract, "channels": 12}))
    with pytest.raises(ModelError, match="do not match"):
        load_model(2, path)
    path.with_suffix(".json").write_text(json.dumps(contract))
    path.write_bytes(b"\x00garbage, not safetensors")
    with pytest.raises(ModelError, match=str(path.name)) as info:
        load_model(2, path)
    assert isinstance(info.value, OSError)
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelError, match="JSON"):
        load_model(2, path)


def test_default_path_is_in_package():
    assert default_path(2).name == "repsr_x2.safetensors"


def test_tiny_training_reduces_loss():
    img = data.load_photo("skimage:camera")[128:320, 128:320]
    pairs = [data.make_pair(img, 2, None, "camera crop")]
    torch.manual_seed(0)
    net = RepSRNet(2, channels=8, body=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        losses, its, _ = fit(net, pairs, 2, iterations=80, time_budget_s=60, batch=8, lr_px=24,
                             learning_rate=3e-3, seed=0, log_every=20)
    finally:
        torch.set_num_threads(threads)
    assert its == 80 and len(losses) == 4
    assert losses[-1] < 0.8 * losses[0]


def test_edsr_reference_shapes():
    net = EDSRNet(3, "low").eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, 11, 13))
    assert out.shape == (1, 1, 33, 39) and net.receptive_radius == 11


def test_cli_registers_train():
    from anchorsr.sr.cli import add_parsers

    parser = argparse.ArgumentParser(prog="anchorsr")
    add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--scale", "3", "-o", "x"])
    assert args.scale == 3 and callable(args.handler)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["train", "--help"])
    assert info.value.code == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    frame = _frame(64, 96)
    cpu_model = _toy_model(2)
    gpu_model = SRModel(PlainSRNet(2, 8, 2).eval().cuda(), 2)
    gpu_model.net.load_state_dict(cpu_model.net.state_dict())
    boxes = PatchGrid(32, 64, 96).boxes()
    a = SRPatchSource(cpu_model, precision="fp32")(frame, boxes, 2)
    b = SRPatchSource(gpu_model, precision="fp32")(frame, boxes, 2)
    for (ya, _, _), (yb, _, _) in zip(a, b):
        assert np.abs(ya.astype(int) - yb).max() <= 1


def test_edsr_reference_trains_saves_and_loads(tmp_path):
    from anchorsr.sr.train import TrainConfig, train

    cfg = TrainConfig(scale=2, arch="edsr", edsr_size="low", photos=("skimage:camera",), eval_photos=(),
                      crfs=(None,), seq_crfs=(), iterations=3, batch=2, lr_px=24)
    res = train(cfg)
    path = save_model(res.model, tmp_path / "edsr_low_x2")
    loaded = load_model(2, path)
    assert isinstance(loaded.net, EDSRNet) and loaded.net.size == "low"
    assert loaded.contract["arch"] == "edsr" and loaded.contract["training"]["arch"] == "edsr"
    y = np.random.default_rng(0).integers(0, 256, (20, 28), np.uint8)
    assert SRRunner(loaded, "fp32").upscale_y(y).shape == (40, 56)


def test_training_options_are_checked():
    from anchorsr.errors import ConfigError
    from anchorsr.sr.train import TrainConfig

    with pytest.raises(ConfigError, match="arch"):
        TrainConfig(arch="vdsr")
    with pytest.raises(ConfigError, match="size"):
        TrainConfig(arch="edsr", edsr_size="huge")
