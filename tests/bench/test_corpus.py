"""Corpus assembly: sources, skipping, rendering, LR encodings and the manifest."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from anchorsr.bench import corpus
from anchorsr.errors import SourceError
from anchorsr.stream import EncodeSettings, VideoSource, write_clip

from tests.conftest import pan_frames


def test_lr_bitrate_follows_the_protocol():
    assert corpus.lr_bitrate(1920, 1080) == pytest.approx(4_500_000, rel=1e-6)
    assert corpus.lr_bitrate(960, 540) == pytest.approx(1_500_000, rel=1e-3)
    assert corpus.lr_bitrate(64, 64) == 250_000


def test_missing_source_is_skipped_with_a_note(tmp_path):
    missing = corpus.ClipSource("ghost", "camera", "absent", "none", (str(tmp_path / "nope.mp4"),),
                                lambda: iter(()), 25.0, "the ghost package is not installed")
    result = corpus.assemble(str(tmp_path / "c"), [missing])
    assert result.clips == []
    assert result.skipped == [{"name": "ghost", "reason": "the ghost package is not installed"}]
    manifest = json.loads((tmp_path / "c" / corpus.MANIFEST).read_text())
    assert manifest["skipped"][0]["name"] == "ghost"


def test_user_clip_builds_hr_and_two_live_encodings(tmp_path):
    src = tmp_path / "mine.mp4"
    write_clip(src, pan_frames(10, w=66, h=50), EncodeSettings(crf=10, keyint=30))
    sources = corpus.user_sources([str(src)], max_frames=8)
    result = corpus.assemble(str(tmp_path / "c"), sources)
    (entry,) = result.clips
    assert (entry["hr"]["width"], entry["hr"]["height"], entry["hr"]["frames"]) == (64, 48, 8)  # cropped to x4
    hr = corpus.load_hr(entry["dir"])
    assert hr[0].shape == (8, 48, 64) and hr[1].shape == (8, 24, 32)
    for key in ("rate", "crf"):
        path = os.path.join(entry["dir"], entry["lr"][key]["file"])
        assert entry["lr"][key]["sha256"] == corpus.sha256_file(path)
        with VideoSource(path, transcode=False) as s:
            frames = list(s)
        assert len(frames) == 8 and frames[0].y.shape == (24, 32) and frames[0].is_key
        assert not any(f.is_key for f in frames[1:])
    # a second assembly reuses the built clip
    states = []
    corpus.assemble(str(tmp_path / "c"), sources, on_clip=lambda n, s: states.append(s))
    assert states == ["cached"]


def test_user_clip_that_does_not_exist():
    with pytest.raises(SourceError):
        corpus.user_sources(["/no/such/clip.mp4"], 10)


def test_render_scene_moves_background_and_objects(tmp_path):
    from PIL import Image

    from tests.conftest import textured

    bg, obj = tmp_path / "bg.png", tmp_path / "obj.png"
    Image.fromarray(np.stack([textured(120, 160, s) // 2 for s in range(3)], axis=2)).save(bg)
    Image.fromarray(np.full((40, 40, 3), 250, np.uint8)).save(obj)
    scene = corpus.Scene(str(bg), 64, 48, 3, pan=(0.0, 2.0), noise_sigma=0.0,
                         objects=(corpus.MovingObject(str(obj), (12, 12), (0.5, 0.3), (0.0, 5.0)),))
    frames = list(corpus.render_scene(scene))
    assert len(frames) == 3 and frames[0][0].shape == (48, 64) and frames[0][1].shape == (24, 32)
    y0, y1 = frames[0][0].astype(int), frames[1][0].astype(int)
    # the bright object's centre moves 5 px right per frame
    assert y0[24, 19] > 200 and y1[24, 24] > 200
    # away from the object the background pans by 2 photo px per frame (sub-pixel resampled)
    assert np.abs(y1[5:20, 40:60] - y0[5:20, 42:62]).mean() < np.abs(y1[5:20, 40:60] - y0[5:20, 40:60]).mean()


def test_default_sources_cover_the_corpus():
    names = [s.name for s in corpus.default_sources()]
    assert names == ["bikes", "vtest", "bbb", "sim-pan-1080", "sim-zoom-1080", "sim-pan-2160"]


def _ghost(tmp_path):
    return corpus.ClipSource("ghost", "camera", "absent", "none", (str(tmp_path / "nope.mp4"),),
                             lambda: iter(()), 25.0, "the ghost package is not installed")


def test_bench_corpus_with_every_source_missing_ends_with_one_error_line(tmp_path, monkeypatch, capsys):
    from anchorsr.cli import main

    monkeypatch.setattr(corpus, "default_sources", lambda *a, **k: [_ghost(tmp_path)])
    assert main(["bench", "corpus", "--corpus", str(tmp_path / "c"), "--json"]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("anchorsr: error: expected at least one available corpus clip")
    assert "ghost: the ghost package is not installed" in err[0]
    assert captured.out == "" and not (tmp_path / "c").exists()


def test_require_available_names_what_is_missing(tmp_path):
    ghosts = [_ghost(tmp_path), corpus.ClipSource("ghost2", "camera", "absent", "none", ("",), lambda: iter(()),
                                                  25.0, "the ghost package is not installed")]
    with pytest.raises(SourceError, match=r"got none of 2 \(ghost, ghost2: the ghost package is not installed\)"):
        corpus.require_available(ghosts)
    with pytest.raises(SourceError, match="empty source list"):
        corpus.require_available([])
    real = tmp_path / "real.mp4"
    real.write_bytes(b"x")
    corpus.require_available(ghosts + [corpus.ClipSource("real", "user", "", "", (str(real),), lambda: iter(()), 25.0)])
