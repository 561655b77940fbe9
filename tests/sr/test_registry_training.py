"""SR registry, shipped weights, the training split, and resumable training."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from anchorsr.errors import ConfigError, ModelError
from anchorsr.sr import photos, trainset
from anchorsr.sr.model import (COLOUR_SPACE, WEIGHTS_DIR, SRModel, arch_contract, build_net,
                               load_model, resolve_device, save_model)
from anchorsr.sr.nets import ARCHS, RepSRNet, register_arch
from anchorsr.sr.train import TrainConfig, checkpoint_path, train

TOY_FIELDS = {"repsr-plain": {"channels": 4, "body": 1, "skip": "bicubic"},
              "repsr-train": {"channels": 4, "body": 1, "skip": "linear"},
              "edsr": {"size": "low"}}
REPARAM_TOL = 1e-4


@pytest.mark.parametrize("name", sorted(ARCHS))
@pytest.mark.parametrize("scale", [2, 3])
def test_every_registered_arch_builds_runs_and_round_trips(name, scale, tmp_path):
    assert name in TOY_FIELDS, f"add toy fields for the new architecture {name!r}"
    net = build_net({"arch": name, "scale": scale, **TOY_FIELDS[name]})
    assert arch_contract(net) == {"arch": name, "scale": scale, **TOY_FIELDS[name]}
    x = torch.rand(2, 1, 13, 17)
    with torch.no_grad():
        assert net.eval()(x).shape == (2, 1, scale * 13, scale * 17)
    path = save_model(SRModel(net, scale), tmp_path / name)
    loaded = load_model(scale, path)
    assert type(loaded.net) is type(net)
    with torch.no_grad():
        assert torch.allclose(loaded.net(x), net(x), atol=1e-6)


def test_registry_rejects_duplicates_and_unknown_arches():
    with pytest.raises(ValueError, match="already registered"):
        register_arch("edsr", object, (), lambda scale: None, lambda net: {})
    with pytest.raises(ModelError, match="arch must be one of"):
        build_net({"arch": "vdsr", "scale": 2})
    with pytest.raises(ModelError, match="missing channels"):
        build_net({"arch": "repsr-plain", "scale": 2, "body": 2})


SHIPPED = sorted(WEIGHTS_DIR.glob("*.safetensors"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_weight_file_meets_its_contract(path):
    contract = json.loads(path.with_suffix(".json").read_text())
    model = load_model(contract["scale"], path)
    assert contract["colour_space"] == COLOUR_SPACE
    assert arch_contract(model.net) == {k: contract[k] for k in arch_contract(model.net)}
    training = contract["training"]
    used = [r["name"] for r in training["photos_used"]]
    assert used and not [n for n in used if photos.held_out(n)]
    assert all(len(r["sha256"]) == 64 and r["licence"] for r in training["photos_used"])
    assert contract["measured"]["clean"]["gain_db"] > 0
    assert contract["measured"]["clean"]["n_images"] == len(photos.EVAL_PHOTOS)
    if contract["arch"] == "repsr-plain":  # the training form folds back into exactly this net
        rep = RepSRNet(model.scale, model.net.channels, model.net.body, model.net.skip).load_plain(model.net)
        rep.branches = True
        x = torch.rand(1, 1, 19, 23)
        with torch.no_grad():
            assert (rep(x) - model.net(x)).abs().max() <= REPARAM_TOL
            assert (rep.deploy()(x) - model.net(x)).abs().max() <= REPARAM_TOL


def test_contract_is_checked_on_load(tmp_path):
    path = save_model(SRModel(build_net({"arch": "repsr-plain", "scale": 2, **TOY_FIELDS["repsr-plain"]}), 2),
                      tmp_path / "toy")
    contract = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**contract, "colour_space": "RGB"}))
    with pytest.raises(ModelError, match="colour_space"):
        load_model(2, path)
    path.with_suffix(".json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="JSON object"):
        load_model(2, path)


def test_device_is_explicit():
    assert resolve_device(None).type == "cpu" and resolve_device("cpu").type == "cpu"
    with pytest.raises(ModelError, match="'cpu' or 'cuda'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA device"):
            resolve_device("cuda")


def test_training_never_sees_held_out_photos():
    assert not [p for p in photos.TRAIN_PHOTOS if photos.held_out(p)]
    assert len(photos.EVAL_PHOTOS) >= 10
    assert "skimage:astronaut" in photos.EVAL_PHOTOS  # the demo films it
    corpus = (Path(__file__).parents[2] / "anchorsr" / "bench" / "corpus.py").read_text()
    filmed = re.findall(r'_mate\("([^"]+)"\)', corpus)
    assert filmed, "the corpus films mate-backgrounds photos"
    for rel in filmed:
        assert photos.held_out(f"file:{photos.MATE_DIR}/{rel}"), rel
    with pytest.raises(ConfigError, match="held-out"):
        trainset.build(("skimage:camera", "skimage:coffee"), 2)


def test_validation_rows_are_split_off_before_degradation():
    sets = trainset.build(("skimage:camera",), 2, crfs=(None, 28), seq_crfs=(23,))
    fit_rows = {p.hr.shape[0] for p in sets.train if p.name == "skimage:camera"}
    val_rows = {p.hr.shape[0] for p in sets.val}
    assert fit_rows == {408} and val_rows == {104}  # 512 rows, bottom fifth, multiples of 8
    assert any("#p" in p.name and p.crf == 23 for p in sets.train)  # P-frame pairs
    assert {p.crf for p in sets.val} == set(trainset.VAL_CRFS)
    assert sets.weights().sum() == pytest.approx(1.0)


def _tiny(iterations: int, **kw) -> TrainConfig:
    return TrainConfig(scale=2, channels=4, body=1, photos=("skimage:camera",), eval_photos=(),
                       crfs=(None,), seq_crfs=(), iterations=iterations, batch=2, lr_px=24,
                       val_every=2, **kw)


def test_training_resumes_from_its_checkpoint(tmp_path):
    out = tmp_path / "run"
    first = train(_tiny(4), out=out)
    assert first.finished and checkpoint_path(out).is_file()
    assert [it for it, _ in first.val_history] == [0, 2, 4]  # 0: the least-squares skip alone
    more = train(_tiny(6), out=out, resume=True)
    assert more.iterations == 6 and [it for it, _ in more.val_history] == [0, 2, 4, 6]
    stopped = train(_tiny(8, time_budget_s=1e-9), out=out, resume=True)
    assert not stopped.finished and stopped.iterations == 6
    with pytest.raises(ConfigError, match="other settings"):
        train(TrainConfig(**{**_tiny(8).__dict__, "channels": 5}), out=out, resume=True)
    with pytest.raises(ConfigError, match="expected a checkpoint"):
        train(_tiny(4), out=tmp_path / "none", resume=True)


def test_least_squares_filter_recovers_a_linear_upsampling():
    """HR made from LR by a known linear filter (bilinear-like taps per phase): the fit finds it."""
    from anchorsr.sr.data import Pair
    from anchorsr.sr.linear import fit_linear_filter
    from anchorsr.sr.nets import LINEAR_SKIP_PX, Skip

    rng = np.random.default_rng(0)
    true = Skip("linear", 2)
    with torch.no_grad():
        true.weight.normal_(0, 0.05)
        true.weight[:, 0, 3, 3] += 0.6
        true.bias.fill_(0.01)
    pairs = []
    for _ in range(3):
        lr = rng.integers(0, 256, (40, 56), dtype=np.uint8)
        with torch.no_grad():
            hr = true.combine(torch.zeros(1, 4, 40, 56), torch.from_numpy(lr).float()[None, None] / 255)
        pairs.append(Pair("noise", None, lr, (hr[0, 0] * 255).numpy()))  # float HR: no rounding
    weight, bias = fit_linear_filter(pairs, 2, LINEAR_SKIP_PX, stride=1)
    assert torch.allclose(weight, true.weight, atol=1e-4) and torch.allclose(bias, true.bias, atol=1e-4)
