"""The numpy SR engine: the same function as the torch engine, the same errors, no torch import."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from anchorsr.errors import ConfigError, ModelError
from anchorsr.pipeline import PipelineOptions
from anchorsr.sr import engine as np_engine
from anchorsr.sr.contract import ENGINES, SRModel, open_model, resolve_engine
from anchorsr.sr.model import load_model, save_model
from anchorsr.sr.nets import PlainSRNet
from anchorsr.sr.patches import SRPatchSource, SRRunner, upscale_frame
from anchorsr.stream import EncodeSettings, write_clip
from anchorsr.types import PatchGrid
from tests.conftest import pan_frames
from tests.sr.test_sr import _frame

FLOAT_TOL = 1e-4  # Y/255 units
FLIPPED_MAX = 1e-3  # share of uint8 pixels allowed to differ (by one level: a .5 rounded the other way)


def _both(scale: int, path=None) -> tuple[SRModel, SRModel]:
    return open_model(scale, path, engine="numpy"), open_model(scale, path, engine="torch")


def _assert_uint8_close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1
    assert (diff > 0).mean() <= FLIPPED_MAX


def _random_plain(tmp_path, scale: int, skip: str, channels: int = 8, body: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    net = PlainSRNet(scale, channels=channels, body=body, skip=skip).eval()
    with torch.no_grad():  # away from the initialisation, so every tensor (the skip's too) matters
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_model(SRModel(net, scale), tmp_path / f"plain_{skip}_x{scale}")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_weights_match_torch(scale):
    numpy_model, torch_model = _both(scale)
    assert numpy_model.engine == "numpy" and torch_model.engine == "torch"
    assert numpy_model.receptive_radius == torch_model.receptive_radius
    x = np.random.default_rng(scale).random((5, 1, 37, 53), dtype=np.float32)
    a, b = SRRunner(numpy_model).run(x), SRRunner(torch_model, "fp32").run(x)
    assert a.shape == b.shape == (5, 1, scale * 37, scale * 53)
    assert np.abs(a - b).max() <= FLOAT_TOL
    # through the patch source: uint8 luma within one level, almost all equal; chroma identical
    frame = _frame(120, 200, seed=scale)
    boxes = PatchGrid(48, frame.height, frame.width).boxes()
    for (ya, ua, va), (yb, ub, vb) in zip(SRPatchSource(numpy_model)(frame, boxes, scale),
                                         SRPatchSource(torch_model, precision="fp32")(frame, boxes, scale)):
        _assert_uint8_close(ya, yb)
        assert np.array_equal(ua, ub) and np.array_equal(va, vb)


@pytest.mark.parametrize("skip", ["nearest", "bicubic", "linear"])
@pytest.mark.parametrize("scale", [2, 3])
def test_random_plain_net_matches_torch(tmp_path, skip, scale):
    path = _random_plain(tmp_path, scale, skip, seed=scale)
    numpy_model, torch_model = _both(scale, path)
    assert numpy_model.net.skip == skip
    x = np.random.default_rng(1).random((3, 1, 29, 41), dtype=np.float32)
    a, b = SRRunner(numpy_model).run(x), SRRunner(torch_model, "fp32").run(x)
    assert np.abs(a - b).max() <= FLOAT_TOL
    assert np.abs(b - np.repeat(np.repeat(x, scale, 2), scale, 3)).max() > 1e-2  # not a trivial net


@pytest.mark.parametrize("sgemm", [True, False], ids=["openblas-sgemm", "numpy-matmul"])
def test_whole_plane_in_bands_equals_torch_and_patches(tmp_path, monkeypatch, sgemm):
    """A plane above BAND_PX runs in haloed row bands (and on two threads): it must still equal
    torch's whole-plane run, and the seam-free patch assembly; with OpenBLAS' sgemm accumulating
    in place and with the plain numpy fallback."""
    monkeypatch.setattr(np_engine, "BAND_PX", 4000)
    path = _random_plain(tmp_path, 2, "linear")
    numpy_model, torch_model = _both(2, path)
    numpy_model.net.threads = 2
    numpy_model.net.use_sgemm = sgemm
    assert sgemm is False or np_engine._openblas()[1] is not None  # numpy's wheels bundle OpenBLAS
    frame = _frame(121, 203)
    wy, wu, wv = upscale_frame(SRRunner(numpy_model), frame.y, frame.u, frame.v)
    ty, tu, tv = upscale_frame(SRRunner(torch_model, "fp32"), frame.y, frame.u, frame.v)
    _assert_uint8_close(wy, ty)
    assert np.array_equal(wu, tu) and np.array_equal(wv, tv)
    boxes = PatchGrid(32, frame.height, frame.width).boxes()
    y = np.zeros_like(wy)
    for (py, _, _), (y0, y1, x0, x1) in zip(SRPatchSource(numpy_model)(frame, boxes, 2), boxes):
        y[2 * y0:2 * y1, 2 * x0:2 * x1] = py
    _assert_uint8_close(y, wy)


def test_errors_are_the_torch_engines(tmp_path):
    """Missing file, bad contract, other scale, garbage weights, wrong tensors: the same one-line
    ModelError from either engine."""
    missing = tmp_path / "nope.safetensors"
    path = _random_plain(tmp_path, 2, "nearest")
    contract = json.loads(path.with_suffix(".json").read_text())
    cases = []

    def errors(scale, p):
        out = []
        for engine in ("numpy", "torch"):
            with pytest.raises(ModelError) as info:
                open_model(scale, p, engine=engine)
            out.append(str(info.value))
        return out

    cases.append(("missing", errors(2, missing)))
    cases.append(("scale", errors(3, path)))
    path.with_suffix(".json").write_text("{not json")
    cases.append(("json", errors(2, path)))
    path.with_suffix(".json").write_text(json.dumps({**contract, "normalisation": "Y/256"}))
    cases.append(("normalisation", errors(2, path)))
    path.with_suffix(".json").write_text(json.dumps({k: v for k, v in contract.items() if k != "body"}))
    cases.append(("field", errors(2, path)))
    path.with_suffix(".json").write_text(json.dumps(contract))
    good = path.read_bytes()
    path.write_bytes(b"\x00garbage, not safetensors")
    cases.append(("garbage", errors(2, path)))
    for name, (numpy_msg, torch_msg) in cases:
        assert numpy_msg == torch_msg, name
        assert "\n" not in numpy_msg
    path.write_bytes(good)
    path.with_suffix(".json").write_text(json.dumps({**contract, "channels": 12}))
    numpy_msg, torch_msg = errors(2, path)
    prefix = f"SR model file {path}: tensors do not match repsr-plain x2 from its contract ("
    assert numpy_msg.startswith(prefix) and torch_msg.startswith(prefix)
    assert "convs.0.weight has shape (8, 1, 3, 3), expected (12, 1, 3, 3)" in numpy_msg


def test_engine_choice(monkeypatch):
    from anchorsr.sr import contract

    assert ENGINES == ("auto", "numpy", "torch")
    plain, edsr = {"arch": "repsr-plain"}, {"arch": "edsr"}
    assert resolve_engine("auto", plain, "cpu") == "numpy"  # a run that ends: start-up matters
    assert resolve_engine("auto", plain, "cpu", realtime=True) == "torch"  # live: patch throughput matters
    assert resolve_engine("auto", plain, "cuda") == "torch"  # CUDA is torch's
    assert resolve_engine("auto", edsr, "cpu") == "torch"  # the numpy engine runs plain stacks only
    assert resolve_engine("torch", plain, "cpu") == "torch"
    assert resolve_engine("numpy", plain, "cpu", realtime=True) == "numpy"
    monkeypatch.setattr(contract, "torch_available", lambda: False)
    assert resolve_engine("auto", plain, "cpu", realtime=True) == "numpy"  # no torch installed
    with pytest.raises(ConfigError, match="CPU only"):
        resolve_engine("numpy", plain, "cuda")
    with pytest.raises(ConfigError, match="auto, numpy, torch"):
        resolve_engine("onnx", plain, "cpu")
    with pytest.raises(ConfigError, match="SR engine"):
        PipelineOptions(sr_engine="onnx")
    with pytest.raises(ConfigError, match="CPU only"):
        PipelineOptions(sr_engine="numpy", device="cuda")
    assert PipelineOptions().sr_engine == "auto"
    with pytest.raises(ModelError, match="sr-engine torch"):
        from anchorsr.sr.engine import load_numpy_model

        load_numpy_model(2, contract={**load_model(2).contract, "arch": "edsr"})


def test_numpy_path_never_imports_torch(tmp_path):
    """`anchorsr enhance` with the shipped network (auto engine) runs to the end without torch."""
    clip = tmp_path / "in.mp4"
    write_clip(clip, pan_frames(6, w=96, h=64), EncodeSettings())
    mark = tmp_path / "first-frame"
    code = ("import sys; from anchorsr.cli import main; "
            f"rc = main(['enhance', {str(clip)!r}, '-o', {str(tmp_path / 'out.mp4')!r}]); "
            "print('torch' in sys.modules, rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, ANCHORSR_FIRST_FRAME_MARK=str(mark)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-2:] == ["False", "0"], proc.stdout + proc.stderr
    info = json.loads(mark.read_text())
    assert info["sr_engine"] == "numpy" and info["torch_imported"] is False
    # the test can fail: the torch engine does import it
    code = code.replace("'-o',", "'--sr-engine', 'torch', '-o',")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.stdout.split()[-2:] == ["True", "0"], proc.stdout + proc.stderr


def test_cli_engine_errors_are_one_line_before_any_work(tmp_path):
    from anchorsr.sr.nets import EDSRNet
    from tests.test_cli_errors import assert_one_line_error, run_cli

    clip = tmp_path / "in.mp4"
    write_clip(clip, pan_frames(4, w=64, h=48), EncodeSettings())
    out = tmp_path / "out.mp4"
    proc = run_cli("enhance", str(clip), "-o", str(out), "--sr-engine", "numpy", "--device", "cuda")
    assert_one_line_error(proc, "numpy SR engine runs on the CPU only")
    edsr = save_model(SRModel(EDSRNet(2, "low").eval(), 2), tmp_path / "edsr_x2")
    proc = run_cli("enhance", str(clip), "-o", str(out), "--sr-engine", "numpy", "--model", str(edsr))
    assert_one_line_error(proc, "edsr_x2.safetensors", "--sr-engine torch")
    proc = run_cli("enhance", str(clip), "-o", str(out), "--sr-engine", "onnx")
    assert proc.returncode == 2 and "invalid choice: 'onnx'" in proc.stderr
    assert not out.exists()
    proc = run_cli("enhance", str(clip), "-o", str(out), "--model", str(edsr), timeout=600)  # auto: torch runs it
    assert proc.returncode == 0, proc.stderr
